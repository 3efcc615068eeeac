#!/bin/bash
set -uxo pipefail
cd /testbed
git checkout 3f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d -- tests/test_ops.py
git apply -v - <<'EOF_114329324912'
diff --git a/tests/test_ops.py b/tests/test_ops.py
--- a/tests/test_ops.py
+++ b/tests/test_ops.py
@@ -1,5 +1,13 @@
+import pytest
+
 from calc.ops import divide
+from calc.errors import CalcError
 
 
 def test_divide():
     assert divide(6, 3) == 2
+
+
+def test_divide_by_zero():
+    with pytest.raises(CalcError, match="division by zero"):
+        divide(1, 0)
EOF_114329324912
: '>>>>> Start Test Output'
python -m pytest -rA tests/test_ops.py
: '>>>>> End Test Output'
git checkout 3f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d -- tests/test_ops.py
