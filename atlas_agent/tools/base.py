"""The agent-computer interface: each tool is a small class whose pydantic argument model
becomes the schema the model sees."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ValidationError

from atlas_agent.models.base import ToolSpec
from atlas_agent.runtime.shell import CommandResult


class Workspace(Protocol):
    """What tools act on: a task container (or anything with a shell and file access)."""

    workdir: str

    def run(self, command: str, timeout: float = 120.0) -> CommandResult: ...

    def read_file(self, path: str) -> bytes: ...

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None: ...


class Observation(BaseModel):
    """What a tool call returns: `output` is what the model sees (bounded); `full_output` keeps the
    complete text in the trajectory when `output` had to be shortened."""

    output: str
    full_output: str | None = None
    exit_code: int | None = None
    timed_out: bool = False
    truncated: bool = False
    duration_s: float = 0.0


class ToolArgumentError(ValueError):
    """The model called a tool with arguments that do not fit its schema."""


class Tool(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    Args: ClassVar[type[BaseModel]]
    # Calling this tool ends the episode (e.g. submit).
    ends_episode: ClassVar[bool] = False

    def spec(self) -> ToolSpec:
        schema = self.Args.model_json_schema()
        schema.pop("title", None)
        return ToolSpec(name=self.name, description=self.description, parameters=schema)

    def parse(self, arguments: dict[str, Any]) -> BaseModel:
        try:
            return self.Args.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in exc.errors()
            )
            raise ToolArgumentError(f"invalid arguments for {self.name}: {problems}") from exc

    @abstractmethod
    def run(self, args: Any, workspace: Workspace) -> Observation:
        """Carry out one validated call."""
