"""Scaffold configuration: one pydantic model per strategy, chosen by the YAML's `type:` key."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from atlas_agent.models.base import Sampling
from atlas_agent.scaffolds.history import HistoryConfig
from atlas_agent.tools import TOOL_CLASSES


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a scaffold file must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid")


class Limits(Strict):
    max_steps: int = Field(50, ge=1)
    max_cost_usd: float | None = Field(None, ge=0)
    max_wall_s: float = Field(1800.0, gt=0)
    max_tokens: int | None = Field(None, ge=1, description="prompt (cached included) + output tokens, whole episode")


class StuckConfig(Strict):
    """The same action with the same result: nudge after `nudge_after` repeats, stop after `stop_after`."""

    nudge_after: int = Field(3, ge=2)
    stop_after: int = Field(5, ge=2)


class LoopPrompts(Strict):
    system: str
    instance: str
    no_tool_call: str = "Your reply contained no tool call. Call exactly one of these tools: {{ tools | join(', ') }}."
    stuck_nudge: str = (
        "You have run the same action {{ repeats }} times with the same result. "
        "Try a different approach, or submit if you are done."
    )


def known_tool(name: str) -> str:
    """A misspelt tool would fail every instance when its tools are built: refuse it when the file loads."""
    if name not in TOOL_CLASSES:
        # a custom error, so the message reads as written (no "Value error, " prefix)
        raise PydanticCustomError("unknown_tool", f"unknown tool {name!r} (known: {', '.join(TOOL_CLASSES)})")
    return name


ToolName = Annotated[str, AfterValidator(known_tool)]
Temperature = Annotated[float, Field(ge=0, le=2)]


class LoopSettings(Strict):
    """What the `tools` and `bash-only` strategies share: a free tool-calling loop."""

    description: str = ""
    prompts: LoopPrompts
    tools: list[ToolName]
    limits: Limits = Field(default_factory=Limits)
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    stuck: StuckConfig = Field(default_factory=StuckConfig)
    # over the run's `-M temperature` / `-M max_output_tokens`; unset values leave those in force
    sampling: Sampling = Field(default_factory=Sampling)
    command_timeout: float = Field(120.0, gt=0)

    @field_validator("tools")
    @classmethod
    def each_tool_once(cls, tools: list[str]) -> list[str]:
        twice = next((name for i, name in enumerate(tools) if name in tools[:i]), None)
        if twice is not None:
            raise PydanticCustomError("duplicate_tool", f"tool {twice!r} is named twice")
        return tools


class ToolsScaffoldConfig(LoopSettings):
    type: Literal["tools"]


class BashOnlyScaffoldConfig(LoopSettings):
    type: Literal["bash-only"]

    @field_validator("tools")
    @classmethod
    def only_bash(cls, tools: list[str]) -> list[str]:
        if sorted(tools) != ["bash", "submit"]:
            raise PydanticCustomError("bash_only", "a bash-only scaffold has exactly the tools [bash, submit]")
        return tools


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


ScaffoldConfig = Annotated[
    ToolsScaffoldConfig | BashOnlyScaffoldConfig | BestOfKScaffoldConfig | AgentlessScaffoldConfig,
    Field(discriminator="type"),
]
