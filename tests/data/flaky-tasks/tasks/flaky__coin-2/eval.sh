#!/bin/bash
set -uxo pipefail
source /opt/miniconda3/bin/activate
conda activate testbed
cd /testbed
git config --global --add safe.directory /testbed
cd /testbed
git status
git -c core.fileMode=false diff c627ee7acc2ea0ad998c61625bf07d422b88631f
source /opt/miniconda3/bin/activate
conda activate testbed
git checkout c627ee7acc2ea0ad998c61625bf07d422b88631f -- tests/test_coin.py
git apply -v - <<'EOF_114329324912'
diff --git a/tests/test_coin.py b/tests/test_coin.py
index 2b69cf7..a1e7866 100644
--- a/tests/test_coin.py
+++ b/tests/test_coin.py
@@ -7,3 +7,7 @@ def test_double_of_zero():
 
 def test_half_of_zero():
     assert half(0) == 0
+
+
+def test_half():
+    assert half(42) == 21
EOF_114329324912
: '>>>>> Start Test Output'
pytest -rA -p no:cacheprovider tests/test_coin.py
: '>>>>> End Test Output'
git checkout c627ee7acc2ea0ad998c61625bf07d422b88631f -- tests/test_coin.py
