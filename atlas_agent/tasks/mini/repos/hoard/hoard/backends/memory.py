"""A cache in this process's memory: fast, private to the process, gone when it exits."""

from __future__ import annotations

import pickle
import threading
from collections import OrderedDict

from hoard.backends.base import DEFAULT_TIMEOUT, BaseCache


class MemoryCache(BaseCache):
    """Values are pickled, so what `get` returns is a copy that callers may change freely.

    At MAX_ENTRIES (OPTIONS, default 300) expired entries are dropped first, then the least
    recently used ones. LOCATION is ignored: every MemoryCache has its own store.
    """

    def __init__(self, location: str, params: dict) -> None:
        super().__init__(params)
        # key -> pickled value, least recently used first
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        # key -> expiry timestamp, or None for never
        self._expires: dict[str, float | None] = {}
        self._lock = threading.Lock()

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        key = self.make_and_validate_key(key, version)
        pickled = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        with self._lock:
            if self._alive(key):
                return False
            self._store(key, pickled, timeout)
            return True

    def get(self, key, default=None, version=None):
        key = self.make_and_validate_key(key, version)
        with self._lock:
            if not self._alive(key):
                return default
            self._cache.move_to_end(key)
            pickled = self._cache[key]
        return pickle.loads(pickled)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        key = self.make_and_validate_key(key, version)
        pickled = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        with self._lock:
            self._store(key, pickled, timeout)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        key = self.make_and_validate_key(key, version)
        with self._lock:
            if not self._alive(key):
                return False
            self._expires[key] = self.get_backend_timeout(timeout)
            return True

    def delete(self, key, version=None):
        key = self.make_and_validate_key(key, version)
        with self._lock:
            return self._alive(key) and self._delete(key)

    def delete_prefix(self, prefix, version=None):
        prefix = self.make_key(prefix, version)
        with self._lock:
            self._purge_expired()
            doomed = [key for key in self._cache if key.startswith(prefix)]
            for key in doomed:
                self._delete(key)
        return len(doomed)

    def clear(self):
        with self._lock:
            self._cache.clear()
            self._expires.clear()

    # --- with the lock held ----------------------------------------------------------------------

    def _alive(self, key: str) -> bool:
        """Whether `key` holds a value that has not expired; an expired one is dropped."""
        if key not in self._cache:
            return False
        expires = self._expires[key]
        if expires is None or expires > self._now():
            return True
        self._delete(key)
        return False

    def _store(self, key: str, pickled: bytes, timeout) -> None:
        if key not in self._cache and len(self._cache) >= self._max_entries:
            self._cull()
        self._cache[key] = pickled
        self._cache.move_to_end(key)
        self._expires[key] = self.get_backend_timeout(timeout)

    def _delete(self, key: str) -> bool:
        if key not in self._cache:
            return False
        del self._cache[key]
        del self._expires[key]
        return True

    def _purge_expired(self) -> None:
        now = self._now()
        for key in [k for k, expires in self._expires.items() if expires is not None and expires <= now]:
            self._delete(key)

    def _cull(self) -> None:
        # room for one more entry: the expired ones go first, then the least recently used
        self._purge_expired()
        while self._cache and len(self._cache) >= self._max_entries:
            self._delete(next(iter(self._cache)))
