import os
import tempfile
import unittest

from hoard import caches
from hoard.backends.memory import MemoryCache
from hoard.backends.sqlite import SQLiteCache


class BackendTests:
    """The behaviour every backend shares; the TestCases below run it against each one."""

    alias = None

    def setUp(self):
        self.now = 1_700_000_000.0
        self.cache = self.make_cache()

    def make_cache(self, **overrides):
        cache = caches.create(self.alias, **overrides)
        # a clock the tests move by hand
        cache._now = lambda: self.now
        self.addCleanup(cache.close)
        return cache

    def advance(self, seconds):
        self.now += seconds

    def test_get_missing_key(self):
        self.assertIsNone(self.cache.get("nothing"))
        self.assertEqual(self.cache.get("nothing", "fallback"), "fallback")

    def test_set_and_get(self):
        self.cache.set("answer", 42)
        self.assertEqual(self.cache.get("answer"), 42)
        self.cache.set("answer", [4, 2])
        self.assertEqual(self.cache.get("answer"), [4, 2])

    def test_none_is_a_value(self):
        self.cache.set("nothing", None)
        self.assertTrue(self.cache.has_key("nothing"))
        self.assertIsNone(self.cache.get("nothing", "fallback"))

    def test_values_are_copies(self):
        config = {"retries": 3}
        self.cache.set("config", config)
        config["retries"] = 5
        self.cache.get("config")["retries"] = 7
        self.assertEqual(self.cache.get("config"), {"retries": 3})

    def test_add(self):
        self.assertTrue(self.cache.add("key", "first"))
        self.assertFalse(self.cache.add("key", "second"))
        self.assertEqual(self.cache.get("key"), "first")

    def test_add_replaces_an_expired_value(self):
        self.cache.set("key", "old", timeout=10)
        self.advance(11)
        self.assertTrue(self.cache.add("key", "new"))
        self.assertEqual(self.cache.get("key"), "new")

    def test_delete(self):
        self.cache.set("key", "value")
        self.assertTrue(self.cache.delete("key"))
        self.assertIsNone(self.cache.get("key"))
        self.assertFalse(self.cache.delete("key"))

    def test_delete_expired_key(self):
        self.cache.set("key", "value", timeout=1)
        self.advance(2)
        self.assertFalse(self.cache.delete("key"))

    def test_has_key_and_in(self):
        self.cache.set("key", "value")
        self.assertTrue(self.cache.has_key("key"))
        self.assertIn("key", self.cache)
        self.assertFalse(self.cache.has_key("other"))
        self.assertNotIn("other", self.cache)

    def test_get_many(self):
        self.cache.set_many({"a": 1, "b": 2, "c": 3})
        self.cache.set("d", 4, timeout=5)
        self.advance(6)
        self.assertEqual(self.cache.get_many(["a", "c", "d", "missing"]), {"a": 1, "c": 3})
        self.assertEqual(self.cache.get_many([]), {})

    def test_set_many_returns_the_keys_not_stored(self):
        self.assertEqual(self.cache.set_many({"a": 1, "b": 2}), [])

    def test_delete_many(self):
        self.cache.set_many({"a": 1, "b": 2, "c": 3})
        self.cache.delete_many(["a", "b", "missing"])
        self.assertEqual(self.cache.get_many(["a", "b", "c"]), {"c": 3})

    def test_clear(self):
        self.cache.set_many({"a": 1, "b": 2})
        self.cache.clear()
        self.assertEqual(self.cache.get_many(["a", "b"]), {})

    def test_default_timeout(self):
        self.cache.set("key", "value")
        self.advance(299)
        self.assertEqual(self.cache.get("key"), "value")
        self.advance(1)
        self.assertIsNone(self.cache.get("key"))

    def test_configured_default_timeout(self):
        cache = self.make_cache(TIMEOUT=30)
        cache.set("key", "value")
        self.advance(31)
        self.assertIsNone(cache.get("key"))

    def test_timeout(self):
        self.cache.set("key", "value", timeout=10)
        self.advance(9.5)
        self.assertEqual(self.cache.get("key"), "value")
        self.advance(0.5)
        self.assertIsNone(self.cache.get("key"))
        self.assertFalse(self.cache.has_key("key"))

    def test_none_timeout_never_expires(self):
        self.cache.set("key", "value", timeout=None)
        self.advance(10 * 365 * 24 * 3600)
        self.assertEqual(self.cache.get("key"), "value")

    def test_negative_timeout_expires_at_once(self):
        self.cache.set("key", "value", timeout=-1)
        self.assertIsNone(self.cache.get("key"))
        self.assertTrue(self.cache.add("key", "value", timeout=-1))
        self.assertFalse(self.cache.has_key("key"))

    def test_touch(self):
        self.cache.set("key", "value", timeout=10)
        self.advance(8)
        self.assertTrue(self.cache.touch("key", 10))
        self.advance(8)
        self.assertEqual(self.cache.get("key"), "value")
        self.assertTrue(self.cache.touch("key", None))
        self.advance(1000)
        self.assertEqual(self.cache.get("key"), "value")

    def test_touch_missing_key(self):
        self.assertFalse(self.cache.touch("missing"))
        self.cache.set("key", "value", timeout=1)
        self.advance(2)
        self.assertFalse(self.cache.touch("key"))

    def test_incr_and_decr(self):
        self.cache.set("hits", 1)
        self.assertEqual(self.cache.incr("hits"), 2)
        self.assertEqual(self.cache.incr("hits", 10), 12)
        self.assertEqual(self.cache.decr("hits"), 11)
        self.assertEqual(self.cache.decr("hits", 20), -9)
        self.assertEqual(self.cache.get("hits"), -9)

    def test_incr_missing_key(self):
        with self.assertRaises(ValueError):
            self.cache.incr("missing")
        self.cache.set("hits", 1, timeout=1)
        self.advance(2)
        with self.assertRaises(ValueError):
            self.cache.decr("hits")

    def test_get_or_set(self):
        self.assertEqual(self.cache.get_or_set("key", "default"), "default")
        self.assertEqual(self.cache.get_or_set("key", "other"), "default")
        self.assertEqual(self.cache.get_or_set("computed", lambda: 6 * 7), 42)
        self.assertEqual(self.cache.get("computed"), 42)

    def test_get_or_set_keeps_none(self):
        self.cache.set("key", None)
        self.assertIsNone(self.cache.get_or_set("key", "default"))

    def test_versions(self):
        self.cache.set("key", "v1")
        self.cache.set("key", "v2", version=2)
        self.assertEqual(self.cache.get("key"), "v1")
        self.assertEqual(self.cache.get("key", version=2), "v2")
        self.assertIsNone(self.cache.get("key", version=3))

    def test_delete_prefix(self):
        self.cache.set_many({"user:1:name": "Ann", "user:1:email": "ann@example.com", "user:2:name": "Bob"})
        self.assertEqual(self.cache.delete_prefix("user:1:"), 2)
        self.assertEqual(self.cache.get_many(["user:1:name", "user:1:email", "user:2:name"]), {"user:2:name": "Bob"})
        self.assertEqual(self.cache.delete_prefix("user:1:"), 0)

    def test_delete_prefix_counts_only_live_entries(self):
        self.cache.set("job:1", "done", timeout=5)
        self.cache.set("job:2", "running")
        self.advance(10)
        self.assertEqual(self.cache.delete_prefix("job:"), 1)

    def test_delete_prefix_with_backslashes(self):
        # keys built from Windows paths
        self.cache.set_many({"C:\\build\\app.o": 1, "C:\\build\\lib.o": 2, "C:\\cache\\index": 3})
        self.assertEqual(self.cache.delete_prefix("C:\\build\\"), 2)
        self.assertEqual(self.cache.get("C:\\cache\\index"), 3)

    def test_delete_prefix_stays_in_its_version(self):
        self.cache.set("page:home", "v1")
        self.cache.set("page:home", "v2", version=2)
        self.assertEqual(self.cache.delete_prefix("page:", version=2), 1)
        self.assertEqual(self.cache.get("page:home"), "v1")

    def test_culling(self):
        cache = self.make_cache(OPTIONS={"MAX_ENTRIES": 3})
        for number in range(1, 5):
            cache.set(f"key{number}", number)
        self.assertEqual(cache.get_many(["key1", "key2", "key3", "key4"]), {"key2": 2, "key3": 3, "key4": 4})

    def test_culling_drops_expired_entries_first(self):
        cache = self.make_cache(OPTIONS={"MAX_ENTRIES": 3})
        cache.set("old", 1)
        cache.set("short", 2, timeout=1)
        cache.set("new", 3)
        self.advance(2)
        cache.set("newest", 4)
        self.assertEqual(cache.get_many(["old", "short", "new", "newest"]), {"old": 1, "new": 3, "newest": 4})

    def test_overwriting_at_the_limit_culls_nothing(self):
        cache = self.make_cache(OPTIONS={"MAX_ENTRIES": 2})
        cache.set("a", 1)
        cache.set("b", 2)
        cache.set("b", 3)
        self.assertEqual(cache.get_many(["a", "b"]), {"a": 1, "b": 3})


class MemoryCacheTests(BackendTests, unittest.TestCase):
    alias = "memory"

    def test_backend(self):
        self.assertIsInstance(self.cache, MemoryCache)

    def test_culling_drops_the_least_recently_used(self):
        cache = self.make_cache(OPTIONS={"MAX_ENTRIES": 3})
        cache.set_many({"a": 1, "b": 2, "c": 3})
        cache.get("a")
        cache.set("d", 4)
        self.assertEqual(cache.get_many(["a", "b", "c", "d"]), {"a": 1, "c": 3, "d": 4})


class SQLiteCacheTests(BackendTests, unittest.TestCase):
    alias = "default"

    def test_backend(self):
        self.assertIsInstance(self.cache, SQLiteCache)

    def test_caches_in_memory_are_separate(self):
        other = self.make_cache()
        self.cache.set("key", "value")
        self.assertIsNone(other.get("key"))


class SQLiteFileTests(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.path = os.path.join(tmp.name, "cache.sqlite3")

    def open(self, **params):
        cache = SQLiteCache(self.path, params)
        self.addCleanup(cache.close)
        return cache

    def test_caches_on_one_file_share_entries(self):
        writer, reader = self.open(), self.open()
        writer.set("key", "value")
        self.assertEqual(reader.get("key"), "value")
        reader.delete("key")
        self.assertFalse(writer.has_key("key"))

    def test_entries_outlive_the_connection(self):
        cache = self.open()
        cache.set("key", "value", timeout=None)
        cache.close()
        self.assertEqual(self.open().get("key"), "value")

    def test_key_prefix_separates_caches_on_one_file(self):
        tenant_a, tenant_b = self.open(KEY_PREFIX="tenant-a"), self.open(KEY_PREFIX="tenant-b")
        tenant_a.set("key", "a")
        self.assertEqual(tenant_a.get("key"), "a")
        self.assertIsNone(tenant_b.get("key"))
        # clear() empties the whole table, whatever the prefix
        tenant_b.clear()
        self.assertIsNone(tenant_a.get("key"))

    def test_table_option(self):
        first = self.open(OPTIONS={"TABLE": "first_cache"})
        second = self.open(OPTIONS={"TABLE": "second_cache"})
        first.set("key", 1)
        second.set("key", 2)
        self.assertEqual((first.get("key"), second.get("key")), (1, 2))

    def test_table_name_must_be_an_identifier(self):
        with self.assertRaises(ValueError):
            SQLiteCache(":memory:", {"OPTIONS": {"TABLE": "cache; DROP TABLE users"}})
