"""The agent-computer interface: each tool is a small class whose pydantic argument model
becomes the schema the model sees."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import BaseModel, ValidationError

from atlas_agent.runtime.workspace import Workspace
from atlas_agent.vocabulary import Observation, ToolSpec

if TYPE_CHECKING:
    from atlas_agent.tools.test_runner import TestRunner


class ToolArgumentError(ValueError):
    """The model called a tool with arguments that do not fit its schema."""


@dataclass(frozen=True)
class ToolSettings:
    """What an episode's tools are built with: each tool takes what it needs."""

    command_timeout: float = 120.0
    tests: TestRunner | None = None  # the task's test runner (run_tests); None: pytest


class Tool(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    Args: ClassVar[type[BaseModel]]
    # Calling this tool ends the episode (e.g. submit).
    ends_episode: ClassVar[bool] = False

    @classmethod
    def create(cls, settings: ToolSettings) -> Self:
        """A fresh instance for one episode; tools that take settings say which."""
        return cls()

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
