"""What the viewer knows of a run: one summary per instance (enough for a table of hundreds) and, read
only when asked for, an instance's detail (its steps, patch and test output)."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

from atlas_agent.grading.tamper import InfraEdit
from atlas_agent.trajectory import GradedTests
from atlas_agent.vocabulary import Usage

# How an instance ended, as a reader asks it: graded (resolved, unresolved), an empty patch (needs no
# grading to know it cannot resolve), an error (the run's or the grading's), or not graded (yet).
Outcome = Literal["resolved", "unresolved", "error", "empty_patch", "not_graded"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
# done and error as status.json says; unfinished: no status.json (still running, or stopped)
RunState = Literal["done", "error", "unfinished"]


class Damage(BaseModel):
    """A file of the run that could not be read: the viewer shows it instead of failing."""

    file: str  # relative to the run directory
    problem: str


class PatchStats(BaseModel):
    files: list[str] = Field(default_factory=list)
    added: int = 0
    removed: int = 0

    @property
    def empty(self) -> bool:
        return not self.files and not self.added and not self.removed


class GradingResult(BaseModel):
    """The official harness's verdict on one instance (its per-instance report.json)."""

    resolved: bool
    patch_applied: bool
    fail_to_pass: GradedTests
    pass_to_pass: GradedTests
    # where the official logs are (test_output.txt, run_instance.log), relative to the run directory
    log_dir: str


class InstanceView(BaseModel):
    instance_id: str
    repo: str
    difficulty: str | None = None
    outcome: Outcome
    state: RunState
    stop_reason: str | None = None
    stop_detail: str = ""
    error: str | None = None
    steps: int = 0
    usage: Usage = Field(default_factory=Usage)
    duration_s: float = 0.0
    patch: PatchStats = Field(default_factory=PatchStats)
    grading: GradingResult | None = None
    # the official classifier's label of a failed instance (infra / ambiguous) and its reason
    failure_kind: str | None = None
    failure_reason: str | None = None
    tampering: list[InfraEdit] = Field(default_factory=list)
    tamper_action: str | None = None
    flaky: bool = False
    verdicts: list[str] = Field(default_factory=list)
    damaged: list[Damage] = Field(default_factory=list)

    @property
    def flags(self) -> list[str]:
        """Short words for what deserves a second look."""
        flags = [f"tamper: {self.tamper_action}"] if self.tampering else []
        flags += ["flaky"] if self.flaky else []
        flags += [f"{self.failure_kind} failure"] if self.failure_kind else []
        flags += ["damaged"] if self.damaged else []
        return flags


class RunView(BaseModel):
    path: str
    run_id: str
    model: str = ""
    dataset: str = ""
    scaffold: str = ""
    graded: bool = False
    damaged: list[Damage] = Field(default_factory=list)
    instances: list[InstanceView] = Field(default_factory=list)


class CallView(BaseModel):
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ResultView(BaseModel):
    tool: str
    output: str  # the whole output the trajectory kept (what the model saw may have been shortened)
    exit_code: int | None = None
    timed_out: bool = False
    shortened: bool = False  # the model saw a head-and-tail cut of it
    duration_s: float = 0.0


class StepView(BaseModel):
    number: int  # 1-based over the whole instance: main loop, then pipeline stages, then attempts
    part: str = ""  # "" for the main loop, "stage localize", "attempt 2"
    started_at: str = ""
    thought: str = ""
    calls: list[CallView] = Field(default_factory=list)
    results: list[ResultView] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    retries: int = 0
    error: str | None = None
    nudge: str | None = None
    replayed: bool = False  # played back from the parent run of a branch (`atlas run --from`)


class InstanceDetail(BaseModel):
    """What `atlas show RUN INSTANCE` and the HTML page's instance view show beyond the summary."""

    instance_id: str
    system_prompt: str = ""
    instance_prompt: str = ""
    steps: list[StepView] = Field(default_factory=list)
    choice: str | None = None  # a multi-candidate scaffold's pick and why
    patch: str = ""
    test_output_tail: str = ""
    damaged: list[Damage] = Field(default_factory=list)
