"""The loop's own settings: prompts, tools, limits, history, stuck detection, sampling. The `tools`
and `bash-only` scaffolds are made of them; pipeline scaffolds share the limits."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from atlas_agent.agent.history import HistoryConfig
from atlas_agent.tools import TOOL_CLASSES
from atlas_agent.vocabulary import Sampling


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
