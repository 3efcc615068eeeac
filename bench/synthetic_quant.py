"""Random-weight EXL2 and EXL3 models with real layer shapes, written directly as quantized tensors.

    python bench/synthetic_quant.py OUT --format exl2|exl3 [--shape qwen32b] [--bits 4.0] [--layers N]

Decode of a quantized 32B model is bound by memory bandwidth: a step costs the bytes of the packed
weights and the kernels that unpack them, whatever the values. Quantizing FP16 weights takes far
too long at 32B, so the packed tensors are drawn at random in the layouts the loaders expect:

EXL2 (ExLlamaV2 0.3.2), per linear of `rows` inputs and `cols` outputs:
    q_weight    int32 [sum of rows*bits/32 over the groups, cols]  levels, widest groups first, each
                output's levels of a group a little-endian stream of `bits`-bit fields
    q_groups    int16 [2 * groups]  (bits, first q_weight row) of each group of `group` input rows
    q_scale     int32 [groups, cols / 8]  4-bit scale per group and output, eight to a word
    q_scale_max fp16  [groups]  a group's weight is (level - 2^(bits-1)) * (q_scale + 1)^2 / 256 * q_scale_max
    q_invperm   int32 [rows]  the input order; the loader derives q_perm from it
EXL3 (ExLlamaV3 1.6.5), per linear:
    trellis     int16 [rows / 16, cols / 16, 16 * K]  one 16x16 tile of K-bit trellis steps per entry
    suh, svh    fp16  [rows], [cols]  input and output scales around the 128-wide Hadamard rotations
    mul1        int32 scalar 0x83DCD12D  marks the mul1 codebook (the converter's default)

Scales are chosen so dequantized weights have a standard deviation of 0.02, like the FP16 model of
bench/synthetic_model.py, so activations stay finite and greedy decoding gives varied tokens. Bit
widths are mixed to average the requested bits per weight: EXL2 splits each matrix between two
adjacent widths (its own per-matrix scheme, overhead of scales and permutation counted in), EXL3
gives each group of projections that share an input one of two adjacent trellis rates. The head is
6-bit (EXL2: 15% of rows at 8 bits, the rest at 6, as ExLlamaV2's head option 6; EXL3: K = 6); the
embedding table is FP16, as both converters leave it. Tensors are generated on `device` and written
in shards of a few GB, so a 64-layer 32B-shaped model never sits in host memory whole.
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors_shards import ShardWriter, gpu_weight_bytes
from synthetic_model import SHAPES, train_tokenizer, write_config

if TYPE_CHECKING:
    import torch

STD = 0.02  # of the dequantized weights, as in the FP16 random model
HEAD_BITS = 6
SHARD_BYTES = 4 * 1024**3
EXL2_VERSION, EXL3_VERSION = "0.3.2", "1.6.5"  # the library versions whose loaders these layouts follow
EXL2_WIDTHS = (8, 6, 5, 4, 3, 2)  # the widths ExLlamaV2's kernels unpack, in the order they are stored
EXL3_RATES = (1, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6, 7, 8)  # trellis rates with kernels (half rates: mul1 only)
MUL1 = 0x83DCD12D  # the mul1 codebook's multiplier, stored as its marker
# RMS of the EXL2 scale factor (q_scale + 1)^2 / 256 over a uniform 4-bit q_scale
EXL2_SCALE_RMS = math.sqrt(sum(k**4 for k in range(1, 17)) / 16) / 256

Tensors = dict[str, "torch.Tensor"]


class Random:
    """Seeded random tensors on one device."""

    def __init__(self, device: str, seed: int) -> None:
        import torch

        self.device = device
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def bits(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        import torch

        info = torch.iinfo(dtype)
        return torch.randint(info.min, info.max + 1, shape, dtype=dtype, device=self.device, generator=self.generator)

    def normal(self, shape: tuple[int, ...], std: float) -> torch.Tensor:
        import torch

        noise = torch.randn(shape, device=self.device, generator=self.generator, dtype=torch.float32)
        return (noise * std).half()

    def signs(self, n: int) -> torch.Tensor:
        import torch

        return torch.randint(0, 2, (n,), device=self.device, generator=self.generator).float() * 2 - 1

    def permutation(self, n: int) -> torch.Tensor:
        import torch

        return torch.randperm(n, device=self.device, generator=self.generator).to(torch.int32)


def layer_linears(config: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    """(name, in_features, out_features, input group) of one decoder layer's projections; projections of
    one group read the same input (and so share EXL2's input order and EXL3's trellis rate)."""
    h, m, head = config["hidden_size"], config["intermediate_size"], config["head_dim"]
    q, kv = config["num_attention_heads"] * head, config["num_key_value_heads"] * head
    return [
        ("self_attn.q_proj", h, q, "qkv"),
        ("self_attn.k_proj", h, kv, "qkv"),
        ("self_attn.v_proj", h, kv, "qkv"),
        ("self_attn.o_proj", q, h, "o"),
        ("mlp.gate_proj", h, m, "gu"),
        ("mlp.up_proj", h, m, "gu"),
        ("mlp.down_proj", m, h, "d"),
    ]


def linears(config: dict[str, Any]) -> Iterator[tuple[str, int, int, str]]:
    """(key, rows, cols, input group) of every quantized linear, the head last."""
    for layer in range(config["num_hidden_layers"]):
        for name, rows, cols, group in layer_linears(config):
            yield f"model.layers.{layer}.{name}", rows, cols, f"{layer}.{group}"
    yield "lm_head", config["hidden_size"], config["vocab_size"], "head"


def check_bits(form: str, bits: float, lowest: float, highest: float) -> None:
    if not lowest <= bits <= highest:
        raise ValueError(f"{form} bits per weight must be within {lowest}..{highest}, not {bits}")


# EXL2


def exl2_group_size(rows: int) -> int:
    """128 input rows per group on large matrices, 32 on small ones so the bit mix can be fine."""
    return 128 if rows >= 4096 else 32


def exl2_split(rows: int, cols: int, bits: float) -> list[tuple[int, int]]:
    """(bits, rows) parts of a matrix, widest first, averaging `bits` with the scales and permutation counted."""
    group = exl2_group_size(rows)
    if rows % group:
        raise ValueError(f"{rows} input rows are not a multiple of the group size {group}")
    overhead = 4 / group + 32 / cols + 48 / (group * cols)  # q_scale, q_invperm, q_scale_max + q_groups
    weight_bits = min(max(bits - overhead, min(EXL2_WIDTHS)), max(EXL2_WIDTHS))
    low = max(b for b in EXL2_WIDTHS if b <= weight_bits)
    if low == weight_bits:
        return [(low, rows)]
    high = min(b for b in EXL2_WIDTHS if b > weight_bits)
    high_rows = round((weight_bits - low) / (high - low) * rows / group) * group
    return [(b, n) for b, n in ((high, high_rows), (low, rows - high_rows)) if n]


def exl2_head_split(rows: int) -> list[tuple[int, int]]:
    """ExLlamaV2's 6-bit head option: 15% of the rows at 8 bits, the rest at 6."""
    group = exl2_group_size(rows)
    wide = min(math.ceil(0.15 * rows / group) * group, rows)
    return [(b, n) for b, n in ((8, wide), (6, rows - wide)) if n]


def exl2_pack(levels: torch.Tensor, bits: int) -> torch.Tensor:
    """Levels (rows a multiple of 32, cols) packed as ExLlamaV2's converter packs them (pack_columns in
    exllamav2_ext/cuda/pack_tensor.cu): 32 levels of an output, `bits` apiece, fill `bits` int32 rows."""
    import torch

    rows, cols = levels.shape
    chunks = levels.view(rows // 32, 32, cols)
    words = torch.zeros((rows // 32, bits + 1, cols), dtype=torch.int64, device=levels.device)
    for i in range(32):
        word, shift = divmod(i * bits, 32)
        field = chunks[:, i].long() << shift
        words[:, word] |= field & 0xFFFFFFFF
        words[:, word + 1] |= field >> 32  # the part of a field that crosses into the next word
    words = words[:, :bits]
    words = torch.where(words >= 2**31, words - 2**32, words)  # the int32 holding those 32 bits
    return words.reshape(rows // 32 * bits, cols).to(torch.int32)


def exl2_levels(rows: int, cols: int, bits: int, rng: Random) -> torch.Tensor:
    """Uniform levels 1 .. 2^bits - 1, centred on the kernels' zero point 2^(bits-1) as a converter's rounding
    of symmetric weights is (uniform bits would reach -2^(bits-1) and skew every weight by half a step)."""
    import torch

    return torch.randint(1, 2**bits, (rows, cols), dtype=torch.int16, device=rng.device, generator=rng.generator)


def exl2_linear(key: str, cols: int, split: list[tuple[int, int]], invperm: torch.Tensor, rng: Random) -> Tensors:
    import torch

    rows = sum(n for _, n in split)
    group = exl2_group_size(rows)
    widths = [bits for bits, n in split for _ in range(n // group)]
    starts = [0]
    for bits in widths:
        starts.append(starts[-1] + group * bits // 32)
    groups = [v for bits, start in zip(widths, starts[:-1], strict=True) for v in (bits, start)]
    level_std = [math.sqrt(((2**bits - 1) ** 2 - 1) / 12) for bits in widths]  # of the uniform levels
    packed = [exl2_pack(exl2_levels(n, cols, bits, rng), bits) for bits, n in split]
    return {
        key + ".q_weight": torch.cat(packed),
        key + ".q_groups": torch.tensor(groups, dtype=torch.int16, device=rng.device),
        key + ".q_scale": rng.bits((len(widths), cols // 8), torch.int32),
        key + ".q_scale_max": torch.tensor([STD / (s * EXL2_SCALE_RMS) for s in level_std], device=rng.device).half(),
        key + ".q_invperm": invperm,
    }


def exl2_tensors(config: dict[str, Any], bits: float, rng: Random) -> Iterator[Tensors]:
    order_group, order = "", None  # projections reading one input share its order, as a converter gives
    for key, rows, cols, group in linears(config):
        split = exl2_head_split(rows) if key == "lm_head" else exl2_split(rows, cols, bits)
        if group != order_group or order is None:
            order_group, order = group, rng.permutation(rows)
        yield exl2_linear(key, cols, split, order.clone(), rng)  # safetensors stores no shared tensors


# EXL3


def mul1_codebook_rms() -> float:
    """RMS of the mul1 codebook over all 65536 trellis states: each state times the multiplier, the four
    bytes of the 32-bit product summed, centred and scaled by 1/147.7 (exllamav3_ext/quant/codebook.cuh)."""
    import torch

    product = torch.arange(65536, dtype=torch.int64) * MUL1 % 2**32
    byte_sum = sum((product >> shift) & 255 for shift in (0, 8, 16, 24))
    values = (byte_sum.double() - 510) / 147.7
    return float(values.square().mean().sqrt())


def exl3_rates(config: dict[str, Any], bits: float) -> dict[str, float]:
    """Trellis rate of each input group: two adjacent rates, each group taking the one that keeps the running
    total of bits closest to `bits` per weight; the head at HEAD_BITS."""
    check_bits("EXL3", bits, EXL3_RATES[0], EXL3_RATES[-1])
    low = max(r for r in EXL3_RATES if r <= bits)
    high = min((r for r in EXL3_RATES if r > bits), default=low)
    numel: dict[str, int] = {}
    for key, rows, cols, group in linears(config):
        if key != "lm_head":
            numel[group] = numel.get(group, 0) + rows * cols
    rates: dict[str, float] = {"head": HEAD_BITS}
    total_bits, total_numel = 0.0, 0
    for group, n in numel.items():
        target = bits * (total_numel + n)
        rates[group] = min((low, high), key=lambda r: abs(total_bits + n * r - target))
        total_bits += n * rates[group]
        total_numel += n
    return rates


def exl3_linear(key: str, rows: int, cols: int, rate: float, scale: float, rng: Random) -> Tensors:
    import torch

    for dim in (rows, cols):
        if dim % 128:
            raise ValueError(f"{key}: EXL3 needs dimensions divisible by 128 (its Hadamard blocks), not {dim}")
    return {
        key + ".trellis": rng.bits((rows // 16, cols // 16, int(16 * rate)), torch.int16),
        key + ".suh": (rng.signs(rows) * scale).half(),
        key + ".svh": rng.signs(cols).half(),
        key + ".mul1": torch.tensor(MUL1 - 2**32, dtype=torch.int32),  # int32 holding the uint32 bits
    }


def mean_rate(config: dict[str, Any], rates: dict[str, float]) -> float:
    """Bits per weight of the decoder layers' trellises."""
    layers = [(rows * cols, rates[group]) for key, rows, cols, group in linears(config) if key != "lm_head"]
    return sum(n * rate for n, rate in layers) / sum(n for n, _ in layers)


def exl3_tensors(config: dict[str, Any], rates: dict[str, float], rng: Random) -> Iterator[Tensors]:
    # decoded trellis values times |suh| times |svh| = 1: weights of STD after both rotations
    scale = STD / mul1_codebook_rms()
    for key, rows, cols, group in linears(config):
        yield exl3_linear(key, rows, cols, rates[group], scale, rng)


def write_model(
    out: Path, config: dict[str, Any], quantized: Iterator[Tensors], rng: Random, shard_bytes: int
) -> list[Path]:
    """The FP16 embedding and norms around the quantized linears, one layer's tensors together."""
    import torch

    h = config["hidden_size"]

    def ones() -> torch.Tensor:
        return torch.ones(h, dtype=torch.float16, device=rng.device)

    writer = ShardWriter(out, shard_bytes)
    writer.add({"model.embed_tokens.weight": rng.normal((config["vocab_size"], h), STD)})
    per_layer = len(layer_linears(config))
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        writer.add({p + "input_layernorm.weight": ones(), p + "post_attention_layernorm.weight": ones()})
        for _ in range(per_layer):
            writer.add(next(quantized))
    writer.add({"model.norm.weight": ones()} | next(quantized))  # the head comes last
    return writer.close()


def start_model(out: Path, shape: str, layers: int | None) -> dict[str, Any]:
    """Tokenizer and config.json of a random model in `out` (created); returns the config."""
    out.mkdir(parents=True, exist_ok=True)
    dims = dict(SHAPES[shape])
    if layers:
        dims["num_hidden_layers"] = layers
    return write_config(out, dims, train_tokenizer(out))


def add_quantization_config(out: Path, config: dict[str, Any], quantization: dict[str, Any]) -> None:
    (out / "config.json").write_text(json.dumps(config | {"quantization_config": quantization}, indent=2))


def scratch_dir() -> Path:
    """A directory for random models (about 16 GB at 32B scale), removed when the process ends."""
    made = Path(tempfile.mkdtemp(prefix="atlas-bench-"))
    atexit.register(shutil.rmtree, made, ignore_errors=True)
    return made


def make_exl2_model(
    out: Path,
    shape: str = "tiny",
    layers: int | None = None,
    bits: float = 4.0,
    device: str = "cuda",
    seed: int = 0,
    *,
    shard_bytes: int = SHARD_BYTES,
) -> Path:
    """Write a random EXL2 model directory to `out` (created) and return it."""
    check_bits("EXL2", bits, 2.0, 8.0)
    config = start_model(out, shape, layers)
    rng = Random(device, seed)
    write_model(out, config, exl2_tensors(config, bits, rng), rng, shard_bytes)
    quantization = {"quant_method": "exl2", "version": EXL2_VERSION, "bits": bits, "head_bits": HEAD_BITS}
    add_quantization_config(out, config, quantization | {"calibration": {"dataset": "(random weights)"}})
    return out


def make_exl3_model(
    out: Path,
    shape: str = "tiny",
    layers: int | None = None,
    bits: float = 4.0,
    device: str = "cuda",
    seed: int = 0,
    *,
    shard_bytes: int = SHARD_BYTES,
) -> Path:
    """Write a random EXL3 model directory to `out` (created) and return it."""
    check_bits("EXL3", bits, EXL3_RATES[0], EXL3_RATES[-1])
    config = start_model(out, shape, layers)
    rng = Random(device, seed)
    rates = exl3_rates(config, bits)
    write_model(out, config, exl3_tensors(config, rates, rng), rng, shard_bytes)
    quantization = {"quant_method": "exl3", "version": EXL3_VERSION, "bits": round(mean_rate(config, rates), 2)}
    add_quantization_config(out, config, quantization | {"head_bits": HEAD_BITS, "codebook": "mul1"})
    return out


def main() -> None:
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--format", choices=["exl2", "exl3"], required=True)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen32b")
    parser.add_argument("--bits", type=float, default=4.0, help="bits per weight of the decoder layers")
    parser.add_argument("--layers", type=int, default=None, help="decoder layers (default: the shape's)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    make = make_exl2_model if args.format == "exl2" else make_exl3_model
    started = time.perf_counter()
    model_dir = make(args.out, args.shape, args.layers, args.bits, args.device, args.seed)
    print(model_dir)
    print(f"gpu_weight_bytes_per_token: {gpu_weight_bytes(model_dir)}")
    print(f"written in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
