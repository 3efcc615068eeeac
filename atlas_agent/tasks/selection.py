"""Narrowing a dataset to the tasks a run should attempt.

The steps apply in a fixed order (instances, filter, shuffle, slice) so that a
slice of a shuffled subset is reproducible from the same options and seed.
"""

from __future__ import annotations

import difflib
import random
import re

from pydantic import BaseModel

from atlas_agent.errors import DatasetError
from atlas_agent.tasks.task import Task


class Selection(BaseModel):
    instances: list[str] | None = None  # exact instance ids, kept in the order given
    filter: str | None = None  # regex, re.search against instance_id
    slice: str | None = None  # "a:b", "a:", ":b", "a:b:step", or "n" meaning the first n
    shuffle: int | None = None  # seed


def select_tasks(tasks: list[Task], selection: Selection) -> list[Task]:
    chosen = list(tasks)
    if selection.instances is not None:
        chosen = _by_ids(chosen, selection.instances)
    if selection.filter is not None:
        pattern = _compile(selection.filter)
        chosen = [task for task in chosen if pattern.search(task.instance_id)]
    if selection.shuffle is not None:
        random.Random(selection.shuffle).shuffle(chosen)
    if selection.slice is not None:
        chosen = chosen[parse_slice(selection.slice)]
    if not chosen:
        raise DatasetError(f"no tasks selected: {_describe(selection)} matched none of {len(tasks)} tasks")
    return chosen


def parse_instances(value: str | None) -> list[str] | None:
    """'a,b c' → ['a', 'b', 'c']; nothing given → None (no restriction)."""
    if value is None:
        return None
    ids = [part for part in re.split(r"[,\s]+", value) if part]
    return ids or None


def parse_slice(value: str) -> slice:
    """Python slice syntax without the brackets; a bare number n means the first n."""
    text = value.strip()
    if re.fullmatch(r"\d+", text):
        return slice(int(text))
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(re.fullmatch(r"\s*(-?\d+)?\s*", part) for part in parts):
        raise DatasetError(f"bad slice '{value}': use 'start:stop', 'start:', ':stop' or a count like '10'")
    start, stop, *step = (int(part) if part.strip() else None for part in parts)
    if step and step[0] == 0:
        raise DatasetError(f"bad slice '{value}': the step cannot be zero")
    return slice(start, stop, step[0] if step else None)


def _by_ids(tasks: list[Task], ids: list[str]) -> list[Task]:
    by_id = {task.instance_id: task for task in tasks}
    wanted = list(dict.fromkeys(ids))  # drop repeats, keep the order asked for
    unknown = [instance_id for instance_id in wanted if instance_id not in by_id]
    if unknown:
        examples = _examples(unknown, list(by_id))
        raise DatasetError(
            f"unknown instance id(s): {', '.join(unknown)} "
            f"(the dataset has {len(by_id)} tasks, e.g. {', '.join(examples)})"
        )
    return [by_id[instance_id] for instance_id in wanted]


def _examples(unknown: list[str], known: list[str], count: int = 3) -> list[str]:
    # near misses first: a typo is the usual reason an id is unknown
    close = [match for name in unknown for match in difflib.get_close_matches(name, known, n=count)]
    return list(dict.fromkeys(close + known))[:count]


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise DatasetError(f"bad filter regex '{pattern}': {exc}") from None


def _describe(selection: Selection) -> str:
    fields = selection.model_dump(exclude_none=True)
    return ", ".join(f"{name}={value!r}" for name, value in fields.items()) or "the selection"
