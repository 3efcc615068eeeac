"""What every backend shares: keys, timeouts, and the operations built on a backend's primitives."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Iterator

from hoard.utils import import_string


class InvalidCacheKey(ValueError):
    """A key that cannot be stored."""


class CacheKeyWarning(RuntimeWarning):
    """A key this backend stores but memcached would refuse, so code using it won't move to memcached."""


class _DefaultTimeout:
    def __repr__(self) -> str:
        return "DEFAULT_TIMEOUT"


# "the cache's default timeout", which is not None: None means "never expires"
DEFAULT_TIMEOUT = _DefaultTimeout()

# memcached refuses longer keys, and keys with whitespace or control characters
MEMCACHE_MAX_KEY_LENGTH = 250


def default_key_func(key: str, key_prefix: str, version: int) -> str:
    return f"{key_prefix}:{version}:{key}"


def get_key_func(key_func: str | Callable | None) -> Callable[[str, str, int], str]:
    if key_func is None:
        return default_key_func
    if callable(key_func):
        return key_func
    return import_string(key_func)


def memcache_key_warnings(key: str) -> Iterator[str]:
    if len(key) > MEMCACHE_MAX_KEY_LENGTH:
        yield f"memcached would refuse key {key!r}: it is longer than {MEMCACHE_MAX_KEY_LENGTH} characters"
    if any(ord(char) < 33 or ord(char) == 127 for char in key):
        yield f"memcached would refuse key {key!r}: it contains whitespace or control characters"


class BaseCache:
    """A cache: keys are strings, values anything picklable.

    Backends implement add, get, set, touch, delete, delete_prefix and clear; the rest is
    built on those here and a backend may override it with something faster.

    Timeouts are in seconds. DEFAULT_TIMEOUT (the default everywhere) means the cache's
    TIMEOUT (300 unless configured), None means the entry never expires, and zero or a
    negative number means it expires at once.
    """

    # "no value" where None is a value like any other
    _missing = object()

    def __init__(self, params: dict) -> None:
        self.default_timeout = params.get("TIMEOUT", 300)
        options = params.get("OPTIONS", {})
        self._max_entries = int(options.get("MAX_ENTRIES", 300))
        self.key_prefix = params.get("KEY_PREFIX", "")
        self.version = params.get("VERSION", 1)
        self.key_func = get_key_func(params.get("KEY_FUNCTION"))

    def _now(self) -> float:
        # the one place the backends read the clock
        return time.time()

    def get_backend_timeout(self, timeout=DEFAULT_TIMEOUT) -> float | None:
        """When an entry written now with `timeout` expires: a timestamp, or None for never."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if not timeout:
            return None
        return self._now() + timeout

    def make_key(self, key: str, version: int | None = None) -> str:
        """The key as the backend stores it: with the cache's prefix and a version."""
        return self.key_func(key, self.key_prefix, self.version if version is None else version)

    def validate_key(self, key: str) -> None:
        """Warn about keys memcached would refuse: code that uses them only works here."""
        if not isinstance(key, str):
            raise InvalidCacheKey(f"cache keys are strings, not {type(key).__name__}")
        for message in memcache_key_warnings(key):
            # through make_and_validate_key and the backend's method to the caller's line
            warnings.warn(message, CacheKeyWarning, stacklevel=4)

    def make_and_validate_key(self, key: str, version: int | None = None) -> str:
        key = self.make_key(key, version)
        self.validate_key(key)
        return key

    # --- the primitives every backend implements -------------------------------------------------

    def add(self, key: str, value, timeout=DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        """Store `value` unless `key` already holds one; returns whether it was stored."""
        raise NotImplementedError

    def get(self, key: str, default=None, version: int | None = None):
        """The value of `key`, or `default` when the cache holds none (or it has expired)."""
        raise NotImplementedError

    def set(self, key: str, value, timeout=DEFAULT_TIMEOUT, version: int | None = None) -> None:
        raise NotImplementedError

    def touch(self, key: str, timeout=DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        """Give `key` a new timeout, counted from now; returns whether the key was there."""
        raise NotImplementedError

    def delete(self, key: str, version: int | None = None) -> bool:
        """Remove `key`; returns whether it held a value."""
        raise NotImplementedError

    def delete_prefix(self, prefix: str, version: int | None = None) -> int:
        """Remove every key that starts with `prefix`; returns how many held a value."""
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release whatever the backend holds open."""

    # --- built on the primitives -----------------------------------------------------------------

    def get_many(self, keys: Iterable[str], version: int | None = None) -> dict:
        """The keys the cache holds values for, with their values."""
        found = {}
        for key in keys:
            value = self.get(key, self._missing, version=version)
            if value is not self._missing:
                found[key] = value
        return found

    def set_many(self, mapping: dict, timeout=DEFAULT_TIMEOUT, version: int | None = None) -> list[str]:
        """Store every item; returns the keys that could not be stored."""
        for key, value in mapping.items():
            self.set(key, value, timeout=timeout, version=version)
        return []

    def delete_many(self, keys: Iterable[str], version: int | None = None) -> None:
        for key in keys:
            self.delete(key, version=version)

    def has_key(self, key: str, version: int | None = None) -> bool:
        return self.get(key, self._missing, version=version) is not self._missing

    def get_or_set(self, key: str, default, timeout=DEFAULT_TIMEOUT, version: int | None = None):
        """The value of `key`; when there is none, store `default` (called first if callable)."""
        value = self.get(key, self._missing, version=version)
        if value is self._missing:
            value = default() if callable(default) else default
            self.add(key, value, timeout=timeout, version=version)
            # someone else may have stored a value meanwhile: theirs is the one the cache holds
            value = self.get(key, value, version=version)
        return value

    def incr(self, key: str, delta: int = 1, version: int | None = None):
        """Add `delta` to the value of `key` and return the result; ValueError if there is none."""
        value = self.get(key, self._missing, version=version)
        if value is self._missing:
            raise ValueError(f"key {key!r} not found")
        new_value = value + delta
        self.set(key, new_value, version=version)
        return new_value

    def decr(self, key: str, delta: int = 1, version: int | None = None):
        return self.incr(key, -delta, version=version)

    def __contains__(self, key: str) -> bool:
        return self.has_key(key)
