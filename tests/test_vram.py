"""The VRAM planner (pure arithmetic on published configs: no GPU, no exllamav2)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from atlas_agent.errors import AtlasError
from atlas_agent.modelfiles.vram import (
    PAGE_SIZE,
    CacheType,
    GiB,
    MiB,
    ModelShape,
    PlanDoesNotFit,
    PlanRequest,
    QuantFormat,
    VramError,
    VramPlan,
    choose_plan,
    head_bpw,
    kv_bytes_per_token,
    load_model_shape,
    parameter_count,
    parse_vram,
    plan_request,
    plan_vram,
    render_plan,
    weight_bytes,
    working_bytes,
)

DATA = Path(__file__).parent / "data" / "vram"
QWEN_CONFIG = DATA / "qwen2.5-coder-32b-config.json"
SMOL_CONFIG = DATA / "smollm2-135m-config.json"
BPWS = (4.0, 4.65)
AGENTS = (1, 2, 4, 8)


@pytest.fixture(scope="module")
def qwen() -> ModelShape:
    return load_model_shape(QWEN_CONFIG, name="Qwen2.5-Coder-32B-Instruct")


@pytest.fixture(scope="module")
def smol() -> ModelShape:
    return load_model_shape(SMOL_CONFIG)


def plan_3090(shape: ModelShape, bpw: float, agents: int, **extra: object) -> VramPlan:
    return plan_vram(shape, PlanRequest(vram="24GiB", agents=agents, bpw=bpw, **extra))


def test_qwen_shape_and_parameter_count(qwen: ModelShape) -> None:
    assert (qwen.num_hidden_layers, qwen.hidden_size, qwen.num_key_value_heads, qwen.head_dim) == (64, 5120, 8, 128)
    assert qwen.attention_bias and not qwen.tie_word_embeddings and qwen.max_position_embeddings == 32768
    assert parameter_count(qwen) == pytest.approx(32.76e9, rel=0.01)
    assert parameter_count(qwen) == 32_763_876_352  # layers 64 x 487,605,248 + 2 x 152064 x 5120 + final norm


def test_kv_bytes_per_token(qwen: ModelShape) -> None:
    assert kv_bytes_per_token(qwen, CacheType.FP16) == 2 * 64 * 8 * 128 * 2 == 256 * 1024
    fp16_layer = 2 * 8 * 128 * 2  # the FP16 K/V buffer a quantized cache dequantizes one layer into
    scales = 2 * 8 * (128 // 32) * 2  # one FP16 scale per 32 values, for K and for V
    assert kv_bytes_per_token(qwen, CacheType.Q8) == 64 * (8 * (128 + 128) + scales) + fp16_layer
    assert kv_bytes_per_token(qwen, CacheType.Q6) == 64 * (8 * (128 + 64) + scales) + fp16_layer
    assert kv_bytes_per_token(qwen, CacheType.Q4) == 64 * (8 * (64 + 64) + scales) + fp16_layer == 77824
    sizes = [kv_bytes_per_token(qwen, cache) for cache in CacheType]
    assert sizes == sorted(sizes, reverse=True)


def test_weights_follow_the_bpw_and_leave_the_embeddings_in_system_ram(qwen: ModelShape) -> None:
    at_4 = weight_bytes(qwen, 4.0)
    linear = 64 * (2 * 5120 * 5120 + 2 * 5120 * 1024 + 3 * 5120 * 27648)
    head = 5120 * 152064 * head_bpw(6) / 8
    assert at_4 == pytest.approx(linear / 2 + head, rel=0.001)
    assert 15 * GiB < at_4 < weight_bytes(qwen, 4.65) < 18 * GiB
    assert weight_bytes(qwen, 4.0, embeddings_in_vram=True) - at_4 == pytest.approx(152064 * 5120 * 2, abs=2)
    assert head_bpw(6) == pytest.approx(6.33, abs=0.01) and head_bpw(8) > head_bpw(6) and head_bpw(16) == 16


@pytest.mark.parametrize("bpw", BPWS)
def test_3090_plans_are_self_consistent(qwen: ModelShape, bpw: float) -> None:
    plans = [plan_3090(qwen, bpw, agents) for agents in AGENTS]
    for plan in plans:
        assert plan.usable == int(24 * GiB * 0.97)
        assert plan.working == working_bytes(qwen, 2048, plan.agents) and 1 * GiB < plan.working < 1.2 * GiB
        for option in plan.options:
            assert option.context % PAGE_SIZE == 0 and 0 < option.context <= 32768
            assert option.kv_bytes == plan.agents * option.context * option.kv_bytes_per_token
            assert plan.fixed + option.kv_bytes <= plan.usable
            spare = plan.usable - plan.fixed - option.kv_bytes  # less than one more page per agent, unless capped
            assert option.context == 32768 or spare < plan.agents * PAGE_SIZE * option.kv_bytes_per_token
        contexts = [option.context for option in plan.options]
        assert contexts == sorted(contexts)  # coarser caches never give less context
    for cache in CacheType:
        by_agents = [plan.option(cache).context for plan in plans]
        assert by_agents == sorted(by_agents, reverse=True)
    eight = plans[-1]
    ratio = eight.option(CacheType.Q4).context / eight.option(CacheType.FP16).context
    expected = kv_bytes_per_token(qwen, CacheType.FP16) / kv_bytes_per_token(qwen, CacheType.Q4)
    assert 3.2 < ratio < 4 and ratio == pytest.approx(expected, rel=0.1)  # 4x less the scales and FP16 buffer


@pytest.mark.parametrize("agents", AGENTS)
def test_higher_bpw_never_gives_more_context(qwen: ModelShape, agents: int) -> None:
    low, high = (plan_3090(qwen, bpw, agents) for bpw in BPWS)
    assert low.weights < high.weights
    for cache in CacheType:
        assert low.option(cache).context >= high.option(cache).context


@pytest.mark.parametrize(
    ("bpw", "agents", "cache", "context"),
    [
        (4.0, 1, CacheType.FP16, 26880),
        (4.0, 2, CacheType.Q8, 24576),
        (4.0, 4, CacheType.Q4, 22528),
        (4.65, 1, CacheType.FP16, 17152),
        (4.65, 2, CacheType.Q6, 20480),
    ],
)
def test_3090_choices(qwen: ModelShape, bpw: float, agents: int, cache: CacheType, context: int) -> None:
    plan = choose_plan(qwen, PlanRequest(vram="24GiB", agents=agents, bpw=bpw))
    assert plan.chosen is cache and plan.option(cache).context == context
    more_precise = list(CacheType)[: list(CacheType).index(cache)]
    assert all(plan.option(other).context < 16384 for other in more_precise)


@pytest.mark.parametrize(("bpw", "agents", "room"), [(4.0, 8, 5), (4.65, 4, 3), (4.65, 8, 3)])
def test_too_many_agents_is_one_clear_line(qwen: ModelShape, bpw: float, agents: int, room: int) -> None:
    with pytest.raises(PlanDoesNotFit) as caught:
        choose_plan(qwen, PlanRequest(vram="24GiB", agents=agents, bpw=bpw))
    message = str(caught.value)
    assert "\n" not in message and isinstance(caught.value, ValueError) and isinstance(caught.value, AtlasError)
    assert message.startswith(f"Qwen2.5-Coder-32B-Instruct at {bpw} bpw needs ")
    assert f"24 GiB leaves room for {room} agents at 16384 tokens with a Q4 cache, not {agents}" in message
    assert message.endswith("lower --agents or the bpw")


def test_weights_that_do_not_fit(qwen: ModelShape) -> None:
    with pytest.raises(PlanDoesNotFit, match=r"at 8.0 bpw needs 29.\d\d GiB for weights alone .*no room for a KV"):
        choose_plan(qwen, PlanRequest(vram="24GiB", bpw=8.0))
    plan = plan_vram(qwen, PlanRequest(vram="16GiB", bpw=4.0))  # planning still answers: nothing fits
    assert plan.chosen is None and all(option.context == 0 for option in plan.options)


def test_a_forced_cache_type(qwen: ModelShape) -> None:
    plan = choose_plan(qwen, PlanRequest(vram="24GiB", agents=2, bpw=4.0, cache_type="q4"))
    assert plan.chosen is CacheType.Q4 and plan.option(CacheType.Q4).context == 32768
    with pytest.raises(PlanDoesNotFit, match="room for 1 agent at 16384 tokens with an FP16 cache, not 2"):
        choose_plan(qwen, PlanRequest(vram="24GiB", agents=2, bpw=4.0, cache_type="FP16"))


def test_without_a_minimum_the_largest_context_wins(qwen: ModelShape) -> None:
    plan = choose_plan(qwen, PlanRequest(vram="24GiB", agents=4, bpw=4.0, min_context=None))
    assert plan.chosen is CacheType.Q4
    capped = choose_plan(qwen, PlanRequest(vram="24GiB", agents=1, bpw=4.0, min_context=None))
    assert capped.chosen is CacheType.Q8  # Q8, Q6 and Q4 all reach 32768: the most precise of them


def test_knobs_move_the_plan_the_right_way(qwen: ModelShape) -> None:
    base = plan_3090(qwen, 4.0, 4).option(CacheType.Q4).context
    assert plan_3090(qwen, 4.0, 4, overhead="1GiB").option(CacheType.Q4).context < base
    assert plan_3090(qwen, 4.0, 4, safety_margin=0.0).option(CacheType.Q4).context > base
    assert plan_3090(qwen, 4.0, 4, embeddings_in_vram=True).option(CacheType.Q4).context < base
    assert plan_3090(qwen, 4.0, 4, chunk_size=512).working < plan_3090(qwen, 4.0, 4).working


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("24GiB", 24 * GiB),
        ("24GB", 24 * 10**9),
        ("24000MiB", 24000 * MiB),
        ("24 gib", 24 * GiB),
        ("24G", 24 * GiB),
        ("24", 24 * GiB),
        ("1.5GiB", 3 * GiB // 2),
        ("500MB", 500 * 10**6),
    ],
)
def test_parse_vram(text: str, size: int) -> None:
    assert parse_vram(text) == size


@pytest.mark.parametrize("text", ["", "lots", "24 GiBs", "-1GiB", "24XB"])
def test_parse_vram_rejects(text: str) -> None:
    with pytest.raises(VramError, match="cannot read"):
        parse_vram(text)


def test_exl2_quantization_config_supplies_the_bpw(tmp_path: Path) -> None:
    config = json.loads(QWEN_CONFIG.read_text())
    config["quantization_config"] = {
        "quant_method": "exl2",
        "version": "0.3.2",
        "bits": 4.65,
        "head_bits": 8,
        "calibration": {"rows": 115, "length": 2048, "dataset": "(default)"},
    }
    model_dir = tmp_path / "Qwen2.5-Coder-32B-Instruct-exl2-4.65bpw"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps(config))
    shape = load_model_shape(model_dir)
    assert (shape.name, shape.bpw, shape.head_bits) == (model_dir.name, 4.65, 8)
    plan = plan_vram(shape, PlanRequest(vram="24GiB"))
    assert (plan.bpw, plan.head_bits) == (4.65, 8)
    assert plan.weights == weight_bytes(shape, 4.65, 8)
    assert plan_vram(shape, PlanRequest(vram="24GiB", bpw=4.0)).bpw == 4.0  # explicit --bpw wins
    assert load_model_shape(model_dir / "config.json").name == model_dir.name


def test_loading_errors(tmp_path: Path) -> None:
    unquantized = load_model_shape(QWEN_CONFIG)
    assert unquantized.name == "qwen2.5-coder-32b" and unquantized.bpw is None
    with pytest.raises(VramError, match="no EXL2 or EXL3 quantization_config: pass --bpw"):
        plan_vram(unquantized, PlanRequest(vram="24GiB"))
    with pytest.raises(VramError, match="lacks intermediate_size"):
        load_model_shape({"num_hidden_layers": 2, "hidden_size": 8, "num_attention_heads": 2, "vocab_size": 32})
    with pytest.raises(VramError, match="cannot read a model config"):
        load_model_shape(tmp_path)
    with pytest.raises(VramError, match="mixture-of-experts"):
        load_model_shape({**json.loads(QWEN_CONFIG.read_text()), "num_local_experts": 8})


def test_a_tiny_tied_model(smol: ModelShape) -> None:
    assert (smol.num_hidden_layers, smol.hidden_size, smol.num_key_value_heads, smol.head_dim) == (30, 576, 3, 64)
    assert smol.tie_word_embeddings and not smol.attention_bias
    assert parameter_count(smol) == 134_515_008  # the tied table counts once
    assert kv_bytes_per_token(smol, CacheType.FP16) == 2 * 30 * 3 * 64 * 2
    plan = choose_plan(smol, PlanRequest(vram="2GiB", agents=4, bpw=8.0))
    assert plan.min_context == 8192  # the 16384 default is clamped to the model's own maximum
    assert plan.chosen is CacheType.FP16 and all(option.context == 8192 for option in plan.options)
    assert plan.weights < 0.2 * GiB and plan.working < 0.1 * GiB


def test_render_plan(qwen: ModelShape) -> None:
    text = render_plan(choose_plan(qwen, PlanRequest(vram="24GiB", agents=4, bpw=4.0)))
    lines = text.splitlines()
    assert lines[0] == "Qwen2.5-Coder-32B-Instruct: 4.0 bpw (head 6 bits), 24 GiB, 4 agents, at least 16384 tokens each"
    assert lines[1].split() == ["cache", "KV", "B/token", "context/agent", "KV", "total", "fits"]
    assert [line.split()[0] for line in lines[2:6]] == ["FP16", "Q8", "Q6", "Q4"]
    assert lines[5].split()[:3] == ["Q4", "77824", "22528"] and lines[5].endswith("yes  <- chosen")
    assert lines[6].startswith("Q4: weights 15.11 GiB + KV ") and "3% safety margin" in lines[6]
    failing = render_plan(plan_3090(qwen, 4.65, 8))
    assert "chosen" not in failing and failing.splitlines()[-1].startswith("Q4: ")


def test_plan_request_turns_bad_values_into_one_line() -> None:
    assert plan_request(vram="24GiB", agents=4, cache_type="q6").cache_type is CacheType.Q6
    with pytest.raises(VramError, match=r"^invalid vram: cannot read 'lots' as a memory size"):
        plan_request(vram="lots")
    with pytest.raises(VramError, match=r"^invalid cache_type: Input should be 'FP16', 'Q8', 'Q6' or 'Q4'$"):
        plan_request(vram="24GiB", cache_type="Q5")
    with pytest.raises(VramError, match=r"^invalid agents: "):
        plan_request(vram="24GiB", agents=0)


# Qwen2.5-Coder-0.5B-Instruct's published config.json (Qwen2.5's tokenizer: a draft for the 32B), as EXL2 4.0 bpw
QWEN_DRAFT_CONFIG = {
    "_name_or_path": "Qwen/Qwen2.5-Coder-0.5B-Instruct",
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_attention_heads": 14,
    "num_hidden_layers": 24,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "max_position_embeddings": 32768,
    "quantization_config": {"quant_method": "exl2", "bits": 4.0, "head_bits": 6},
}


def test_exl3_weights_are_the_trellis_bits_plus_fp16_sign_vectors(qwen: ModelShape) -> None:
    h, q, kv, inner, vocab = 5120, 5120, 1024, 27648, 152064
    matrices = 2 * h * q + 2 * h * kv + 3 * h * inner  # q, k, v, o, gate, up, down: 487,587,840 weights a layer
    signs = 2 * (7 * h + 2 * q + 2 * kv + 3 * inner)  # an FP16 sign per input and output feature of each
    head = h * vocab * 6 // 8 + 2 * (h + vocab)  # 6 head bits, no padding, no group scales
    vectors = 2 * (64 * (2 * h + q + 2 * kv) + h)  # FP16 norms and q/k/v biases, as in EXL2
    assert signs == 262_144 and head == 584_240_128 and vectors == 2_238_464
    expected = 64 * (matrices * 4 // 8 + signs) + head + vectors
    assert weight_bytes(qwen, 4.0, quant_format=QuantFormat.EXL3) == expected == 16_206_066_688
    at_5 = weight_bytes(qwen, 5.0, quant_format=QuantFormat.EXL3)
    assert at_5 - expected == 64 * matrices // 8, "one more bit per weight adds exactly one bit per weight"
    assert weight_bytes(qwen, 4.0, 16, quant_format=QuantFormat.EXL3) - expected == h * vocab * 2 - head


def test_an_exl3_config_is_planned_in_exl3(qwen: ModelShape) -> None:
    config = json.loads(QWEN_CONFIG.read_text())
    config["quantization_config"] = {"quant_method": "exl3", "bits": 4.0, "head_bits": 6, "calibration": {}}
    shape = load_model_shape(config, name="Qwen2.5-Coder-32B-Instruct-exl3")
    assert (shape.quant_format, shape.bpw, shape.head_bits) == (QuantFormat.EXL3, 4.0, 6)
    plan = choose_plan(shape, PlanRequest(vram="24GiB", agents=1))
    assert plan.weights == 16_206_066_688 and plan.quant_format is QuantFormat.EXL3
    assert render_plan(plan).splitlines()[0].startswith("Qwen2.5-Coder-32B-Instruct-exl3: 4.0 bpw EXL3 (head 6 bits)")
    as_exl2 = plan_vram(shape, PlanRequest(vram="24GiB", quant_format="exl2"))
    assert as_exl2.weights == weight_bytes(qwen, 4.0) and as_exl2.quant_format is QuantFormat.EXL2


def test_a_draft_model_brings_its_weights_working_memory_and_cache(qwen: ModelShape) -> None:
    draft = load_model_shape(QWEN_DRAFT_CONFIG)
    plain = plan_3090(qwen, 4.0, 1)
    drafted = plan_3090(qwen, 4.0, 1, draft=draft)
    linear = 24 * (2 * 896 * 896 + 2 * 896 * 128 + 3 * 896 * 4864) * 4 / 8
    head = 896 * 151936 * (0.15 * 8 + 0.85 * 6 + 4 / 128) / 8  # EXL2's 6-bit head mix and group scales
    vectors = 2 * (24 * (2 * 896 + 896 + 2 * 128) + 896)
    assert drafted.draft_weights == math.ceil(linear + head + vectors) == 286_794_202
    assert drafted.weights == plain.weights and drafted.working == plain.working + working_bytes(draft, 2048, 1)
    draft_fp16 = 24 * 2 * 2 * 64 * 2  # 24 layers of K and V, 2 KV heads of 64, FP16
    assert drafted.option(CacheType.FP16).kv_bytes_per_token == 262_144 + draft_fp16 == 274_432
    budget = plain.usable - plain.weights - drafted.draft_weights - drafted.working - plain.overhead
    assert drafted.option(CacheType.FP16).context == budget // 274_432 // PAGE_SIZE * PAGE_SIZE == 23_552
    assert plain.option(CacheType.FP16).context == 26_880 and drafted.chosen is CacheType.FP16
    assert " + draft 0.27 GiB + KV 6.02 GiB" in render_plan(drafted)


def test_a_draft_model_needs_a_bit_width() -> None:
    unquantized = {**QWEN_DRAFT_CONFIG, "quantization_config": None}
    shape = load_model_shape(QWEN_CONFIG)
    with pytest.raises(VramError, match=r"^draft model Qwen2\.5-Coder-0\.5B-Instruct has no EXL2 or EXL3 quant"):
        plan_vram(shape, PlanRequest(vram="24GiB", bpw=4.0, draft=load_model_shape(unquantized)))
