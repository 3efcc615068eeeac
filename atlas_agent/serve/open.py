"""`atlas serve MODEL`: a model spec → the engine that serves it."""

from __future__ import annotations

from pathlib import Path

from atlas_agent.errors import ModelError
from atlas_agent.models.engine import Engine

SPECS = "local:smollm2, gguf:PATH or exl2:MODEL_DIR"


def open_engine(spec: str, *, agents: int = 1, context: int | None = None, cache: str | None = None) -> Engine:
    """`local:NAME` / `gguf:PATH` (llama.cpp, CPU) or `exl2:DIR` / a model directory (ExLlamaV2, GPU).

    `agents`, `context` and `cache` size the GPU's KV cache (see `atlas plan-vram`); the CPU engine
    serves one stream with the window its file was trained for.
    """
    kind, _, rest = spec.partition(":")
    if kind in ("local", "gguf") and rest:
        from atlas_agent.modelfiles.bundled import bundled_gguf
        from atlas_agent.models.gguf import load_engine
        from atlas_agent.models.gguf_engine import GGUFEngine

        path = bundled_gguf(rest) if kind == "local" else Path(rest).expanduser()
        return GGUFEngine(load_engine(path), rest if kind == "local" else path.stem)
    model_dir = Path(rest if kind == "exl2" and rest else spec).expanduser()
    if kind != "exl2" and not model_dir.is_dir():
        raise ModelError(f"cannot serve {spec!r}: use {SPECS}")
    from atlas_agent.models.exl2 import load_runtime

    return load_runtime(model_dir, agents=agents, context=context, cache=cache)
