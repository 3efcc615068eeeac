#!/bin/bash
set -uxo pipefail
cd /testbed
git checkout 3f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d -- tests/test_parse.py
git apply -v - <<'EOF_114329324912'
diff --git a/tests/test_parse.py b/tests/test_parse.py
--- a/tests/test_parse.py
+++ b/tests/test_parse.py
@@ -3,3 +3,7 @@ from calc.parse import parse
 
 def test_parse():
     assert parse("7") == 7
+
+
+def test_parse_strips_whitespace():
+    assert parse(" 42\n") == 42
EOF_114329324912
: '>>>>> Start Test Output'
python -m pytest -rA tests/test_parse.py
: '>>>>> End Test Output'
git checkout 3f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d -- tests/test_parse.py
