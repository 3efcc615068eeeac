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
index 958f759..ffce03b 100644
--- a/tests/cache/tests.py
+++ b/tests/cache/tests.py
@@ -161,6 +161,26 @@ class BackendTests:
         with self.assertRaises(ValueError):
             self.cache.decr("hits")
 
+    def test_incr_keeps_the_timeout(self):
+        self.cache.set("hits", 0, timeout=60)
+        self.advance(50)
+        self.assertEqual(self.cache.incr("hits"), 1)
+        self.advance(15)
+        self.assertIsNone(self.cache.get("hits"))
+
+    def test_decr_keeps_the_timeout(self):
+        self.cache.set("stock", 10, timeout=60)
+        self.advance(50)
+        self.assertEqual(self.cache.decr("stock"), 9)
+        self.advance(15)
+        self.assertFalse(self.cache.has_key("stock"))
+
+    def test_incr_keeps_an_entry_that_never_expires(self):
+        self.cache.set("total", 0, timeout=None)
+        self.cache.incr("total", 5)
+        self.advance(10 * 365 * 24 * 3600)
+        self.assertEqual(self.cache.get("total"), 5)
+
     def test_get_or_set(self):
         self.assertEqual(self.cache.get_or_set("key", "default"), "default")
         self.assertEqual(self.cache.get_or_set("key", "other"), "default")
EOF_114329324912
: '>>>>> Start Test Output'
./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 cache.tests
: '>>>>> End Test Output'
git checkout 1f967c49e934db6e4492091eeb6189556c26cb57 -- tests/cache/tests.py
