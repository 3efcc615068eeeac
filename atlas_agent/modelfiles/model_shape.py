"""The shape of a model as its Hugging Face config.json gives it: what sizes its weights and KV cache."""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from atlas_agent.errors import AtlasError

_REQUIRED = ("num_hidden_layers", "hidden_size", "num_attention_heads", "vocab_size", "intermediate_size")


class VramError(AtlasError, ValueError):
    """A planner input is unusable: a size that does not parse, an incomplete config.json, no bpw."""


class QuantFormat(StrEnum):
    """How quantized weights are stored: ExLlamaV2's EXL2 or ExLlamaV3's EXL3 (`quant_method`)."""

    EXL2 = "exl2"
    EXL3 = "exl3"


class ModelShape(BaseModel):
    """The parts of a Hugging Face config.json that size the weights and the KV cache."""

    model_config = ConfigDict(frozen=True)

    name: str
    num_hidden_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    tie_word_embeddings: bool = False
    max_position_embeddings: int = Field(2048, gt=0)  # exllamav2's fallback when config.json names none
    attention_bias: bool = False  # Qwen2 has q/k/v biases
    quant_format: QuantFormat = QuantFormat.EXL2  # the format `bpw` counts in
    bpw: float | None = None  # from an EXL2 or EXL3 quantization_config
    head_bits: int | None = None

    @property
    def q_dim(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_key_value_heads * self.head_dim

    @property
    def padded_vocab(self) -> int:
        return self.vocab_size + -self.vocab_size % 32  # ExLlamaV2Linear pads out_features to 32


def load_model_shape(source: str | Path | Mapping[str, Any], name: str | None = None) -> ModelShape:
    """A model directory, its config.json (any file name), or the parsed dict."""
    if isinstance(source, Mapping):
        config = dict(source)
        default = str(config.get("_name_or_path") or "model").rstrip("/").rsplit("/", 1)[-1]
        return _shape_from_config(config, name or default)
    path = Path(source)
    file = path / "config.json" if path.is_dir() else path
    try:
        config = dict(json.loads(file.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise VramError(f"cannot read a model config from {file}: {exc}") from exc
    default = file.parent.resolve().name if file.name == "config.json" else file.stem.removesuffix("-config")
    return _shape_from_config(config, name or default)


def _shape_from_config(config: dict[str, Any], name: str) -> ModelShape:
    missing = [key for key in _REQUIRED if key not in config]
    if missing:
        raise VramError(f"{name}: config.json lacks {', '.join(missing)}")
    if config.get("num_local_experts") or config.get("num_experts"):
        raise VramError(f"{name}: mixture-of-experts models are not supported by the VRAM planner")
    quant = config.get("quantization_config") or {}
    method = str(quant.get("quant_method"))
    quantized = method in tuple(QuantFormat)
    kind = " ".join([*config.get("architectures", []), str(config.get("model_type", ""))]).lower()
    heads = config["num_attention_heads"]
    try:
        return ModelShape(
            name=name,
            **{key: config[key] for key in _REQUIRED},
            num_key_value_heads=config.get("num_key_value_heads") or heads,
            head_dim=config.get("head_dim") or config["hidden_size"] // heads,
            tie_word_embeddings=config.get("tie_word_embeddings", False),
            max_position_embeddings=config.get("max_position_embeddings", 2048),
            attention_bias=config.get("attention_bias", "qwen2" in kind),
            quant_format=QuantFormat(method) if quantized else QuantFormat.EXL2,
            bpw=quant.get("bits") if quantized else None,
            head_bits=quant.get("head_bits") if quantized else None,
        )
    except ValidationError as exc:
        raise VramError(f"{name}: config.json has unusable values: {exc.errors()[0]['msg']}") from exc
