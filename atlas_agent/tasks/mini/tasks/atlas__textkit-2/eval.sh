#!/bin/bash
set -uxo pipefail
source /opt/miniconda3/bin/activate
conda activate testbed
cd /testbed
git config --global --add safe.directory /testbed
cd /testbed
git status
git -c core.fileMode=false diff 08dd7d5a2a74739473fc8850abf67d09cb87249e
source /opt/miniconda3/bin/activate
conda activate testbed
git checkout 08dd7d5a2a74739473fc8850abf67d09cb87249e -- tests/test_slug.py
git apply -v - <<'EOF_114329324912'
diff --git a/tests/test_slug.py b/tests/test_slug.py
index cf940f4..6aa6bcc 100644
--- a/tests/test_slug.py
+++ b/tests/test_slug.py
@@ -42,3 +42,13 @@ def test_rejects_bad_arguments():
         slugify("x", sep="")
     with pytest.raises(ValueError):
         slugify("x", max_length=0)
+
+
+def test_accented_letters_keep_their_base_letter():
+    assert slugify("Crème Brûlée") == "creme-brulee"
+    assert slugify("São Paulo, Brasil") == "sao-paulo-brasil"
+    assert slugify("Ångström", lowercase=False) == "Angstrom"
+
+
+def test_accented_text_is_cut_at_a_word_boundary():
+    assert slugify("Déjà vu all over again", max_length=7) == "deja-vu"
EOF_114329324912
: '>>>>> Start Test Output'
pytest -rA -p no:cacheprovider tests/test_slug.py
: '>>>>> End Test Output'
git checkout 08dd7d5a2a74739473fc8850abf67d09cb87249e -- tests/test_slug.py
