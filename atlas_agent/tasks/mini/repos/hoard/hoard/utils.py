"""Small helpers shared by the settings, the handler and the backends."""

from __future__ import annotations

import importlib


def import_string(dotted_path: str):
    """The object a dotted path such as "hoard.backends.memory.MemoryCache" names."""
    module_path, _, name = dotted_path.rpartition(".")
    if not module_path:
        raise ImportError(f"{dotted_path!r} is not a dotted path")
    module = importlib.import_module(module_path)
    try:
        return getattr(module, name)
    except AttributeError:
        raise ImportError(f"module {module_path!r} has no attribute {name!r}") from None
