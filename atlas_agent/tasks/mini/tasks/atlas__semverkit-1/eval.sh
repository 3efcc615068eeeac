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
git checkout c38d7f919f7e3900f6ac943f17287ba0cccbae02 -- tests/test_version.py
git apply -v - <<'EOF_114329324912'
diff --git a/tests/test_version.py b/tests/test_version.py
index 1fa36ad..0e06a9d 100644
--- a/tests/test_version.py
+++ b/tests/test_version.py
@@ -68,3 +68,19 @@ def test_bump_prerelease():
     assert v("1.2.3").bump("prerelease") == v("1.2.4-0")
     with pytest.raises(ValueError):
         v("1.2.3").bump("micro")
+
+
+def test_numeric_identifiers_compare_numerically():
+    assert v("1.0.0-alpha.2") < v("1.0.0-alpha.10")
+    assert v("1.0.0-beta.11") > v("1.0.0-beta.2")
+    assert v("1.0.0-rc.9") < v("1.0.0-rc.10") < v("1.0.0")
+
+
+def test_sorting_numbered_prereleases():
+    versions = ["1.0.0-rc.10", "1.0.0-rc.2", "1.0.0-rc.1", "1.0.0-rc.9"]
+    assert [str(x) for x in sorted(map(v, versions))] == [
+        "1.0.0-rc.1",
+        "1.0.0-rc.2",
+        "1.0.0-rc.9",
+        "1.0.0-rc.10",
+    ]
EOF_114329324912
: '>>>>> Start Test Output'
pytest -rA -p no:cacheprovider tests/test_version.py
: '>>>>> End Test Output'
git checkout c38d7f919f7e3900f6ac943f17287ba0cccbae02 -- tests/test_version.py
