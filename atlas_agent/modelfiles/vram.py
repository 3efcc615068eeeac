"""VRAM planner: which KV-cache type and context per agent fit one GPU serving an EXL2 model with ExLlamaV2
or an EXL3 one with ExLlamaV3 (its weights counted as ExLlamaV3 stores them, weights.py).

Each term mirrors what exllamav2 0.3.x allocates on the GPU; docs/vram.md gives the formulas and their sources.
ExLlamaV3's caches take the same bytes per token for the types planned here: its CacheLayer_quant with
k_bits = v_bits = 8, 6 or 4 packs those bits per value plus one FP16 scale per 32 values for keys and for
values, and its get_kv dequantizes one whole layer into FP16 for attention, as ExLlamaV2's quantized caches do.
The dynamic generator shares one paged cache between all agents, so the plan reserves agents x context tokens.
With `speculation: draft` the draft model's weights, working memory and cache (as long as the main one: the
generator drafts for every job) come on top.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from atlas_agent.modelfiles.model_shape import ModelShape as ModelShape
from atlas_agent.modelfiles.model_shape import QuantFormat as QuantFormat
from atlas_agent.modelfiles.model_shape import VramError as VramError
from atlas_agent.modelfiles.model_shape import load_model_shape as load_model_shape
from atlas_agent.modelfiles.weights import DEFAULT_HEAD_BITS
from atlas_agent.modelfiles.weights import head_bpw as head_bpw
from atlas_agent.modelfiles.weights import parameter_count as parameter_count
from atlas_agent.modelfiles.weights import weight_bytes as weight_bytes

KiB, MiB, GiB = 1024, 1024**2, 1024**3
PAGE_SIZE = 256  # generator/dynamic.py PAGED_PAGE_SIZE: the cache length must be a whole number of pages
DEFAULT_CHUNK = 2048  # ExLlamaV2Config.max_input_len, which is also the generator's default max_chunk_size
MAX_DQ_ELEMENTS = 512 * MiB  # ExLlamaV2Config.max_dq_size caps a layer's dequantization buffer (elements)
CACHE_SCALE_GROUP = 32  # quantized caches keep one FP16 scale per 32 values (cache.py shape_s)
DEFAULT_MIN_CONTEXT = 16384
DEFAULT_OVERHEAD = 500 * MiB  # CUDA context, cuBLAS/flash-attn workspaces, allocator slack

_UNITS = {"": GiB, "b": 1, "k": KiB, "kib": KiB, "kb": 10**3, "m": MiB, "mib": MiB, "mb": 10**6}
_UNITS |= {"g": GiB, "gib": GiB, "gb": 10**9, "t": 1024**4, "tib": 1024**4, "tb": 10**12}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


class PlanDoesNotFit(VramError):
    """The weights, or the requested agents at the minimum context, do not fit in the VRAM."""


class CacheType(StrEnum):
    """ExLlamaV2 cache classes, most precise first: ExLlamaV2Cache, ExLlamaV2Cache_Q8, _Q6, _Q4."""

    FP16 = "FP16"
    Q8 = "Q8"
    Q6 = "Q6"
    Q4 = "Q4"


# cache.py: values per byte for keys and values (Q6 keeps 12 bits per K/V pair in a 1- and a 0.5-byte tensor).
_CACHE_LAYOUT: dict[CacheType, tuple[int, int]] = {CacheType.Q8: (1, 1), CacheType.Q6: (1, 2), CacheType.Q4: (2, 2)}


class PlanRequest(BaseModel):
    """What to plan for; `vram` and `overhead` also take strings such as "24GiB"."""

    model_config = ConfigDict(extra="forbid")

    vram: int = Field(gt=0)
    agents: int = Field(1, ge=1)
    bpw: float | None = Field(None, gt=1, le=16)  # overrides the model's quantization_config
    head_bits: int | None = Field(None, ge=2, le=16)
    cache_type: CacheType | None = None  # None: pick one
    min_context: int | None = Field(DEFAULT_MIN_CONTEXT, ge=1)  # None: the largest context wins
    safety_margin: float = Field(0.03, ge=0, lt=0.5)
    overhead: int = Field(DEFAULT_OVERHEAD, ge=0)
    chunk_size: int = Field(DEFAULT_CHUNK, ge=PAGE_SIZE, multiple_of=PAGE_SIZE)
    embeddings_in_vram: bool = False
    quant_format: QuantFormat | None = None  # overrides the model's quantization_config
    draft: ModelShape | None = None  # the draft model of `speculation: draft`, quantized (its own bpw)

    @field_validator("vram", "overhead", mode="before")
    @classmethod
    def _parse_size(cls, value: Any) -> Any:
        return parse_vram(value) if isinstance(value, str) else value

    @field_validator("cache_type", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


def plan_request(**fields: Any) -> PlanRequest:
    """PlanRequest from command-line values; a bad one is a one-line VramError, not a validation dump."""
    try:
        return PlanRequest(**fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(map(str, error["loc"])) or "request"
        raise VramError(f"invalid {field}: {error['msg'].removeprefix('Value error, ')}") from exc


class CacheOption(BaseModel):
    """One cache type's outcome; `context` is per agent, a multiple of PAGE_SIZE."""

    cache_type: CacheType
    kv_bytes_per_token: int
    context: int
    kv_bytes: int  # all agents together
    fits: bool  # gives every agent at least the minimum context


class VramPlan(BaseModel):
    """Every cache type's context for one request, and the chosen type (None when none fits)."""

    model: str
    quant_format: QuantFormat
    bpw: float
    head_bits: int
    vram: int
    usable: int  # vram less the safety margin
    safety_margin: float
    agents: int
    min_context: int | None  # clamped to the model's maximum context
    weights: int
    draft_weights: int  # 0 without a draft model
    working: int  # the draft model's included
    overhead: int
    options: list[CacheOption]  # per-token KV bytes include the draft model's cache
    chosen: CacheType | None

    @property
    def fixed(self) -> int:
        return self.weights + self.draft_weights + self.working + self.overhead

    def option(self, cache_type: CacheType) -> CacheOption:
        return next(o for o in self.options if o.cache_type is cache_type)


def parse_vram(text: str) -> int:
    """Bytes in "24GiB", "24GB", "24000MiB", "24 G" or "24" (GiB). GB and MB are decimal; G and M binary."""
    match = _SIZE.fullmatch(text.strip().lower())
    if not match or match.group(2) not in _UNITS:
        raise VramError(f"cannot read {text!r} as a memory size: use e.g. 24GiB, 24GB or 24000MiB")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def kv_bytes_per_token(shape: ModelShape, cache_type: CacheType) -> int:
    """VRAM per cached token over all layers, including a quantized cache's FP16 working copy."""
    heads, dim = shape.num_key_value_heads, shape.head_dim
    fp16_layer = 2 * heads * dim * 2  # K and V of one layer
    if cache_type is CacheType.FP16:
        return shape.num_hidden_layers * fp16_layer
    per_k, per_v = _CACHE_LAYOUT[cache_type]
    scales = 2 * heads * (dim // CACHE_SCALE_GROUP) * 2
    stored = heads * (dim // per_k + dim // per_v) + scales
    # ExLlamaV2Cache_Q.touch_device allocates FP16 K/V buffers spanning the whole cache for one layer,
    # which attention dequantizes into: one FP16 layer per token on top of the quantized layers.
    return shape.num_hidden_layers * stored + fp16_layer


def _dq_bytes(elements: int) -> int:
    return 2 * min(elements, MAX_DQ_ELEMENTS)


def scratch_bytes(shape: ModelShape, chunk_size: int = DEFAULT_CHUNK) -> int:
    """The one scratch buffer per GPU, sized by the hungriest module's scratch_space_fixed()."""
    h, rows = shape.hidden_size, chunk_size
    attention = rows * max(shape.q_dim, h) * 2 + _dq_bytes(h * shape.q_dim)
    mlp = rows * (h + 2 * shape.intermediate_size) * 2 + _dq_bytes(h * shape.intermediate_size)
    head = _dq_bytes(h * shape.padded_vocab)  # the head is no sub-module: no forward temp in the scratch
    return max(attention, mlp, head)


def working_bytes(shape: ModelShape, chunk_size: int = DEFAULT_CHUNK, agents: int = 1) -> int:
    """Scratch, RoPE tables, and the tensors one forward pass allocates on top of them."""
    rope = 2 * shape.max_position_embeddings * shape.head_dim * 2  # FP16 sin and cos (device.py)
    # A prefill chunk's hidden state, q, k, v and attention output (attn.py forward_paged), then FP16
    # logits and their FP32 copy for one decode step of every agent.
    per_row = shape.hidden_size + 2 * shape.q_dim + 2 * shape.kv_dim
    activations = chunk_size * per_row * 2 + agents * shape.padded_vocab * (2 + 4)
    return scratch_bytes(shape, chunk_size) + rope + activations


def _round_down(tokens: int) -> int:
    return max(tokens, 0) // PAGE_SIZE * PAGE_SIZE


def _option(
    shapes: list[ModelShape], cache_type: CacheType, budget: int, agents: int, min_ctx: int | None
) -> CacheOption:
    """`shapes`: the model, and its draft model when there is one (its cache holds as many tokens)."""
    kv = sum(kv_bytes_per_token(shape, cache_type) for shape in shapes)
    max_ctx = min(_round_down(shape.max_position_embeddings) for shape in shapes)
    context = min(_round_down(max(budget, 0) // (agents * kv)), max_ctx)
    fits, total = context >= (min_ctx or PAGE_SIZE), agents * context * kv
    return CacheOption(cache_type=cache_type, kv_bytes_per_token=kv, context=context, kv_bytes=total, fits=fits)


def _choose(options: list[CacheOption], wanted: CacheType | None, min_ctx: int | None) -> CacheType | None:
    usable = [o for o in options if o.fits and wanted in (None, o.cache_type)]
    if not usable:
        return None
    if min_ctx is None:  # max() keeps the first of equals, so ties go to the more precise type
        return max(usable, key=lambda o: o.context).cache_type
    return usable[0].cache_type


def plan_vram(shape: ModelShape, request: PlanRequest) -> VramPlan:
    """Every cache type's largest context per agent; never raises for lack of room (see choose_plan)."""
    bpw = request.bpw or shape.bpw
    if bpw is None:
        raise VramError(f"{shape.name} has no EXL2 or EXL3 quantization_config: pass --bpw (16 for FP16 weights)")
    head_bits = request.head_bits or shape.head_bits or DEFAULT_HEAD_BITS
    quant_format = request.quant_format or shape.quant_format
    weights = weight_bytes(shape, bpw, head_bits, request.embeddings_in_vram, quant_format)
    shapes = [shape] if request.draft is None else [shape, request.draft]
    draft_weights = 0 if request.draft is None else _draft_weights(request.draft, request.embeddings_in_vram)
    working = sum(working_bytes(each, request.chunk_size, request.agents) for each in shapes)
    usable = int(request.vram * (1 - request.safety_margin))
    budget = usable - weights - draft_weights - working - request.overhead
    max_ctx = min(_round_down(each.max_position_embeddings) for each in shapes)
    min_ctx = None if request.min_context is None else min(request.min_context, max_ctx)
    options = [_option(shapes, cache_type, budget, request.agents, min_ctx) for cache_type in CacheType]
    return VramPlan(
        model=shape.name,
        quant_format=quant_format,
        bpw=bpw,
        head_bits=head_bits,
        vram=request.vram,
        usable=usable,
        safety_margin=request.safety_margin,
        agents=request.agents,
        min_context=min_ctx,
        weights=weights,
        draft_weights=draft_weights,
        working=working,
        overhead=request.overhead,
        options=options,
        chosen=_choose(options, request.cache_type, min_ctx),
    )


def _draft_weights(draft: ModelShape, embeddings_in_vram: bool) -> int:
    """The draft model's weights, in its own format and bit width."""
    if draft.bpw is None:
        raise VramError(f"draft model {draft.name} has no EXL2 or EXL3 quantization_config")
    return weight_bytes(draft, draft.bpw, draft.head_bits or DEFAULT_HEAD_BITS, embeddings_in_vram)


def choose_plan(shape: ModelShape, request: PlanRequest) -> VramPlan:
    """The plan with the most precise cache type giving every agent the minimum context, else PlanDoesNotFit."""
    plan = plan_vram(shape, request)
    if plan.chosen is None:
        raise PlanDoesNotFit(_explain(plan, request.cache_type or CacheType.Q4))
    return plan


def _explain(plan: VramPlan, cache_type: CacheType) -> str:
    needs = f"{plan.model} at {plan.bpw} bpw needs {_gib(plan.weights)} for weights alone"
    room = plan.usable - plan.fixed
    if room <= 0:
        extra = f"(+{_gib(plan.working + plan.overhead)} working memory and overhead)"
        return f"{needs} {extra}; {_size(plan.vram)} leaves no room for a KV cache: lower the bpw"
    minimum = plan.min_context or PAGE_SIZE
    agents = room // (minimum * plan.option(cache_type).kv_bytes_per_token)
    advice = "lower --agents or the bpw" if agents else "lower the minimum context or the bpw"
    return (
        f"{needs}; {_size(plan.vram)} leaves room for {agents} agent{'s' if agents != 1 else ''} at {minimum} tokens"
        f" with {'an' if cache_type is CacheType.FP16 else 'a'} {cache_type} cache, not {plan.agents}: {advice}"
    )


def _gib(size: int) -> str:
    return f"{size / GiB:.2f} GiB"


def _size(size: int) -> str:
    return f"{size // GiB} GiB" if size % GiB == 0 else _gib(size)


def render_plan(plan: VramPlan) -> str:
    """A table of every cache type, then where the memory goes for the chosen one (or the roomiest)."""
    minimum = f"at least {plan.min_context} tokens each" if plan.min_context else "largest context"
    agents = f"{plan.agents} agent{'s' if plan.agents != 1 else ''}"
    bits = f"{plan.bpw} bpw" + (" EXL3" if plan.quant_format is QuantFormat.EXL3 else "")
    lines = [
        f"{plan.model}: {bits} (head {plan.head_bits} bits), {_size(plan.vram)}, {agents}, {minimum}",
        f"{'cache':<6}{'KV B/token':>12}{'context/agent':>15}{'KV total':>11}  fits",
    ]
    for o in plan.options:
        mark = "  <- chosen" if o.cache_type is plan.chosen else ""
        fits = "yes" if o.fits else "no"
        lines.append(f"{o.cache_type:<6}{o.kv_bytes_per_token:>12}{o.context:>15}{_gib(o.kv_bytes):>11}  {fits}{mark}")
    shown = plan.option(plan.chosen) if plan.chosen else max(plan.options, key=lambda o: o.context)
    total = plan.fixed + shown.kv_bytes
    draft = f" + draft {_gib(plan.draft_weights)}" if plan.draft_weights else ""
    lines.append(
        f"{shown.cache_type}: weights {_gib(plan.weights)}{draft} + KV {_gib(shown.kv_bytes)}"
        f" + working {_gib(plan.working)}"
        f" + overhead {_gib(plan.overhead)} = {_gib(total)}; free {_gib(plan.vram - total)} of {_size(plan.vram)},"
        f" {_gib(plan.vram - plan.usable)} of it the {plan.safety_margin:.0%} safety margin"
    )
    return "\n".join(lines)
