"""Reading trajectories written by earlier Atlas versions: each stored file is upgraded, in memory, one
schema version at a time to the current one; the file itself changes only when it is saved again.

Version 1: files without `schema_version` (every trajectory before it was versioned).
Version 2: `schema_version`; per step the model-input summary, the reply's finish reason, tool time and
end time; the instance's metadata; the grading section.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic_core import PydanticCustomError

SCHEMA_VERSION = 2
Record = dict[str, Any]


def stored_version(data: Record) -> int:
    """The schema version a stored trajectory says it has; 1 when it says none."""
    version = data.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        # a custom error, so the message reads as written (no "Value error, " prefix)
        raise PydanticCustomError(
            "schema_version",
            f"schema_version {version!r} is not one this Atlas reads (1 to {SCHEMA_VERSION}): "
            "a newer Atlas wrote it; upgrade Atlas to read it",
        )
    return version


def upgraded(data: Record) -> Record:
    """`data` (a stored trajectory, or the fields a new one is made with) as the current schema has it.
    The input is not changed."""
    version = stored_version(data)
    for upgrade in _UPGRADES[version - 1 :]:
        data = upgrade(data)
    return data


def _v1_to_v2(data: Record) -> Record:
    """Version 1 recorded no tool time: it is the sum of the step's observation durations (the commands'
    own run time). What version 1 never recorded (model input, end times, metadata) stays empty."""
    data = {**data, "schema_version": 2}
    if isinstance(data.get("steps"), list):
        data["steps"] = [_v1_step(step) for step in data["steps"]]
    if isinstance(data.get("stages"), list):
        data["stages"] = [
            {**stage, "steps": [_v1_step(step) for step in stage["steps"]]}
            if isinstance(stage, dict) and isinstance(stage.get("steps"), list)
            else stage
            for stage in data["stages"]
        ]
    return data


def _v1_step(step: Any) -> Any:
    try:
        seconds = sum(result["observation"]["duration_s"] for result in step["results"])
    except (KeyError, TypeError):  # not a step as version 1 wrote them: validation says what is wrong
        return step
    return {**step, "tool_latency_s": round(seconds, 4)}


# _UPGRADES[n - 1] turns version n into version n + 1
_UPGRADES: list[Callable[[Record], Record]] = [_v1_to_v2]
