"""`atlas serve MODEL`: a model spec → the engine that serves it."""

from __future__ import annotations

from pathlib import Path

from atlas_agent.errors import ModelError
from atlas_agent.models.backends import SERVABLE, EngineSizing, backend_for
from atlas_agent.models.engine import Engine
from atlas_agent.models.gpu_files import directory_kind
from atlas_agent.models.options import Speculation


def open_engine(
    spec: str,
    *,
    agents: int = 1,
    context: int | None = None,
    cache: str | None = None,
    speculation: Speculation | None = None,
    draft_model: str | None = None,
) -> Engine:
    """`local:NAME` / `gguf:PATH` (llama.cpp, CPU), `exl2:DIR` (ExLlamaV2, GPU), `exl3:DIR` (ExLlamaV3,
    GPU) or a bare model directory: EXL3 when its config.json says `quant_method: exl3`, else EXL2.

    `agents`, `context` and `cache` size the GPU's KV cache (see `atlas plan-vram`); the CPU engine
    serves one stream with the window its file was trained for. `speculation` None: the default;
    `draft_model` is the directory `speculation="draft"` drafts with, and needs it.
    """
    if (speculation == "draft") != (draft_model is not None):
        raise ModelError("--speculation draft needs --draft-model DIR, and --draft-model needs --speculation draft")
    if ":" not in spec and Path(spec).expanduser().is_dir():
        spec = f"{directory_kind(Path(spec).expanduser())}:{spec}"
    try:
        backend = backend_for(spec)
    except ModelError:
        raise ModelError(f"cannot serve {spec!r}: use {SERVABLE}") from None
    sizing = EngineSizing(agents=agents, context=context, cache=cache, speculation=speculation, draft_model=draft_model)
    return backend.open_engine(sizing)
