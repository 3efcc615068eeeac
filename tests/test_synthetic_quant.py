"""The random EXL2 and EXL3 writers of bench/synthetic_quant.py, checked on the CPU against the layouts that
ExLlamaV2 0.3.2 and ExLlamaV3 1.6.5 load: tensor names, dtypes and shapes, group tables, input orders, codebook
markers, bits per weight and the spread of the dequantized weights. Loading and running the models on a GPU
is bench/check_synthetic_quant.py's job."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="the writers generate tensors with PyTorch")
pytest.importorskip("safetensors", reason="the writers save safetensors files")
pytest.importorskip("tokenizers", reason="the writers train a tokenizer")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import synthetic_quant as sq  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors_shards import safetensors_header  # noqa: E402

SHARD = 4 * 1024**2  # a few shards for the tiny model, so the index and the split are exercised
EXL2_SUFFIXES = {"q_weight": "I32", "q_groups": "I16", "q_scale": "I32", "q_scale_max": "F16", "q_invperm": "I32"}
EXL3_SUFFIXES = {"trellis": "I16", "suh": "F16", "svh": "F16", "mul1": "I32"}


class Model:
    """A written model directory: its config, the header entry and the data of every tensor."""

    def __init__(self, path: Path, bits: float) -> None:
        self.path, self.bits = path, bits  # the bits per weight asked for
        self.config = json.loads((path / "config.json").read_text())
        self.file_of: dict[str, Path] = {}
        self.entries: dict[str, dict[str, Any]] = {}
        for file in sorted(path.glob("*.safetensors")):
            for name, entry in safetensors_header(file).items():
                self.file_of[name], self.entries[name] = file, entry

    def tensor(self, name: str) -> Any:
        with safe_open(str(self.file_of[name]), framework="pt") as f:
            return f.get_tensor(name)

    def nbytes(self, name: str) -> int:
        begin, end = self.entries[name]["data_offsets"]
        return int(end - begin)

    def linear(self, key: str, suffixes: dict[str, str]) -> dict[str, dict[str, Any]]:
        names = {name.removeprefix(key + ".") for name in self.entries if name.startswith(key + ".")}
        assert names == set(suffixes), key
        for suffix, dtype in suffixes.items():
            assert self.entries[f"{key}.{suffix}"]["dtype"] == dtype, (key, suffix)
        return {suffix: self.entries[f"{key}.{suffix}"] for suffix in suffixes}

    def layer_bits(self, suffixes: dict[str, str]) -> float:
        layers = [(key, rows, cols) for key, rows, cols, _ in sq.linears(self.config) if key != "lm_head"]
        stored = sum(self.nbytes(f"{key}.{suffix}") for key, _, _ in layers for suffix in suffixes)
        return 8 * stored / sum(rows * cols for _, rows, cols in layers)


@pytest.fixture(scope="module", params=[4.0, 4.65])
def exl2(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Model:
    out = tmp_path_factory.mktemp("exl2") / "model"
    return Model(sq.make_exl2_model(out, "tiny", bits=request.param, device="cpu", shard_bytes=SHARD), request.param)


@pytest.fixture(scope="module", params=[4.0, 4.65, 2.5])
def exl3(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Model:
    out = tmp_path_factory.mktemp("exl3") / "model"
    return Model(sq.make_exl3_model(out, "tiny", bits=request.param, device="cpu", shard_bytes=SHARD), request.param)


def group_rows(q_groups: list[int], qrows: int) -> list[tuple[int, int]]:
    """(bits, input rows) of each group, derived as ExLlamaV2's make_group_map does (ext_qmatrix.cpp)."""
    bits, starts = q_groups[0::2], q_groups[1::2] + [qrows]
    return [(b, (starts[i + 1] - starts[i]) * 32 // b) for i, b in enumerate(bits)]


def exl2_weights(model: Model, key: str) -> Any:
    """Dequantized weights of an EXL2 linear: each group's q_weight rows read as a stream of `bits`-bit levels
    per output (as pack_columns in pack_tensor.cu writes them), centred at 2^(bits-1) and scaled by
    (q_scale + 1)^2 / 256 * q_scale_max, the kernels' formula (q_gemm_kernel.cuh, ext.py make_q_matrix)."""
    q_weight, q_scale, q_scale_max = (model.tensor(f"{key}.{s}") for s in ("q_weight", "q_scale", "q_scale_max"))
    q_groups = model.tensor(f"{key}.q_groups").tolist()
    cols = q_weight.shape[1]
    nibbles = (q_scale.long()[:, :, None] >> torch.arange(0, 32, 4)) & 15
    scales = (nibbles.reshape(len(q_scale_max), cols) + 1).double() ** 2 / 256 * q_scale_max.double()[:, None]
    parts, start = [], 0
    for group, (bits, rows) in enumerate(group_rows(q_groups, q_weight.shape[0])):
        levels = unpack(q_weight[start : start + rows * bits // 32], bits).double() - 2 ** (bits - 1)
        assert levels.abs().max() < 2 ** (bits - 1)  # symmetric: the lowest level is never used
        parts.append(levels * scales[group])
        start += rows * bits // 32
    return torch.cat(parts)


def unpack(words: Any, bits: int) -> Any:
    """(rows, cols) levels from (rows * bits / 32, cols) int32 words, each column a little-endian bit stream."""
    cols = words.shape[1]
    stream = ((words.long()[:, :, None] & 0xFFFFFFFF) >> torch.arange(32)) & 1
    fields = stream.permute(1, 0, 2).reshape(cols, -1, bits)
    return (fields << torch.arange(bits)).sum(-1).T


@pytest.mark.parametrize("bits", sq.EXL2_WIDTHS)
def test_exl2_packing_is_a_bit_stream_per_output(bits: int) -> None:
    levels = torch.randint(0, 2**bits, (96, 40), dtype=torch.int16)
    packed = sq.exl2_pack(levels, bits)
    assert packed.dtype == torch.int32 and packed.shape == (96 * bits // 32, 40)
    assert torch.equal(unpack(packed, bits), levels.long())


def test_exl2_linears_match_the_loader(exl2: Model) -> None:
    config = exl2.config
    for key, rows, cols, _ in sq.linears(config):
        entries = exl2.linear(key, EXL2_SUFFIXES)
        groups = group_rows(exl2.tensor(key + ".q_groups").tolist(), entries["q_weight"]["shape"][0])
        widths = [b for b, _ in groups]
        assert set(widths) <= set(sq.EXL2_WIDTHS) and widths == sorted(widths, reverse=True), key
        assert sum(n for _, n in groups) == rows and all(n % 32 == 0 for _, n in groups), key
        assert entries["q_weight"]["shape"][1] == cols
        assert entries["q_scale"]["shape"] == [len(groups), cols // 8]
        assert entries["q_scale_max"]["shape"] == [len(groups)]
        scale_max = exl2.tensor(key + ".q_scale_max")
        assert torch.isfinite(scale_max).all() and (scale_max > 0).all()
        assert torch.equal(exl2.tensor(key + ".q_invperm").sort().values, torch.arange(rows, dtype=torch.int32))
        if key == "lm_head":
            assert set(widths) == {8, 6}
    layer = "model.layers.0."
    orders = [exl2.tensor(f"{layer}{name}.q_invperm") for name in ("self_attn.q_proj", "self_attn.v_proj")]
    assert torch.equal(*orders)  # projections of one input share its order
    assert exl2.entries["model.embed_tokens.weight"]["shape"] == [config["vocab_size"], config["hidden_size"]]


def test_exl2_bits_and_config(exl2: Model) -> None:
    quantization = exl2.config["quantization_config"]
    assert quantization["quant_method"] == "exl2" and quantization["head_bits"] == 6
    assert quantization["bits"] == exl2.bits
    assert abs(exl2.layer_bits(EXL2_SUFFIXES) - exl2.bits) < 0.1
    weights = exl2_weights(exl2, "model.layers.1.mlp.down_proj")
    assert 0.9 * sq.STD < weights.std().item() < 1.1 * sq.STD
    assert abs(weights.mean().item()) < 0.02 * sq.STD


def test_exl3_linears_match_the_loader(exl3: Model) -> None:
    rates: dict[str, float] = {}
    for key, rows, cols, group in sq.linears(exl3.config):
        entries = exl3.linear(key, EXL3_SUFFIXES)
        rows_16, cols_16, words = entries["trellis"]["shape"]
        assert (rows_16 * 16, cols_16 * 16) == (rows, cols) and words / 16 in sq.EXL3_RATES, key
        assert rates.setdefault(group, words / 16) == words / 16, key  # one rate per shared input
        assert entries["suh"]["shape"] == [rows] and entries["svh"]["shape"] == [cols]
        assert entries["mul1"]["shape"] == [] and exl3.tensor(key + ".mul1").item() & 0xFFFFFFFF == sq.MUL1
    assert rates["head"] == sq.HEAD_BITS


def test_exl3_bits_scale_and_config(exl3: Model) -> None:
    quantization = exl3.config["quantization_config"]
    assert quantization["quant_method"] == "exl3" and quantization["codebook"] == "mul1"
    assert quantization["head_bits"] == 6 and abs(quantization["bits"] - exl3.bits) < 0.1
    assert abs(exl3.layer_bits(EXL3_SUFFIXES) - exl3.bits) < 0.1
    codebook_rms = sq.mul1_codebook_rms()
    assert 0.95 < codebook_rms < 1.05
    key = "model.layers.2.mlp.gate_proj"
    suh, svh = exl3.tensor(key + ".suh").double(), exl3.tensor(key + ".svh").double()
    std = codebook_rms * suh.square().mean().sqrt() * svh.square().mean().sqrt()  # Hadamards keep the RMS
    assert abs(std.item() - sq.STD) < 0.01 * sq.STD


def test_exl2_shards(exl2: Model) -> None:
    check_shards(exl2)


def test_exl3_shards(exl3: Model) -> None:
    check_shards(exl3)


def check_shards(model: Model) -> None:
    """Several complete shards, an index naming every tensor's file, and the bytes the GPU reads."""
    files = sorted(model.path.glob("*.safetensors"))
    assert len(files) > 1 and not list(model.path.glob("*.tmp"))
    index = json.loads((model.path / "model.safetensors.index.json").read_text())
    assert index["weight_map"] == {name: file.name for name, file in model.file_of.items()}
    embedding = model.nbytes("model.embed_tokens.weight")
    assert sq.gpu_weight_bytes(model.path) == sum(map(model.nbytes, model.entries)) - embedding


def test_out_of_range_bits_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="EXL2"):
        sq.make_exl2_model(tmp_path / "a", bits=1.5, device="cpu")
    with pytest.raises(ValueError, match="EXL3"):
        sq.make_exl3_model(tmp_path / "b", bits=9, device="cpu")
