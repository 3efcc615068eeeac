"""Settings: read from the module that HOARD_SETTINGS_MODULE names, or given to `settings.configure()`.

Only upper-case names of the module are settings. Anything not set falls back to DEFAULTS,
so hoard works without any settings at all (one in-process cache).
"""

from __future__ import annotations

import importlib
import os

ENVIRONMENT_VARIABLE = "HOARD_SETTINGS_MODULE"

DEFAULTS = {
    "CACHES": {"default": {"BACKEND": "hoard.backends.memory.MemoryCache"}},
}


class ImproperlyConfigured(Exception):
    """The settings are missing something or don't make sense."""


class LazySettings:
    """Settings loaded on first use, so that importing hoard never needs them."""

    def __init__(self) -> None:
        self._values: dict | None = None

    @property
    def configured(self) -> bool:
        return self._values is not None

    def configure(self, **options) -> None:
        """Use these settings instead of a settings module; only before the first use."""
        if self._values is not None:
            raise RuntimeError("settings are already configured")
        self._values = {**DEFAULTS, **options}

    def _load(self) -> dict:
        values = dict(DEFAULTS)
        name = os.environ.get(ENVIRONMENT_VARIABLE)
        if name:
            try:
                module = importlib.import_module(name)
            except ImportError as e:
                raise ImproperlyConfigured(f"cannot import settings module {name!r}: {e}") from e
            values.update((key, getattr(module, key)) for key in dir(module) if key.isupper())
        return values

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if self._values is None:
            self._values = self._load()
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no setting named {name}") from None


settings = LazySettings()
