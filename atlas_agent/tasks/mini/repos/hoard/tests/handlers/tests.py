import os
import unittest
from unittest import mock

import test_sqlite

from hoard import CacheHandler, InvalidCacheBackendError, caches, settings
from hoard.backends.memory import MemoryCache
from hoard.backends.sqlite import SQLiteCache
from hoard.conf import ENVIRONMENT_VARIABLE, LazySettings


class CacheHandlerTests(unittest.TestCase):
    def test_caches_come_from_the_settings(self):
        self.assertIsInstance(caches["default"], SQLiteCache)
        self.assertIsInstance(caches["memory"], MemoryCache)

    def test_one_cache_per_alias(self):
        self.assertIs(caches["default"], caches["default"])
        self.assertIn(caches["default"], caches.all())

    def test_create_makes_a_new_cache(self):
        self.assertIsNot(caches.create("default"), caches["default"])

    def test_alias_membership(self):
        self.assertIn("memory", caches)
        self.assertNotIn("redis", caches)

    def test_unknown_alias(self):
        with self.assertRaisesRegex(InvalidCacheBackendError, "no cache named 'redis'"):
            caches["redis"]

    def test_backend_that_cannot_be_imported(self):
        handler = CacheHandler({"default": {"BACKEND": "hoard.backends.redis.RedisCache"}})
        with self.assertRaisesRegex(InvalidCacheBackendError, "cannot load backend"):
            handler["default"]

    def test_backend_is_required(self):
        handler = CacheHandler({"default": {"LOCATION": ":memory:"}})
        with self.assertRaisesRegex(InvalidCacheBackendError, "has no BACKEND"):
            handler["default"]

    def test_configuration_reaches_the_backend(self):
        """TIMEOUT, KEY_PREFIX, VERSION and OPTIONS from CACHES reach the backend."""
        handler = CacheHandler(
            {
                "default": {
                    "BACKEND": "hoard.backends.sqlite.SQLiteCache",
                    "TIMEOUT": 60,
                    "KEY_PREFIX": "site",
                    "VERSION": 4,
                    "OPTIONS": {"MAX_ENTRIES": 10, "TABLE": "site_cache"},
                }
            }
        )
        cache = handler["default"]
        self.addCleanup(handler.close_all)
        self.assertEqual(cache.default_timeout, 60)
        self.assertEqual(cache.make_key("k"), "site:4:k")
        self.assertEqual(cache._max_entries, 10)
        self.assertEqual(cache._table, "site_cache")

    def test_timeout_none_in_the_configuration(self):
        handler = CacheHandler({"default": {"BACKEND": "hoard.backends.memory.MemoryCache", "TIMEOUT": None}})
        cache = handler["default"]
        cache._now = lambda: 1e12
        cache.set("key", "value")
        cache._now = lambda: 2e12
        self.assertEqual(cache.get("key"), "value")

    def test_close_all(self):
        handler = CacheHandler({"default": {"BACKEND": "hoard.backends.sqlite.SQLiteCache"}})
        first = handler["default"]
        handler.close_all()
        self.assertEqual(handler.all(), [])
        self.assertIsNot(handler["default"], first)
        handler.close_all()


class SettingsTests(unittest.TestCase):
    def test_settings_module(self):
        self.assertEqual(os.environ[ENVIRONMENT_VARIABLE], "test_sqlite")
        self.assertEqual(settings.CACHES, test_sqlite.CACHES)

    def test_defaults_without_a_settings_module(self):
        with mock.patch.dict(os.environ):
            del os.environ[ENVIRONMENT_VARIABLE]
            fresh = LazySettings()
            self.assertEqual(fresh.CACHES["default"]["BACKEND"], "hoard.backends.memory.MemoryCache")

    def test_configure(self):
        fresh = LazySettings()
        fresh.configure(CACHES={"default": {"BACKEND": "hoard.backends.sqlite.SQLiteCache"}})
        self.assertTrue(fresh.configured)
        self.assertEqual(fresh.CACHES["default"]["BACKEND"], "hoard.backends.sqlite.SQLiteCache")
        with self.assertRaises(RuntimeError):
            fresh.configure()

    def test_unknown_setting(self):
        with self.assertRaises(AttributeError):
            settings.NOT_A_SETTING
