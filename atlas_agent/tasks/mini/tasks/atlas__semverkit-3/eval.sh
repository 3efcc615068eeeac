#!/bin/bash
set -uxo pipefail
source /opt/miniconda3/bin/activate
conda activate testbed
cd /testbed
git config --global --add safe.directory /testbed
cd /testbed
git status
git -c core.fileMode=false diff c38d7f919f7e3900f6ac943f17287ba0cccbae02
source /opt/miniconda3/bin/activate
conda activate testbed
git checkout c38d7f919f7e3900f6ac943f17287ba0cccbae02 -- tests/test_range.py
git apply -v - <<'EOF_114329324912'
diff --git a/tests/test_range.py b/tests/test_range.py
index 614a637..5d445cd 100644
--- a/tests/test_range.py
+++ b/tests/test_range.py
@@ -89,3 +89,10 @@ def test_max_satisfying():
 def test_invalid_range():
     with pytest.raises(InvalidVersion):
         Range(">=banana")
+
+
+def test_caret_zero_zero_patch():
+    assert str(Range("^0.0.3")) == ">=0.0.3 <0.0.4"
+    assert satisfies("0.0.3", "^0.0.3")
+    assert not satisfies("0.0.4", "^0.0.3")
+    assert not satisfies("0.1.0", "^0.0.3")
EOF_114329324912
: '>>>>> Start Test Output'
pytest -rA -p no:cacheprovider tests/test_range.py
: '>>>>> End Test Output'
git checkout c38d7f919f7e3900f6ac943f17287ba0cccbae02 -- tests/test_range.py
