"""`atlas serve MODEL`: a model spec → the engine that serves it."""

from __future__ import annotations

from pathlib import Path

from atlas_agent.errors import ModelError
from atlas_agent.models.backends import SERVABLE, EngineSizing, backend_for
from atlas_agent.models.engine import Engine
from atlas_agent.models.options import Speculation


def open_engine(
    spec: str,
    *,
    agents: int = 1,
    context: int | None = None,
    cache: str | None = None,
    speculation: Speculation | None = None,
) -> Engine:
    """`local:NAME` / `gguf:PATH` (llama.cpp, CPU) or `exl2:DIR` / a model directory (ExLlamaV2, GPU).

    `agents`, `context` and `cache` size the GPU's KV cache (see `atlas plan-vram`); the CPU engine
    serves one stream with the window its file was trained for. `speculation` None: the default.
    """
    if ":" not in spec and Path(spec).expanduser().is_dir():
        spec = f"exl2:{spec}"  # a bare model directory is an EXL2 one
    try:
        backend = backend_for(spec)
    except ModelError:
        raise ModelError(f"cannot serve {spec!r}: use {SERVABLE}") from None
    sizing = EngineSizing(agents=agents, context=context, cache=cache, speculation=speculation)
    return backend.open_engine(sizing)
