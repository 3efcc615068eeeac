"""What a cascade did with one instance, as its trajectory stores it (the result of the stage named
`cascade`) and the run report reads it back."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from atlas_agent.trajectory import Stage, Trajectory
from atlas_agent.vocabulary import Usage

RECORD_STAGE = "cascade"
StageName = Literal["first", "escalated"]


class StageRecord(BaseModel):
    name: StageName
    model: str
    stop_reason: str | None = None
    # this stage's model calls alone (the trajectory's total adds up every stage)
    usage: Usage = Field(default_factory=Usage)
    patch_lines: int = 0


class CascadeRecord(BaseModel):
    escalated: bool = False
    # why it escalated, in the order checked: a stop reason, `empty_patch`, `verification_failed`
    triggers: list[str] = Field(default_factory=list)
    # one line: what the self-check found, or what sent the instance on
    detail: str = ""
    stages: list[StageRecord] = Field(default_factory=list)

    def usage_of(self, name: StageName) -> Usage:
        return next((stage.usage for stage in self.stages if stage.name == name), Usage())

    @classmethod
    def of(cls, trajectory: Trajectory) -> CascadeRecord | None:
        """The record a cascade left in `trajectory`; None for any other scaffold's."""
        stage = next((stage for stage in trajectory.stages if stage.name == RECORD_STAGE), None)
        if stage is None:
            return None
        record = cls.model_validate(stage.result)
        # each stage's attempt holds its steps: a stage cut short by an error still spent what they cost
        for kept, attempt in zip(record.stages, trajectory.attempts, strict=False):
            kept.usage = attempt.usage
        return record

    def store(self, trajectory: Trajectory) -> None:
        stage = next((stage for stage in trajectory.stages if stage.name == RECORD_STAGE), None)
        if stage is None:
            stage = Stage(name=RECORD_STAGE)
            trajectory.stages.append(stage)
        stage.result = self.model_dump(mode="json")
