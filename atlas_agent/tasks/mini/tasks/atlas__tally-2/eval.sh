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
git checkout ab394e7a5790e6b97fbb8deb8aff39934f494ec1 -- tests/test_exchange.py
git apply -v - <<'EOF_114329324912'
diff --git a/tests/test_exchange.py b/tests/test_exchange.py
index 46ab753..f721b48 100644
--- a/tests/test_exchange.py
+++ b/tests/test_exchange.py
@@ -41,3 +41,13 @@ def test_missing_rate(rates):
 def test_rates_must_be_positive():
     with pytest.raises(ValueError):
         RateTable("EUR", {"USD": "0"})
+
+
+def test_convert_to_base(rates):
+    assert rates.convert(Money("10.85", "USD"), "EUR") == Money("10.00", "EUR")
+    assert rates.convert(Money("1624", "JPY"), "EUR") == Money("10.00", "EUR")
+
+
+def test_round_trip_through_base(rates):
+    euros = Money("250.00", "EUR")
+    assert rates.convert(rates.convert(euros, "GBP"), "EUR") == euros
EOF_114329324912
: '>>>>> Start Test Output'
pytest -rA -p no:cacheprovider tests/test_exchange.py
: '>>>>> End Test Output'
git checkout ab394e7a5790e6b97fbb8deb8aff39934f494ec1 -- tests/test_exchange.py
