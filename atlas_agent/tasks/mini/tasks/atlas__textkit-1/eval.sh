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
git checkout 08dd7d5a2a74739473fc8850abf67d09cb87249e -- tests/test_table.py tests/test_width.py
git apply -v - <<'EOF_114329324912'
diff --git a/tests/test_table.py b/tests/test_table.py
index 8cb533f..c7d6c4e 100644
--- a/tests/test_table.py
+++ b/tests/test_table.py
@@ -48,3 +48,20 @@ def test_row_of_wrong_length():
 def test_unknown_alignment():
     with pytest.raises(ValueError):
         render_table([], headers=["x"], align=["middle"])
+
+
+def test_wide_characters_line_up():
+    table = render_table([["東京", 37], ["Paris", 11]], headers=["city", "pop"])
+    assert table == (
+        "| city  | pop |\n"
+        "| ----- | --- |\n"
+        "| 東京  | 37  |\n"
+        "| Paris | 11  |"
+    )
+
+
+def test_combining_marks_line_up():
+    table = render_table(
+        [["Cafe\u0301", "open"]], headers=["shop name", "status"], align=["right", None]
+    )
+    assert table.splitlines()[-1] == "|      Cafe\u0301 | open   |"
diff --git a/tests/test_width.py b/tests/test_width.py
index 653592c..bb13e85 100644
--- a/tests/test_width.py
+++ b/tests/test_width.py
@@ -22,3 +22,9 @@ def test_invisible_characters():
 def test_char_width_wants_one_character():
     with pytest.raises(ValueError):
         char_width("ab")
+
+
+def test_combining_marks_take_no_columns():
+    assert char_width("\u0301") == 0
+    assert display_width("Cafe\u0301") == 4
+    assert display_width("a\u0308\u0323") == 1
EOF_114329324912
: '>>>>> Start Test Output'
pytest -rA -p no:cacheprovider tests/test_table.py tests/test_width.py
: '>>>>> End Test Output'
git checkout 08dd7d5a2a74739473fc8850abf67d09cb87249e -- tests/test_table.py tests/test_width.py
