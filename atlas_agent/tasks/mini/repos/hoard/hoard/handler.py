"""Named caches, built from the CACHES setting on first use."""

from __future__ import annotations

import threading

from hoard.backends.base import BaseCache
from hoard.conf import ImproperlyConfigured, settings
from hoard.utils import import_string

DEFAULT_CACHE_ALIAS = "default"


class InvalidCacheBackendError(ImproperlyConfigured):
    """A cache alias that is not configured, or whose backend cannot be loaded."""


class CacheHandler:
    """`caches["alias"]` is the one cache of that alias; `caches.create("alias")` a new one.

    The configuration is a CACHES-shaped dict: alias -> {"BACKEND": dotted path, "LOCATION": ...,
    "TIMEOUT": ..., "KEY_PREFIX": ..., "VERSION": ..., "KEY_FUNCTION": ..., "OPTIONS": {...}}.
    Without one, the handler reads the CACHES setting when a cache is first asked for.
    """

    def __init__(self, config: dict | None = None) -> None:
        self._config = config
        self._caches: dict[str, BaseCache] = {}
        self._lock = threading.Lock()

    @property
    def config(self) -> dict:
        return settings.CACHES if self._config is None else self._config

    def create(self, alias: str, **overrides) -> BaseCache:
        """A new cache configured as `alias`, with `overrides` replacing parts of its configuration."""
        try:
            params = {**self.config[alias], **overrides}
        except KeyError:
            raise InvalidCacheBackendError(f"no cache named {alias!r} in CACHES") from None
        backend = params.pop("BACKEND", None)
        if not backend:
            raise InvalidCacheBackendError(f"cache {alias!r} has no BACKEND")
        location = params.pop("LOCATION", "")
        try:
            backend_class = import_string(backend)
        except ImportError as e:
            raise InvalidCacheBackendError(f"cannot load backend {backend!r}: {e}") from e
        return backend_class(location, params)

    def __getitem__(self, alias: str) -> BaseCache:
        with self._lock:
            if alias not in self._caches:
                self._caches[alias] = self.create(alias)
            return self._caches[alias]

    def __contains__(self, alias: str) -> bool:
        return alias in self.config

    def all(self) -> list[BaseCache]:
        """The caches created so far."""
        with self._lock:
            return list(self._caches.values())

    def close_all(self) -> None:
        with self._lock:
            caches, self._caches = list(self._caches.values()), {}
        for cache in caches:
            cache.close()


caches = CacheHandler()
