"""Scaffold configuration: one pydantic model per strategy, chosen by the YAML's `type:` key, each
building its own strategy (`build()`): a new scaffold is one config class and one union member."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from atlas_agent.agent.settings import Limits, LoopSettings, Strict, Temperature
from atlas_agent.vocabulary import Sampling

if TYPE_CHECKING:  # the strategies import their configs: built lazily, imported for types only
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


ScaffoldConfig = Annotated[
    ToolsScaffoldConfig | BashOnlyScaffoldConfig | BestOfKScaffoldConfig | AgentlessScaffoldConfig,
    Field(discriminator="type"),
]
