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
git checkout 1f967c49e934db6e4492091eeb6189556c26cb57 -- tests/cache/tests.py tests/handlers/tests.py
git apply -v - <<'EOF_114329324912'
diff --git a/tests/cache/tests.py b/tests/cache/tests.py
index 958f759..e2d320c 100644
--- a/tests/cache/tests.py
+++ b/tests/cache/tests.py
@@ -129,6 +129,12 @@ class BackendTests:
         self.assertTrue(self.cache.add("key", "value", timeout=-1))
         self.assertFalse(self.cache.has_key("key"))
 
+    def test_zero_timeout_expires_at_once(self):
+        self.cache.set("key", "value", timeout=0)
+        self.assertIsNone(self.cache.get("key"))
+        self.assertTrue(self.cache.add("key", "value", timeout=0))
+        self.assertFalse(self.cache.has_key("key"))
+
     def test_touch(self):
         self.cache.set("key", "value", timeout=10)
         self.advance(8)
@@ -139,6 +145,11 @@ class BackendTests:
         self.advance(1000)
         self.assertEqual(self.cache.get("key"), "value")
 
+    def test_touch_with_zero_timeout_expires_the_key(self):
+        self.cache.set("key", "value")
+        self.assertTrue(self.cache.touch("key", 0))
+        self.assertIsNone(self.cache.get("key"))
+
     def test_touch_missing_key(self):
         self.assertFalse(self.cache.touch("missing"))
         self.cache.set("key", "value", timeout=1)
diff --git a/tests/handlers/tests.py b/tests/handlers/tests.py
index dea66af..34f5741 100644
--- a/tests/handlers/tests.py
+++ b/tests/handlers/tests.py
@@ -68,6 +68,13 @@ class CacheHandlerTests(unittest.TestCase):
         cache._now = lambda: 2e12
         self.assertEqual(cache.get("key"), "value")
 
+    def test_zero_timeout_in_the_configuration(self):
+        handler = CacheHandler({"default": {"BACKEND": "hoard.backends.memory.MemoryCache", "TIMEOUT": 0}})
+        cache = handler["default"]
+        cache._now = lambda: 1e12
+        cache.set("key", "value")
+        self.assertIsNone(cache.get("key"))
+
     def test_close_all(self):
         handler = CacheHandler({"default": {"BACKEND": "hoard.backends.sqlite.SQLiteCache"}})
         first = handler["default"]
EOF_114329324912
: '>>>>> Start Test Output'
./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 cache.tests handlers.tests
: '>>>>> End Test Output'
git checkout 1f967c49e934db6e4492091eeb6189556c26cb57 -- tests/cache/tests.py tests/handlers/tests.py
