"""hoard: a small cache with interchangeable backends (in-process memory, SQLite)."""

from hoard.backends.base import DEFAULT_TIMEOUT, BaseCache, CacheKeyWarning, InvalidCacheKey
from hoard.conf import ImproperlyConfigured, settings
from hoard.handler import CacheHandler, InvalidCacheBackendError, caches

__version__ = "0.3.0"

__all__ = [
    "DEFAULT_TIMEOUT",
    "BaseCache",
    "CacheHandler",
    "CacheKeyWarning",
    "ImproperlyConfigured",
    "InvalidCacheBackendError",
    "InvalidCacheKey",
    "caches",
    "settings",
]
