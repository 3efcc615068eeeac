#!/bin/bash
set -uxo pipefail
source /opt/miniconda3/bin/activate
conda activate testbed
cd /testbed
git config --global --add safe.directory /testbed
cd /testbed
git status
git -c core.fileMode=false diff ab394e7a5790e6b97fbb8deb8aff39934f494ec1
source /opt/miniconda3/bin/activate
conda activate testbed
git checkout ab394e7a5790e6b97fbb8deb8aff39934f494ec1 -- tests/test_money.py
git apply -v - <<'EOF_114329324912'
diff --git a/tests/test_money.py b/tests/test_money.py
index c9c63ba..2c97cbd 100644
--- a/tests/test_money.py
+++ b/tests/test_money.py
@@ -82,3 +82,18 @@ def test_split_evenly():
     assert Money("9.00", "USD").split(3) == [Money("3.00", "USD")] * 3
     with pytest.raises(ValueError):
         Money("9.00", "USD").split(0)
+
+
+def test_allocate_shares_add_up_to_the_total():
+    shares = Money("100.00", "USD").allocate([1, 1, 1])
+    assert shares == [Money("33.34", "USD"), Money("33.33", "USD"), Money("33.33", "USD")]
+    assert sum(shares) == Money("100.00", "USD")
+
+
+def test_allocate_never_hands_out_more_than_the_total():
+    assert sum(Money("0.05", "USD").allocate([1, 1, 1])) == Money("0.05", "USD")
+    assert sum(Money("-0.05", "USD").allocate([1, 1, 1])) == Money("-0.05", "USD")
+
+
+def test_split_zero_decimal_currency():
+    assert Money(100, "JPY").split(3) == [Money(34, "JPY"), Money(33, "JPY"), Money(33, "JPY")]
EOF_114329324912
: '>>>>> Start Test Output'
pytest -rA -p no:cacheprovider tests/test_money.py
: '>>>>> End Test Output'
git checkout ab394e7a5790e6b97fbb8deb8aff39934f494ec1 -- tests/test_money.py
