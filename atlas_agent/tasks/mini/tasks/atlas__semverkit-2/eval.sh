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
index 614a637..a41f1f9 100644
--- a/tests/test_range.py
+++ b/tests/test_range.py
@@ -89,3 +89,15 @@ def test_max_satisfying():
 def test_invalid_range():
     with pytest.raises(InvalidVersion):
         Range(">=banana")
+
+
+def test_prerelease_of_a_later_version_is_excluded():
+    assert not satisfies("3.4.5-alpha.9", ">1.2.3-alpha.3")
+    assert not satisfies("1.3.0-beta.1", "^1.2.3-beta.2")
+    assert satisfies("3.4.5", ">1.2.3-alpha.3")
+    assert satisfies("3.4.5-alpha.9", ">1.2.3-alpha.3", include_prerelease=True)
+
+
+def test_max_satisfying_ignores_prereleases_of_other_versions():
+    versions = ["1.2.2", "1.2.3-beta.1", "1.2.3-beta.4", "1.2.4-alpha.1"]
+    assert max_satisfying(versions, "^1.2.3-beta.2") == Version.parse("1.2.3-beta.4")
EOF_114329324912
: '>>>>> Start Test Output'
pytest -rA -p no:cacheprovider tests/test_range.py
: '>>>>> End Test Output'
git checkout c38d7f919f7e3900f6ac943f17287ba0cccbae02 -- tests/test_range.py
