"""`atlas compare`: graded runs side by side.

Per instance in any of the runs: whether each run resolved it (from its report.json). For two runs
the matrix both / only A / only B / neither; for more, every pair's counts. Resolved per repo and
per difficulty; cost, tokens and time per run, in total and per resolved instance; and the
good-enough map of each cheaper run against the dearest (`good_enough.py`).

Cost is what usage recorded: dollars for priced APIs, GPU-seconds for local servers. Runs that
recorded dollars and runs that recorded only GPU time share one axis only through a price per
GPU-hour (`gpu_hour_usd`); without one, GPU time counts as $0 next to dollars, and a warning says so.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import combinations
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from atlas_agent.errors import AtlasError, DatasetError
from atlas_agent.grading.report import NO_DIFFICULTY, GroupScore, RunReport, group_scores
from atlas_agent.rundir import InstanceStatus, RunDir
from atlas_agent.tasks import Task, load_tasks
from atlas_agent.viewer.good_enough import (
    UNIT_NAMES,
    CostUnit,
    GoodEnoughMap,
    InstanceResult,
    InstanceRow,
    TaskFeatures,
    features_of,
    good_enough_map,
    value_order,
)
from atlas_agent.viewer.load import resolve_run_path
from atlas_agent.vocabulary import Usage

SECONDS_PER_HOUR = 3600
GroupOf = Callable[[TaskFeatures], str]


class RunRecord(BaseModel):
    """What a comparison reads of one graded run."""

    label: str
    path: str
    model: str
    scaffold: str
    dataset: str
    results: dict[str, InstanceResult]
    features: dict[str, TaskFeatures]
    # first instance started to last one finished
    wall_seconds: float = 0.0
    warnings: list[str] = []

    @property
    def usage(self) -> Usage:
        return sum((result.usage for result in self.results.values()), Usage())

    @property
    def cost_basis(self) -> CostUnit:
        """What this run's usage priced it in: dollars when any were recorded, else GPU time, else nothing."""
        usage = self.usage
        return "usd" if usage.cost_usd > 0 else "gpu_seconds" if usage.gpu_seconds > 0 else "none"


class RunSummary(BaseModel):
    label: str
    path: str
    model: str
    scaffold: str
    dataset: str
    instances: int
    resolved: int
    resolved_rate: float
    usage: Usage
    # what the run recorded; `cost` is in the comparison's unit
    cost_basis: CostUnit
    cost: float
    cost_per_instance: float
    cost_per_resolved: float | None
    tokens: int
    tokens_per_resolved: float | None
    # the instances' own durations added up, and the run's wall clock (workers overlap)
    instance_seconds: float
    seconds_per_resolved: float | None
    wall_seconds: float


class PairCounts(BaseModel):
    a: str
    b: str
    both: list[str]
    only_a: list[str]
    only_b: list[str]
    neither: list[str]
    # attempted by one of the two only: in no count
    unshared: list[str]


class GroupRow(BaseModel):
    group: str
    # by run label; a run with no instance in the group has no entry
    scores: dict[str, GroupScore]


class Comparison(BaseModel):
    runs: list[RunSummary]
    cost_unit: CostUnit
    cost_note: str
    instances: list[InstanceRow]
    pairs: list[PairCounts]
    by_repo: list[GroupRow]
    # empty when the dataset labels no instance's difficulty
    by_difficulty: list[GroupRow]
    # each cheaper run against the dearest, cheapest first
    good_enough: list[GoodEnoughMap]
    warnings: list[str]


def compare_runs(run_paths: Sequence[Path], gpu_hour_usd: float | None = None) -> Comparison:
    """Compare graded run directories; an ungraded one is an AtlasError naming `atlas eval`."""
    if len(run_paths) < 2:
        raise AtlasError("compare needs two or more run directories, e.g. `atlas compare runs/A runs/B`")
    records = [read_run(resolve_run_path(path)) for path in run_paths]
    labels = [record.label for record in records]
    if len(set(labels)) < len(labels):  # same run id in two places: the paths tell them apart
        records = [record.model_copy(update={"label": record.path}) for record in records]
    return build_comparison(records, gpu_hour_usd)


def read_run(path: Path) -> RunRecord:
    run_dir = RunDir(path)
    config = run_dir.config()
    report_path = path / "report.json"
    if not report_path.is_file():
        raise AtlasError(f"{path} has not been graded (no report.json): run `atlas eval {path}` first")
    try:
        report = RunReport.model_validate_json(report_path.read_bytes())
    except ValidationError:
        raise AtlasError(f"{report_path} is not a report this Atlas reads: run `atlas eval {path}` again") from None
    warnings = []
    graded_at = report_path.stat().st_mtime
    if any(status.stat().st_mtime > graded_at for status in path.glob("instances/*/status.json")):
        warnings.append(f"{path}: instances finished after it was graded: run `atlas eval {path}` again")
    try:
        tasks = tasks_by_id(config.dataset, config.split)
    except DatasetError as exc:
        tasks = {}
        warnings.append(f"{path}: its dataset cannot be read ({exc}): only repo and difficulty are compared")
    statuses = {item.instance_id: run_dir.status(item.instance_id) for item in report.instances}
    resolved = set(report.resolved_ids)
    return RunRecord(
        label=config.run_id,
        path=str(path),
        model=config.model,
        scaffold=config.scaffold_name,
        dataset=config.dataset,
        results={
            item.instance_id: InstanceResult(
                outcome=item.outcome,
                resolved=item.instance_id in resolved,
                usage=item.usage,
                duration_s=status.duration_s if (status := statuses[item.instance_id]) else 0.0,
            )
            for item in report.instances
        },
        features={
            item.instance_id: features_of(tasks.get(item.instance_id), item.repo, item.difficulty)
            for item in report.instances
        },
        wall_seconds=wall_seconds([status for status in statuses.values() if status is not None]),
        warnings=warnings,
    )


@functools.cache
def tasks_by_id(dataset: str, split: str) -> dict[str, Task]:
    return {task.instance_id: task for task in load_tasks(dataset, split)}


def wall_seconds(statuses: Sequence[InstanceStatus]) -> float:
    if not statuses:
        return 0.0
    start = min(datetime.fromisoformat(status.started_at) for status in statuses)
    end = max(datetime.fromisoformat(status.finished_at) for status in statuses)
    return max(0.0, (end - start).total_seconds())


def build_comparison(records: Sequence[RunRecord], gpu_hour_usd: float | None = None) -> Comparison:
    """The comparison of runs already read (labels distinct)."""
    unit, cost_note, warnings = cost_basis(records, gpu_hour_usd)
    rows = instance_rows(records, unit, gpu_hour_usd)
    runs = [summary(record, rows) for record in records]
    labels = [record.label for record in records]
    return Comparison(
        runs=runs,
        cost_unit=unit,
        cost_note=cost_note,
        instances=rows,
        pairs=[pair_counts(rows, a, b) for a, b in combinations(labels, 2)],
        by_repo=group_rows(rows, labels, lambda features: features.repo),
        by_difficulty=group_rows(
            rows, labels, lambda features: features.difficulty or NO_DIFFICULTY, value_order("difficulty")
        )
        if any(row.features.difficulty for row in rows)
        else [],
        good_enough=good_enough_maps(runs, rows, unit),
        warnings=[warning for record in records for warning in record.warnings] + warnings,
    )


def cost_basis(records: Sequence[RunRecord], gpu_hour_usd: float | None) -> tuple[CostUnit, str, list[str]]:
    """The unit every run's cost is given in, a line saying how it was measured, and warnings."""
    bases = {record.label: record.cost_basis for record in records}
    gpu_only = [label for label, basis in bases.items() if basis == "gpu_seconds"]
    if gpu_hour_usd is not None and gpu_only:
        return "usd", f"US dollars; GPU time of {', '.join(gpu_only)} at ${gpu_hour_usd:g} per GPU-hour", []
    if "usd" in bases.values():
        warnings = [
            f"{label} recorded GPU time but no dollars: counted as $0 (price GPU time with --gpu-hour-usd)"
            for label in gpu_only
        ]
        return "usd", "US dollars, as usage recorded them", warnings
    if gpu_only:
        return "gpu_seconds", "GPU-seconds (the local server's busy time x its GPUs), as usage recorded them", []
    return "none", "no run recorded a cost (replayed or unpriced models): every cost is 0", []


def instance_cost(result: InstanceResult, basis: CostUnit, unit: CostUnit, gpu_hour_usd: float | None) -> float:
    if unit == "usd":
        if basis == "usd":
            return result.usage.cost_usd
        return result.usage.gpu_seconds * (gpu_hour_usd or 0.0) / SECONDS_PER_HOUR
    return result.usage.gpu_seconds if unit == "gpu_seconds" else 0.0


def instance_rows(records: Sequence[RunRecord], unit: CostUnit, gpu_hour_usd: float | None) -> list[InstanceRow]:
    """Every instance any run attempted, with each run's result priced in `unit`; features from the first run
    that knows them."""
    ids = sorted({iid for record in records for iid in record.results})
    rows = []
    for iid in ids:
        known = [record.features[iid] for record in records if iid in record.features]
        results = {
            record.label: record.results[iid].model_copy(
                update={"cost": instance_cost(record.results[iid], record.cost_basis, unit, gpu_hour_usd)}
            )
            for record in records
            if iid in record.results
        }
        features = next((f for f in known if f.gold_patch_lines is not None), known[0] if known else None)
        rows.append(InstanceRow(instance_id=iid, features=features or TaskFeatures(repo="(unknown)"), results=results))
    return rows


def summary(record: RunRecord, rows: Sequence[InstanceRow]) -> RunSummary:
    results = [row.results[record.label] for row in rows if record.label in row.results]
    usage = record.usage
    resolved = sum(result.resolved for result in results)
    cost = sum(result.cost for result in results)
    tokens = usage.input_tokens + usage.output_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    seconds = sum(result.duration_s for result in results)
    return RunSummary(
        label=record.label,
        path=record.path,
        model=record.model,
        scaffold=record.scaffold,
        dataset=record.dataset,
        instances=len(results),
        resolved=resolved,
        resolved_rate=resolved / len(results) if results else 0.0,
        usage=usage,
        cost_basis=record.cost_basis,
        cost=cost,
        cost_per_instance=cost / len(results) if results else 0.0,
        cost_per_resolved=per(cost, resolved),
        tokens=tokens,
        tokens_per_resolved=per(tokens, resolved),
        instance_seconds=seconds,
        seconds_per_resolved=per(seconds, resolved),
        wall_seconds=record.wall_seconds,
    )


def per(total: float, resolved: int) -> float | None:
    return total / resolved if resolved else None


def pair_counts(rows: Sequence[InstanceRow], a: str, b: str) -> PairCounts:
    cells: dict[tuple[bool, bool], list[str]] = {(x, y): [] for x in (True, False) for y in (True, False)}
    unshared = []
    for row in rows:
        if a in row.results and b in row.results:
            cells[row.results[a].resolved, row.results[b].resolved].append(row.instance_id)
        elif a in row.results or b in row.results:
            unshared.append(row.instance_id)
    return PairCounts(
        a=a,
        b=b,
        both=cells[True, True],
        only_a=cells[True, False],
        only_b=cells[False, True],
        neither=cells[False, False],
        unshared=unshared,
    )


def group_rows(
    rows: Sequence[InstanceRow], labels: Sequence[str], group_of: GroupOf, order: Callable[[str], Any] = str
) -> list[GroupRow]:
    """Resolved / attempted per group and run, groups in `order`."""
    per_run = {
        label: group_scores(
            (group_of(row.features), "resolved" if row.results[label].resolved else "unresolved")
            for row in rows
            if label in row.results
        )
        for label in labels
    }
    groups = sorted({group for scores in per_run.values() for group in scores}, key=order)
    return [
        GroupRow(group=group, scores={label: per_run[label][group] for label in labels if group in per_run[label]})
        for group in groups
    ]


def good_enough_maps(runs: Sequence[RunSummary], rows: Sequence[InstanceRow], unit: CostUnit) -> list[GoodEnoughMap]:
    """Each run against the dearest per instance (on a tie, the one listed last is taken as dearer)."""
    by_cost = sorted(runs, key=lambda run: run.cost_per_instance)  # stable: the listed order breaks ties
    dearest = by_cost[-1]
    return [
        good_enough_map(
            rows, run.label, dearest.label, unit, equal_cost=run.cost_per_instance == dearest.cost_per_instance
        )
        for run in by_cost[:-1]
    ]


def cost_text(value: float | None, unit: CostUnit) -> str:
    """A cost in `unit`; "-" where there is none (no resolved instance, nothing recorded)."""
    if value is None or unit == "none":
        return "-"
    if unit == "gpu_seconds":
        return f"{value:,.1f} GPU-s"
    sign = "-" if value < 0 else ""
    if abs(value) >= 1 or value == 0:
        return f"{sign}${abs(value):,.2f}"
    # cents, or the four decimals a cheap instance needs ($0.0012), without trailing zeros past the cents
    whole, _, fraction = f"{abs(value):.4f}".partition(".")
    return f"{sign}${whole}.{fraction.rstrip('0').ljust(2, '0')}"


def cost_axis(unit: CostUnit) -> str:
    """What a cost column or axis measures."""
    return UNIT_NAMES[unit]
