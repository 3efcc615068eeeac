"""Model backends behind one protocol; `open_provider` turns a `--model` spec into one."""

from __future__ import annotations

from pathlib import Path

from atlas_agent.models.base import Model, ModelError, ModelProvider, Turn
from atlas_agent.models.options import ModelOptions
from atlas_agent.models.replay import ReplayProvider

__all__ = [
    "Model",
    "ModelError",
    "ModelOptions",
    "ModelProvider",
    "Turn",
    "open_provider",
]


BUNDLED_REPLAYS = Path(__file__).parent / "replays"


def open_provider(spec: str, options: ModelOptions | None = None) -> ModelProvider:
    """Claude ids / `anthropic:MODEL`, `openai:BASE_URL/MODEL`, `local:smollm2` / `gguf:PATH` (CPU, in-process),
    `exl2:MODEL_DIR` (GPU, in-process),
    or `replay:FILE` (`replay:NAME` a bundled one)."""
    options = options or ModelOptions()
    kind, _, rest = spec.partition(":")
    if kind == "replay" and rest:
        bundled = BUNDLED_REPLAYS / f"{rest}.yaml"
        return ReplayProvider(bundled if bundled.is_file() and not Path(rest).exists() else Path(rest), options)
    if spec.startswith("claude-") or (kind == "anthropic" and rest):
        from atlas_agent.models.claude import ClaudeProvider  # the SDK loads only when a Claude run needs it

        return ClaudeProvider(rest if kind == "anthropic" else spec, options)
    if kind == "openai" and rest:
        from atlas_agent.models.openai_client import open_openai

        return open_openai(rest, options)
    if kind in ("local", "gguf") and rest:
        from atlas_agent.models.gguf import open_local  # llama.cpp loads only when a CPU run needs it

        return open_local(kind, rest, options)
    if kind == "exl2" and rest:
        from atlas_agent.models.exl2 import Exl2Provider  # ExLlamaV2 and torch load only for GPU runs

        return Exl2Provider(Path(rest).expanduser(), options)
    raise ModelError(
        f"unknown model {spec!r}: use a Claude id (claude-sonnet-4-5), openai:BASE_URL/MODEL, local:smollm2, "
        "gguf:PATH, exl2:MODEL_DIR, or replay:FILE.yaml"
    )
