#!/bin/bash
set -uxo pipefail
source /opt/miniconda3/bin/activate
conda activate testbed
cd /testbed
git config --global --add safe.directory /testbed
cd /testbed
git status
git -c core.fileMode=false diff 1f967c49e934db6e4492091eeb6189556c26cb57
source /opt/miniconda3/bin/activate
conda activate testbed
git checkout 1f967c49e934db6e4492091eeb6189556c26cb57 -- tests/cache/tests.py
git apply -v - <<'EOF_114329324912'
diff --git a/tests/cache/tests.py b/tests/cache/tests.py
index 958f759..c7e335d 100644
--- a/tests/cache/tests.py
+++ b/tests/cache/tests.py
@@ -196,6 +196,16 @@ class BackendTests:
         self.assertEqual(self.cache.delete_prefix("C:\\build\\"), 2)
         self.assertEqual(self.cache.get("C:\\cache\\index"), 3)
 
+    def test_delete_prefix_underscore_is_not_a_wildcard(self):
+        self.cache.set_many({"tmp_1f3a": "upload", "tmpl:base.html": "<html>", "tmp_9c2e": "upload"})
+        self.assertEqual(self.cache.delete_prefix("tmp_"), 2)
+        self.assertEqual(self.cache.get("tmpl:base.html"), "<html>")
+
+    def test_delete_prefix_percent_is_not_a_wildcard(self):
+        self.cache.set_many({"rate:5%:eu": 1, "rate:5.5:eu": 2})
+        self.assertEqual(self.cache.delete_prefix("rate:5%"), 1)
+        self.assertEqual(self.cache.get("rate:5.5:eu"), 2)
+
     def test_delete_prefix_stays_in_its_version(self):
         self.cache.set("page:home", "v1")
         self.cache.set("page:home", "v2", version=2)
EOF_114329324912
: '>>>>> Start Test Output'
./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 cache.tests
: '>>>>> End Test Output'
git checkout 1f967c49e934db6e4492091eeb6189556c26cb57 -- tests/cache/tests.py
