"""Tasks: loading SWE-bench datasets and choosing which instances a run attempts."""

from atlas_agent.tasks.loaders import MINI_SUITE_DIR, load_tasks, source_label
from atlas_agent.tasks.selection import Selection, parse_instances, select_tasks
from atlas_agent.tasks.task import EvalType, Task

__all__ = [
    "MINI_SUITE_DIR",
    "EvalType",
    "Selection",
    "Task",
    "load_tasks",
    "parse_instances",
    "select_tasks",
    "source_label",
]
