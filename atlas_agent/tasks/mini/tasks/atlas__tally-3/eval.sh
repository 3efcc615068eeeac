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
git checkout ab394e7a5790e6b97fbb8deb8aff39934f494ec1 -- tests/test_format.py
git apply -v - <<'EOF_114329324912'
diff --git a/tests/test_format.py b/tests/test_format.py
index accf185..cfb819e 100644
--- a/tests/test_format.py
+++ b/tests/test_format.py
@@ -57,3 +57,17 @@ def test_parse_with_explicit_currency():
 def test_round_trip():
     money = Money("98765.43", "EUR")
     assert parse_money(format_money(money, locale="fr_FR"), locale="fr_FR") == money
+
+
+def test_rounds_half_up_like_rounded():
+    assert format_money(Money("2.675", "USD")) == "$2.68"
+    assert format_money(Money("1.005", "USD")) == "$1.01"
+    assert format_money(Money("0.125", "EUR"), locale="de_DE") == "0,13 €"
+
+
+def test_large_amounts_keep_every_digit():
+    assert format_money(Money("12345678901234567.89", "USD")) == "$12,345,678,901,234,567.89"
+
+
+def test_three_decimal_currency():
+    assert format_money(Money("1.0005", "KWD")) == "KD 1.001"
EOF_114329324912
: '>>>>> Start Test Output'
pytest -rA -p no:cacheprovider tests/test_format.py
: '>>>>> End Test Output'
git checkout ab394e7a5790e6b97fbb8deb8aff39934f494ec1 -- tests/test_format.py
