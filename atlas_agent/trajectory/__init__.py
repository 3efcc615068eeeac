"""The trajectory: every step of an episode, how it ended, and its grading once known; versioned
(`schema_version`), with files of earlier versions upgraded as they are read. See docs/trajectories.md."""

from atlas_agent.trajectory.branch import BranchPoint, BranchRecord
from atlas_agent.trajectory.grading import GradedOutcome, GradedTests, Grading, TamperEdit
from atlas_agent.trajectory.schema import (
    Candidate,
    Choice,
    InstanceMetadata,
    ModelInput,
    Stage,
    Step,
    ToolResult,
    Trajectory,
    UnreadableTrajectory,
)
from atlas_agent.trajectory.stored import STORED_REPLY_CHARS, now_iso
from atlas_agent.trajectory.upgrade import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "STORED_REPLY_CHARS",
    "BranchPoint",
    "BranchRecord",
    "Candidate",
    "Choice",
    "GradedOutcome",
    "GradedTests",
    "Grading",
    "InstanceMetadata",
    "ModelInput",
    "Stage",
    "Step",
    "TamperEdit",
    "ToolResult",
    "Trajectory",
    "UnreadableTrajectory",
    "now_iso",
]
