#!/bin/bash
set -uxo pipefail
cd /testbed
git checkout 08dd7d5a2a74739473fc8850abf67d09cb87249e -- tests/test_slug.py
git apply --verbose - <<'EOF_ATLAS_TEST_PATCH'
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
EOF_ATLAS_TEST_PATCH
: '>>>>> Start Test Output'
python -m pytest -rA -p no:cacheprovider tests/test_slug.py
: '>>>>> End Test Output'
git checkout 08dd7d5a2a74739473fc8850abf67d09cb87249e -- tests/test_slug.py
