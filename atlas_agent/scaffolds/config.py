"""Scaffold configuration: one pydantic model per strategy, chosen by the YAML's `type:` key, each
building its own strategy (`build()`): a new scaffold is one config class and one union member."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import Field, PrivateAttr, field_validator
from pydantic_core import PydanticCustomError

from atlas_agent.agent.settings import Limits, LoopSettings, Strict, Temperature
from atlas_agent.errors import ModelError
from atlas_agent.models.backends import backend_for
from atlas_agent.models.options import ModelOptions
from atlas_agent.vocabulary import Sampling

if TYPE_CHECKING:  # the strategies import their configs: built lazily, imported for types only
    from atlas_agent.models.base import ModelProvider
    from atlas_agent.scaffolds.base import Scaffold


class ToolsScaffoldConfig(LoopSettings):
    type: Literal["tools"]

    def build(self) -> Scaffold:
        from atlas_agent.scaffolds.loop import LoopScaffold

        return LoopScaffold(self)


class BashOnlyScaffoldConfig(LoopSettings):
    type: Literal["bash-only"]

    @field_validator("tools")
    @classmethod
    def only_bash(cls, tools: list[str]) -> list[str]:
        if sorted(tools) != ["bash", "submit"]:
            raise PydanticCustomError("bash_only", "a bash-only scaffold has exactly the tools [bash, submit]")
        return tools

    def build(self) -> Scaffold:
        from atlas_agent.scaffolds.loop import LoopScaffold

        return LoopScaffold(self)


AttemptConfig = Annotated[ToolsScaffoldConfig | BashOnlyScaffoldConfig, Field(discriminator="type")]


class ReviewPrompts(Strict):
    system: str = "You are a senior engineer reviewing candidate fixes for an issue. Pick the best one."
    instance: str


class BestOfKScaffoldConfig(Strict):
    """k independent attempts, each verified by the repository's tests in its own container; the
    best test evidence wins, and a model review breaks ties between different patches."""

    type: Literal["best-of-k"]
    description: str = ""
    k: int = Field(3, ge=1, le=16)
    # per attempt, cycled, over `attempt.sampling`: diversity comes from sampling, not from different prompts
    temperatures: list[Temperature] = Field(default_factory=lambda: [0.0, 0.7, 1.0])
    # a full loop scaffold; `attempt: tools` (a shipped name) is expanded when the file is loaded
    attempt: AttemptConfig
    review: ReviewPrompts
    verify_timeout: float = Field(600.0, gt=0)
    # the whole episode (all attempts + review): no new attempt starts once one is reached
    limits: Limits = Field(default_factory=lambda: Limits(max_steps=1000, max_wall_s=7200.0))

    def build(self) -> Scaffold:
        from atlas_agent.scaffolds.best_of_k import BestOfKScaffold

        return BestOfKScaffold(self)


class AgentlessPrompts(Strict):
    system: str
    localize_files: str
    localize_symbols: str
    repair: str
    reproduce: str


class AgentlessScaffoldConfig(Strict):
    """No free loop: localize (files, then symbols) → repair (k candidate edits) → validate (a
    reproduction test written by the model + the repository's tests) → select."""

    type: Literal["agentless"]
    description: str = ""
    prompts: AgentlessPrompts
    max_files: int = Field(3, ge=1)
    max_symbols: int = Field(6, ge=1)
    candidates: int = Field(2, ge=1, le=16)
    # every stage's model calls, over the run's `-M` values
    sampling: Sampling = Field(default_factory=Sampling)
    # per repair candidate, cycled, over `sampling.temperature`
    temperatures: list[Temperature] = Field(default_factory=lambda: [0.0, 0.8])
    context_lines: int = Field(5, ge=0, description="lines shown around each chosen symbol")
    max_listed_files: int = Field(2000, ge=1)
    verify_timeout: float = Field(600.0, gt=0)
    context_window: int = Field(32768, ge=1024, description="the model's context in tokens")
    reserve_output_tokens: int = Field(4096, ge=0)
    # model calls, cost, tokens and time over the whole pipeline, checked before every model call
    limits: Limits = Field(default_factory=lambda: Limits(max_steps=40))

    def build(self) -> Scaffold:
        from atlas_agent.scaffolds.agentless import AgentlessScaffold

        return AgentlessScaffold(self)


# every scaffold but the cascade: what a cascade runs at each of its stages
StageConfigType = ToolsScaffoldConfig | BashOnlyScaffoldConfig | BestOfKScaffoldConfig | AgentlessScaffoldConfig
StageConfig = Annotated[StageConfigType, Field(discriminator="type")]
# How a first attempt may stop that says the cheap model failed; a model, runtime or infrastructure
# error says nothing about the model's ability and is an error of the instance, not an escalation.
EscalatingStop = Literal[
    "step_limit",
    "cost_limit",
    "token_limit",
    "time_limit",
    "stuck",
    "format_errors",
    "context_overflow",
    "no_candidate",
]


class EscalateWhen(Strict):
    """Which failures of the first attempt send an instance to the stronger model."""

    empty_patch: bool = True
    # the self-check: the repository's existing tests (the task's test command without the hidden
    # tests) and the test files the patch adds or changes, on a clean checkout with the patch
    verification_failed: bool = True
    stop_reasons: list[EscalatingStop] = Field(default_factory=lambda: list(get_args(EscalatingStop)))


class ProviderSlot:
    """The escalation provider, opened on first use and shared by every instance of a run (a config's
    build() runs once per instance); what it holds is no part of the configuration."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._provider: ModelProvider | None = None

    def get(self, open_provider: Callable[[], ModelProvider]) -> ModelProvider:
        with self._lock:
            if self._provider is None:
                self._provider = open_provider()
            return self._provider

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProviderSlot)

    __hash__ = None  # type: ignore[assignment]

    def __deepcopy__(self, memo: dict[int, Any]) -> ProviderSlot:
        return ProviderSlot()


class Escalation(Strict):
    model: str = Field(description="a --model spec, e.g. claude-sonnet-4-5 or anthropic:claude-opus-4-5")
    # as `-M` sets them for the run's model; the run's own `-M` values are for its model and do not apply
    model_options: ModelOptions = Field(default_factory=ModelOptions)
    # the strong attempt's strategy; None: the same as `first`
    scaffold: StageConfig | None = None

    @field_validator("model")
    @classmethod
    def known_backend(cls, spec: str) -> str:
        try:
            backend_for(spec)
        except ModelError as exc:
            raise PydanticCustomError("model_spec", str(exc)) from None
        return spec


class CascadeScaffoldConfig(Strict):
    """A cheap first attempt (the run's model); only an instance whose attempt fails its own check or
    stops short goes to a stronger model, in a fresh workspace, and that attempt's patch is submitted."""

    type: Literal["cascade"]
    description: str = ""
    first: StageConfig
    escalate: Escalation
    when: EscalateWhen = Field(default_factory=EscalateWhen)
    verify_timeout: float = Field(600.0, gt=0, description="seconds for each run of the self-check's tests")
    _escalation: ProviderSlot = PrivateAttr(default_factory=ProviderSlot)

    @property
    def strong_scaffold(self) -> StageConfigType:
        return self.escalate.scaffold or self.first

    def escalation_provider(self) -> ModelProvider:
        """Opened when the run's first instance escalates, then reused: a run the cheap model settles
        whole never opens (nor needs a key for) the stronger one."""
        from atlas_agent.models import open_provider

        return self._escalation.get(lambda: open_provider(self.escalate.model, self.escalate.model_options))

    def build(self) -> Scaffold:
        from atlas_agent.scaffolds.cascade import CascadeScaffold

        return CascadeScaffold(self)


ScaffoldConfig = Annotated[StageConfigType | CascadeScaffoldConfig, Field(discriminator="type")]
