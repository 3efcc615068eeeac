"""Model backends behind one protocol; `open_provider` turns a `--model` spec into one."""

from __future__ import annotations

from atlas_agent.models.backends import backend_for
from atlas_agent.models.base import Model, ModelProvider, Turn
from atlas_agent.models.options import ModelOptions

__all__ = [
    "Model",
    "ModelOptions",
    "ModelProvider",
    "Turn",
    "open_provider",
]


def open_provider(spec: str, options: ModelOptions | None = None) -> ModelProvider:
    """Claude ids / `anthropic:MODEL`, `openai:BASE_URL/MODEL`, `local:smollm2` / `gguf:PATH` (CPU, in-process),
    `exl2:MODEL_DIR` / `exl3:MODEL_DIR` (GPU, in-process), or `replay:FILE` (`replay:NAME` a bundled one)."""
    backend, options = backend_for(spec), options or ModelOptions()
    backend.check_speculation(options.speculation)
    return backend.open(options)
