"""Where a branched episode came from (`atlas run --from RUN/INSTANCE@STEP`), and how faithfully its
replayed steps reproduced the recorded ones."""

from __future__ import annotations

from pydantic import BaseModel, Field


class BranchPoint(BaseModel, extra="forbid"):
    """A step of a recorded episode: the run (its id), the instance, and the step, numbered from 1 as
    `atlas show RUN INSTANCE --step N` numbers it."""

    run_id: str
    instance_id: str
    step: int = Field(ge=1)

    def __str__(self) -> str:
        return f"{self.run_id}/{self.instance_id}@{self.step}"


class BranchRecord(BaseModel):
    """In a branched episode's metadata: its steps 1..replayed_steps replay the parent's tool calls
    (their observations are this episode's own); the rest are the chosen model's."""

    parent: BranchPoint
    replayed_steps: int = 0
    # replayed steps whose observations differ from the recorded ones (a command that is not
    # deterministic, or a container that is not as the parent's was), and the first difference
    diverged_steps: int = 0
    first_divergence: str | None = None
