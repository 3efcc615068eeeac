"""The good-enough map: where a cheaper run resolves as much as a dearer one, by task feature.

Instances both runs attempted are grouped by what the task itself says of its difficulty (repo, the
dataset's difficulty label, the gold patch's size and files, the issue's length); each group counts
both / only dearer / only cheaper / neither, says whether the cheaper run matches the dearer there,
and what using the cheaper run there saves. It answers "for which tasks is the local model good
enough, and where does the stronger model's gap justify its cost?".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel

from atlas_agent.tasks import Task
from atlas_agent.vocabulary import Usage

CostUnit = Literal["usd", "gpu_seconds", "none"]
UNIT_NAMES: dict[CostUnit, str] = {"usd": "US dollars", "gpu_seconds": "GPU-seconds", "none": "no cost recorded"}
NO_GOLD_PATCH = "(no gold patch)"
# Upper bounds (inclusive) and labels. Most SWE-bench gold patches change a handful of lines in one
# file, so the small end is split finely.
PATCH_LINE_BUCKETS = ((5, "1-5"), (15, "6-15"), (50, "16-50"), (150, "51-150"))
FILES_BUCKETS = ((1, "1"), (2, "2"), (4, "3-4"))
ISSUE_WORD_BUCKETS = ((99, "<100"), (249, "100-249"), (499, "250-499"), (999, "500-999"))
# SWE-bench Verified's annotations, easiest first; other labels follow in name order
DIFFICULTY_ORDER = ("<15 min fix", "15 min - 1 hour", "1-4 hours", ">4 hours")
FEATURES = ("repo", "difficulty", "gold patch lines", "files touched", "issue words")


class TaskFeatures(BaseModel):
    """None where unknown (the dataset's row could not be read): the instance is left out of that feature."""

    repo: str
    difficulty: str | None = None
    gold_patch_lines: int | None = None
    files_touched: int | None = None
    issue_words: int | None = None


def features_of(task: Task | None, repo: str, difficulty: str | None) -> TaskFeatures:
    """What the task row says of its size; only the repo and difficulty (from the report) when the
    dataset no longer has the row."""
    if task is None:
        return TaskFeatures(repo=repo, difficulty=difficulty)
    changed = [line for line in task.patch.splitlines() if line[:1] in "+-" and not line.startswith(("+++ ", "--- "))]
    return TaskFeatures(
        repo=task.repo,
        difficulty=difficulty,
        gold_patch_lines=len(changed),
        files_touched=sum(line.startswith("diff --git ") for line in task.patch.splitlines()),
        issue_words=len(task.problem_statement.split()),
    )


class InstanceResult(BaseModel):
    """One instance in one run."""

    outcome: str
    resolved: bool
    usage: Usage
    duration_s: float = 0.0
    # in the comparison's cost unit
    cost: float = 0.0


class InstanceRow(BaseModel):
    instance_id: str
    features: TaskFeatures
    # by run label; a run that did not attempt the instance has no entry
    results: dict[str, InstanceResult]


class GoodEnoughRow(BaseModel):
    feature: str
    value: str
    instances: int
    both: int
    only_dearer: int
    only_cheaper: int
    neither: int
    # the cheaper run resolves at least as many here
    matches: bool
    # the dearer run's cost less the cheaper run's over these instances, in the map's unit
    cost_saved: float
    # what each instance the dearer run resolves beyond the cheaper one costs; None where it resolves none more
    cost_per_extra_resolved: float | None


class GoodEnoughMap(BaseModel):
    cheaper: str
    dearer: str
    unit: CostUnit
    # both runs cost the same per instance: "cheaper" is then the one listed first
    equal_cost: bool
    overall: GoodEnoughRow
    rows: list[GoodEnoughRow]


def bucket(value: int, bounds: Sequence[tuple[int, str]]) -> str:
    for upper, label in bounds:
        if value <= upper:
            return label
    return f"{bounds[-1][0] + 1}+"


def feature_values(features: TaskFeatures) -> dict[str, str | None]:
    """The group an instance falls in for each feature; None leaves it out of that feature's rows."""
    return {
        "repo": features.repo,
        "difficulty": features.difficulty,
        "gold patch lines": patch_bucket(features.gold_patch_lines, PATCH_LINE_BUCKETS),
        "files touched": patch_bucket(features.files_touched, FILES_BUCKETS),
        "issue words": None if features.issue_words is None else bucket(features.issue_words, ISSUE_WORD_BUCKETS),
    }


def patch_bucket(value: int | None, bounds: Sequence[tuple[int, str]]) -> str | None:
    """A size of the gold patch: a task without one (0 lines, 0 files) is a group of its own."""
    if value is None:
        return None
    return bucket(value, bounds) if value > 0 else NO_GOLD_PATCH


def value_order(feature: str) -> Callable[[str], tuple[int, int, str]]:
    """Buckets small to large, difficulties easy to hard, anything else by name; the no-patch group last."""
    bounds = {
        "gold patch lines": PATCH_LINE_BUCKETS,
        "files touched": FILES_BUCKETS,
        "issue words": ISSUE_WORD_BUCKETS,
    }.get(feature)
    if bounds:
        known = [label for _, label in bounds] + [f"{bounds[-1][0] + 1}+"]
    else:
        known = list(DIFFICULTY_ORDER) if feature == "difficulty" else []

    def key(value: str) -> tuple[int, int, str]:
        rank = known.index(value) if value in known else len(known)
        return (value == NO_GOLD_PATCH, rank, value)

    return key


def good_enough_map(
    instances: Sequence[InstanceRow], cheaper: str, dearer: str, unit: CostUnit, *, equal_cost: bool = False
) -> GoodEnoughMap:
    """The map of `cheaper` against `dearer` (run labels) over the instances both attempted."""
    shared = [row for row in instances if cheaper in row.results and dearer in row.results]
    groups: dict[str, dict[str, list[InstanceRow]]] = defaultdict(lambda: defaultdict(list))
    for row in shared:
        for feature, value in feature_values(row.features).items():
            if value is not None:
                groups[feature][value].append(row)
    rows = [
        tally(feature, value, groups[feature][value], cheaper, dearer)
        for feature in FEATURES
        for value in sorted(groups[feature], key=value_order(feature))
    ]
    return GoodEnoughMap(
        cheaper=cheaper,
        dearer=dearer,
        unit=unit,
        equal_cost=equal_cost,
        overall=tally("all", "all", shared, cheaper, dearer),
        rows=rows,
    )


def tally(feature: str, value: str, rows: Sequence[InstanceRow], cheaper: str, dearer: str) -> GoodEnoughRow:
    pairs = [(row.results[cheaper], row.results[dearer]) for row in rows]
    both = sum(low.resolved and high.resolved for low, high in pairs)
    only_dearer = sum(high.resolved and not low.resolved for low, high in pairs)
    only_cheaper = sum(low.resolved and not high.resolved for low, high in pairs)
    saved = sum(high.cost - low.cost for low, high in pairs)
    extra = only_dearer - only_cheaper
    return GoodEnoughRow(
        feature=feature,
        value=value,
        instances=len(pairs),
        both=both,
        only_dearer=only_dearer,
        only_cheaper=only_cheaper,
        neither=len(pairs) - both - only_dearer - only_cheaper,
        matches=extra <= 0,
        cost_saved=saved,
        cost_per_extra_resolved=saved / extra if extra > 0 else None,
    )
