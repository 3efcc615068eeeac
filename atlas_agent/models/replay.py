"""A deterministic model that plays back scripted tool calls from a YAML file.

Used for tests and demos: the agent loop, runtime, tools and grading all run for real; only
the choice of action is scripted. The file maps instance ids to step lists; `default` serves
instances that are not listed, and `<id>#<variant>` scripts one of several conversations about an
instance (a best-of-k attempt, a pipeline stage):

    instances:
      atlas__textkit-1:
        - thought: find the helper
          bash: grep -rn "def slugify" .
        - submit
    default:
      - submit
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from atlas_agent.errors import ModelError
from atlas_agent.models.base import Turn
from atlas_agent.models.options import ModelOptions
from atlas_agent.vocabulary import Message, Sampling, ToolCall, ToolSpec


class ReplayStep(BaseModel, extra="forbid"):
    thought: str = ""
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def expand_shorthand(cls, raw: Any) -> Any:
        """`submit` and `{bash: CMD}` are shorthands for `{tool: ..., args: ...}`."""
        if isinstance(raw, str):
            return {"tool": raw}
        if isinstance(raw, dict) and "tool" not in raw:
            tools = [key for key in raw if key != "thought"]
            if len(tools) == 1:
                name = tools[0]
                value = raw[name]
                args = value if isinstance(value, dict) else {"command": value} if value else {}
                return {"thought": raw.get("thought", ""), "tool": name, "args": args}
        return raw


class ReplayScript(BaseModel, extra="forbid"):
    instances: dict[str, list[ReplayStep]] = Field(default_factory=dict)
    default: list[ReplayStep] | None = None

    @classmethod
    def load(cls, path: Path) -> ReplayScript:
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError as exc:
            raise ModelError(f"replay script {path} does not exist") from exc
        except yaml.YAMLError as exc:
            raise ModelError(f"replay script {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
        try:
            return cls.model_validate(raw or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ModelError(f"replay script {path}: {where}: {first['msg']}") from exc

    def steps_for(self, instance_id: str, variant: str = "") -> list[ReplayStep]:
        """`<id>#<variant>` first (one attempt or stage), then `<id>`, then `default`."""
        for key in (f"{instance_id}#{variant}" if variant else None, instance_id):
            if key is not None and key in self.instances:
                return self.instances[key]
        if self.default is not None:
            return self.default
        raise ModelError(f"replay script has no steps for {instance_id} and no `default` list")


class ReplayModel:
    def __init__(self, steps: list[ReplayStep], instance_id: str, sampling: Sampling) -> None:
        self._steps = steps
        self._instance_id = instance_id
        self.sampling = sampling  # kept for the record: a script has nothing to sample
        self._next = 0

    def complete(self, messages: list[Message], tools: list[ToolSpec]) -> Turn:
        if self._next >= len(self._steps):
            raise ModelError(
                f"replay script for {self._instance_id} ran out after {len(self._steps)} steps without submitting"
            )
        step = self._steps[self._next]
        self._next += 1
        call = ToolCall(id=f"replay-{self._next}", name=step.tool, arguments=step.args)
        return Turn(text=step.thought, tool_calls=[call], stop_reason="tool_use")


class ReplayProvider:
    def __init__(self, path: Path, options: ModelOptions | None = None) -> None:
        self.path = path
        self.script = ReplayScript.load(path)
        self.options = options or ModelOptions()

    @property
    def context_window(self) -> None:
        """Not known here: the scaffold's own setting stands."""
        return None

    @property
    def name(self) -> str:
        return f"replay:{self.path.stem}"

    def for_instance(self, instance_id: str, *, variant: str = "", sampling: Sampling | None = None) -> ReplayModel:
        """A script is deterministic: the sampling a real backend would use is kept, with nothing to vary."""
        label = f"{instance_id}#{variant}" if variant else instance_id
        return ReplayModel(
            self.script.steps_for(instance_id, variant), label, self.options.with_sampling(sampling).sampling
        )

    def check(self) -> None:
        """A script: nothing to reach."""
