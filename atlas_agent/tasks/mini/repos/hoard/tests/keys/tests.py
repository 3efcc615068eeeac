import unittest
import warnings

from hoard import CacheKeyWarning, InvalidCacheKey
from hoard.backends.memory import MemoryCache


def reversed_key(key, key_prefix, version):
    return f"{key}|{version}|{key_prefix}"


class MakeKeyTests(unittest.TestCase):
    def test_default_format(self):
        cache = MemoryCache("", {})
        self.assertEqual(cache.make_key("user:1"), ":1:user:1")
        self.assertEqual(cache.make_key("user:1", version=3), ":3:user:1")

    def test_prefix_and_version(self):
        cache = MemoryCache("", {"KEY_PREFIX": "site", "VERSION": 2})
        self.assertEqual(cache.make_key("user:1"), "site:2:user:1")
        self.assertEqual(cache.make_key("user:1", version=5), "site:5:user:1")

    def test_key_function(self):
        cache = MemoryCache("", {"KEY_PREFIX": "site", "KEY_FUNCTION": reversed_key})
        self.assertEqual(cache.make_key("user:1"), "user:1|1|site")

    def test_key_function_by_dotted_path(self):
        cache = MemoryCache("", {"KEY_FUNCTION": "keys.tests.reversed_key"})
        self.assertEqual(cache.make_key("k"), "k|1|")

    def test_configured_version_is_the_default(self):
        v1, v2 = MemoryCache("", {}), MemoryCache("", {"VERSION": 2})
        v2._cache = v1._cache
        v2._expires = v1._expires
        v1.set("key", "old")
        self.assertIsNone(v2.get("key"))
        self.assertEqual(v2.get("key", version=1), "old")


class ValidateKeyTests(unittest.TestCase):
    def setUp(self):
        self.cache = MemoryCache("", {})

    def test_plain_keys_do_not_warn(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            self.cache.set("user:1:profile", 1)
            self.cache.set("k" * 247, 2)
        self.assertEqual(self.cache.get("user:1:profile"), 1)

    def test_long_key_warns(self):
        with self.assertWarnsRegex(CacheKeyWarning, "longer than 250"):
            self.cache.set("k" * 250, "value")
        # stored all the same: only memcached would refuse it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CacheKeyWarning)
            self.assertEqual(self.cache.get("k" * 250), "value")

    def test_whitespace_and_control_characters_warn(self):
        for key in ("two words", "tab\there", "line\nbreak", "bell\x07", "del\x7f"):
            with self.assertWarnsRegex(CacheKeyWarning, "whitespace or control characters"):
                self.cache.set(key, "value")

    def test_key_function_must_return_a_string(self):
        cache = MemoryCache("", {"KEY_FUNCTION": lambda key, prefix, version: (key, version)})
        with self.assertRaises(InvalidCacheKey):
            cache.set("key", "value")
