"""Model backends behind one protocol; `open_provider` turns a `--model` spec into one."""

from __future__ import annotations

from pathlib import Path

from atlas_agent.models.base import (
    Message,
    Model,
    ModelError,
    ModelProvider,
    ToolCall,
    ToolSpec,
    Turn,
    Usage,
)
from atlas_agent.models.replay import ReplayProvider

__all__ = [
    "Message",
    "Model",
    "ModelError",
    "ModelProvider",
    "ToolCall",
    "ToolSpec",
    "Turn",
    "Usage",
    "open_provider",
]


BUNDLED_REPLAYS = Path(__file__).parent / "replays"


def open_provider(spec: str) -> ModelProvider:
    """`replay:FILE` plays a scripted run (`replay:NAME` a bundled one); more backends register here."""
    kind, _, rest = spec.partition(":")
    if kind == "replay" and rest:
        bundled = BUNDLED_REPLAYS / f"{rest}.yaml"
        return ReplayProvider(bundled if bundled.is_file() and not Path(rest).exists() else Path(rest))
    raise ModelError(f"unknown model {spec!r}: use replay:FILE.yaml (a scripted run)")
