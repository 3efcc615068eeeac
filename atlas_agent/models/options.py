"""Per-run model options (`-M key=value` on the command line), and prices for turning usage into cost."""

from __future__ import annotations

from typing import Any, Literal, cast, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from atlas_agent.errors import ModelError
from atlas_agent.models.retry import RetryPolicy
from atlas_agent.vocabulary import Sampling, Usage


class Price(BaseModel):
    """US dollars per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write: float = Field(ge=0)
    cache_read: float = Field(ge=0)

    def cost(self, usage: Usage) -> float:
        total = (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_write_tokens * self.cache_write
            + usage.cache_read_tokens * self.cache_read
        )
        return total / 1_000_000


# Published list prices (5-minute cache writes at 1.25x input, cache reads at 0.1x input).
PRICES: dict[str, Price] = {
    "claude-opus-4-5": Price(input=5.0, output=25.0, cache_write=6.25, cache_read=0.50),
    "claude-opus-4-1": Price(input=15.0, output=75.0, cache_write=18.75, cache_read=1.50),
    "claude-opus-4": Price(input=15.0, output=75.0, cache_write=18.75, cache_read=1.50),
    "claude-sonnet-4-5": Price(input=3.0, output=15.0, cache_write=3.75, cache_read=0.30),
    "claude-sonnet-4": Price(input=3.0, output=15.0, cache_write=3.75, cache_read=0.30),
    "claude-haiku-4-5": Price(input=1.0, output=5.0, cache_write=1.25, cache_read=0.10),
    "claude-3-5-haiku": Price(input=0.80, output=4.0, cache_write=1.0, cache_read=0.08),
}


def price_for(model_id: str, override: Price | None = None) -> Price | None:
    """The configured price, else the longest table entry the id starts with (dated ids match)."""
    if override is not None:
        return override
    matches = [name for name in PRICES if model_id.startswith(name)]
    return PRICES[max(matches, key=len)] if matches else None


# none: one forward pass per token; ngram: prompt lookup (what followed an earlier occurrence of the last
# few tokens is proposed and checked in one pass); draft: a small model of the same tokenizer proposes
Speculation = Literal["none", "ngram", "draft"]
# what an in-process model speculates with when `-M speculation` is not given: prompt lookup on the GPU,
# where a decode step is bound by reading the weights and checking a few more positions costs little;
# none on the CPU, where a pass over k tokens costs several passes over one (on the replayed agent
# session of bench/gpu_speculation.py, SmolLM2 on 2 cores decoded at 0.81x with ngram)
GPU_SPECULATION: Speculation = "ngram"
CPU_SPECULATION: Speculation = "none"


class ModelOptions(Sampling):
    """What `-M key=value` may set; unknown keys are errors. The sampling keys (`temperature`,
    `max_output_tokens`) are the run's defaults: a scaffold's `sampling:` overrides them."""

    model_config = ConfigDict(extra="forbid")

    max_output_tokens: int = Field(4096, ge=1)
    thinking_budget: int | None = Field(None, ge=1024, description="extended thinking tokens (Claude)")
    price: Price | None = None
    gpu_count: int = Field(1, ge=1, description="GPUs behind a local server, for GPU-second costs")
    threads: int | None = Field(
        None, ge=1, description="CPU threads of an in-process GGUF model; default: the usable cores, paced by load"
    )
    timeout_s: float = Field(600.0, gt=0)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    api_key_env: str = "ANTHROPIC_API_KEY"
    base_url: str | None = None
    speculation: Speculation | None = Field(
        None,
        description=f"speculative decoding of an in-process model; default: {GPU_SPECULATION} on a GPU, "
        f"{CPU_SPECULATION} on the CPU",
    )
    draft_model: str | None = Field(None, description="the model directory `speculation: draft` drafts with")

    @model_validator(mode="after")
    def _draft_model_with_draft(self) -> ModelOptions:
        if (self.speculation == "draft") != (self.draft_model is not None):
            raise ValueError("speculation=draft needs draft_model=DIR, and draft_model needs speculation=draft")
        return self

    def speculation_or(self, default: Speculation) -> Speculation:
        """What an in-process model speculates with: the option, else its backend's `default`."""
        return self.speculation or default

    def with_sampling(self, sampling: Sampling | None) -> ModelOptions:
        """These options for one conversation: its own sampling (None: none) over the run's."""
        return self if sampling is None else sampling.over(self)

    @property
    def sampling(self) -> Sampling:
        return Sampling(temperature=self.temperature, max_output_tokens=self.max_output_tokens)

    @property
    def greedy_sampling(self) -> Sampling:
        """What an in-process engine samples with: no temperature is greedy decoding, so it says 0.0
        rather than leave the default unnamed."""
        return Sampling(temperature=self.temperature or 0.0, max_output_tokens=self.max_output_tokens)


def parse_speculation(value: str) -> Speculation:
    """A speculation setting by name, or one ModelError line."""
    if value not in get_args(Speculation):
        raise ModelError(f"unknown speculation {value!r}: use none, ngram or draft")
    return cast(Speculation, value)


def parse_model_options(items: list[str]) -> ModelOptions:
    """`-M key=value` pairs (dotted keys, YAML values) → validated options, or one ModelError line."""
    data: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ModelError(f"model option {item!r} is not KEY=VALUE (e.g. -M temperature=0.2)")
        node = data
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(raw)
    try:
        return ModelOptions.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        message = "unknown model option" if error["type"] == "extra_forbidden" else error["msg"]
        message = message.removeprefix("Value error, ")
        raise ModelError(f"-M {where}: {message}" if where else f"-M: {message}") from exc
