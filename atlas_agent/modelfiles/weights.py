"""GPU bytes of a model's quantized weights, in EXL2 (ExLlamaV2) or EXL3 (ExLlamaV3); docs/vram.md gives the sources.

EXL2's bits per weight already include its scales, groups and permutations (QParams.total_bits). An
EXL3 linear stores its weight as a trellis holding exactly K bits per weight (in/16 x out/16 tiles of
16*K int16, K the tensor's bitrate; the converter mixes integer K across tensors to reach a fractional
average), plus a sign vector per input and per output feature that exllamav3 keeps unpacked in FP16
(`suh`, `svh`): no groups and no scales. The token embedding table is counted only on request: ExLlamaV2
keeps it in system RAM, and ExLlamaV3's own weight-size comparisons leave it out the same way.
"""

from __future__ import annotations

import math

from atlas_agent.modelfiles.model_shape import ModelShape, QuantFormat

DEFAULT_HEAD_BITS = 6  # the EXL2 and EXL3 converters' default head_bits
EXL3_SIGN_BYTES = 2  # one FP16 sign per input and per output feature of an EXL3 linear

# EXL2 conversion/qparams.py qparams_headoptions: head_bits -> (group size, ((bits, share of rows), ...)).
_HEAD_QPARAMS: dict[int, tuple[int, tuple[tuple[int, float], ...]]] = {
    2: (32, ((4, 0.3), (2, 0.7))),
    3: (32, ((4, 0.15), (3, 0.85))),
    4: (32, ((6, 0.15), (4, 0.85))),
    5: (128, ((6, 0.15), (5, 0.85))),
    6: (128, ((8, 0.15), (6, 0.85))),
    8: (128, ((8, 1.0),)),
}


def _linear_shapes(shape: ModelShape) -> list[tuple[int, int]]:
    """(in, out) features of one decoder layer's quantized matrices: q, k, v, o, gate, up, down."""
    h, q, kv, inner = shape.hidden_size, shape.q_dim, shape.kv_dim, shape.intermediate_size
    return [(h, q), (h, kv), (h, kv), (q, h), (h, inner), (h, inner), (inner, h)]


def _linear_params(shape: ModelShape) -> int:
    return sum(rows * columns for rows, columns in _linear_shapes(shape))


def _vector_params(shape: ModelShape) -> int:
    """FP16 vectors of one decoder layer: two RMSNorm weights, plus q/k/v biases where the model has them."""
    biases = shape.q_dim + 2 * shape.kv_dim if shape.attention_bias else 0
    return 2 * shape.hidden_size + biases


def parameter_count(shape: ModelShape) -> int:
    """Parameters as the checkpoint counts them: layers, final norm, embeddings, and lm_head unless tied."""
    layers = shape.num_hidden_layers * (_linear_params(shape) + _vector_params(shape))
    tables = shape.vocab_size * shape.hidden_size * (1 if shape.tie_word_embeddings else 2)
    return layers + shape.hidden_size + tables


def head_bpw(head_bits: int) -> float:
    """Stored bits per weight of the EXL2 head: its bit mix plus a 4-bit scale per group and column."""
    if head_bits >= 16:
        return 16.0
    group, mix = _HEAD_QPARAMS.get(head_bits, (32, ((head_bits, 1.0),)))
    return sum(bits * share for bits, share in mix) + 4 / group  # other per-group terms are < 0.001 bpw


def exl3_linear_bytes(in_features: int, out_features: int, bits: float) -> float:
    """One EXL3 linear on the GPU: `bits` per weight in its trellis, and its FP16 sign vectors
    (16 bits: an unquantized FP16 matrix)."""
    if bits >= 16:
        return in_features * out_features * 2
    return in_features * out_features * bits / 8 + EXL3_SIGN_BYTES * (in_features + out_features)


def _quantized_bytes(shape: ModelShape, bpw: float, head_bits: int, quant_format: QuantFormat) -> float:
    """The decoder layers' matrices and the head (on the GPU even when tied to the embeddings)."""
    if quant_format is QuantFormat.EXL3:
        layer = sum(exl3_linear_bytes(rows, columns, bpw) for rows, columns in _linear_shapes(shape))
        return shape.num_hidden_layers * layer + exl3_linear_bytes(shape.hidden_size, shape.vocab_size, head_bits)
    layers = shape.num_hidden_layers * _linear_params(shape) * bpw / 8
    return layers + shape.hidden_size * shape.padded_vocab * head_bpw(head_bits) / 8


def weight_bytes(
    shape: ModelShape,
    bpw: float,
    head_bits: int = DEFAULT_HEAD_BITS,
    embeddings_in_vram: bool = False,
    quant_format: QuantFormat | None = None,
) -> int:
    """GPU bytes of the weights, in `quant_format` (default: the model's own)."""
    quantized = _quantized_bytes(shape, bpw, head_bits, quant_format or shape.quant_format)
    vectors = (shape.num_hidden_layers * _vector_params(shape) + shape.hidden_size) * 2
    # ExLlamaV2 keeps the token embedding table in system RAM: set_device_map(embed_cpu=True) and
    # load_autosplit both put module 0 on device -1 (model.py), so it costs no VRAM by default.
    table = shape.vocab_size * shape.hidden_size * 2 if embeddings_in_vram else 0
    return math.ceil(quantized + vectors + table)
