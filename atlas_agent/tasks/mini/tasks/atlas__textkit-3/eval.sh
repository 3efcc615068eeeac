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
git checkout 08dd7d5a2a74739473fc8850abf67d09cb87249e -- tests/test_table.py
git apply -v - <<'EOF_114329324912'
diff --git a/tests/test_table.py b/tests/test_table.py
index 8cb533f..ba37e31 100644
--- a/tests/test_table.py
+++ b/tests/test_table.py
@@ -48,3 +48,12 @@ def test_row_of_wrong_length():
 def test_unknown_alignment():
     with pytest.raises(ValueError):
         render_table([], headers=["x"], align=["middle"])
+
+
+def test_pipes_in_cells_are_escaped():
+    table = render_table([["a|b", "x || y"]], headers=["in|out", "expr"])
+    assert table == (
+        "| in\\|out | expr     |\n"
+        "| ------- | -------- |\n"
+        "| a\\|b    | x \\|\\| y |"
+    )
EOF_114329324912
: '>>>>> Start Test Output'
pytest -rA -p no:cacheprovider tests/test_table.py
: '>>>>> End Test Output'
git checkout 08dd7d5a2a74739473fc8850abf67d09cb87249e -- tests/test_table.py
