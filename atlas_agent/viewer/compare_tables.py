"""The tables of a comparison as text cells, the one source of what the terminal (`atlas compare`) and the
HTML page show: each view only draws them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from atlas_agent.viewer.compare import Comparison, GroupRow, PairCounts, cost_axis, cost_text
from atlas_agent.viewer.good_enough import GoodEnoughMap, GoodEnoughRow, InstanceResult
from atlas_agent.viewer.text import duration, tokens

Tone = Literal["good", "bad"]
YES, NO = "✓", "✗"
RESOLVED, UNRESOLVED, ABSENT = "✓", "·", "-"
# ids listed in a matrix cell before "and N more"
IDS_SHOWN = 12


class TextTable(BaseModel):
    title: str
    headers: list[str]
    rows: list[list[str]]
    # a line under the table: what a column means, what is left out
    note: str = ""


def tone(cell: str) -> Tone | None:
    """How a view colours a cell: verdicts start with a tick or a cross."""
    return "good" if cell.startswith(YES) else "bad" if cell.startswith(NO) else None


def comparison_tables(comparison: Comparison) -> list[TextTable]:
    """Every table, in the order both views show them."""
    tables = [runs_table(comparison)]
    if len(comparison.runs) == 2:
        tables.append(matrix_table(comparison.pairs[0]))
    else:
        tables += [instances_table(comparison), pairs_table(comparison.pairs)]
    no_difficulty = "" if comparison.by_difficulty else "The dataset labels no instance's difficulty."
    tables.append(group_table("Resolved per repo", "repo", comparison.by_repo, comparison, no_difficulty))
    if comparison.by_difficulty:
        tables.append(group_table("Resolved per difficulty", "difficulty", comparison.by_difficulty, comparison))
    tables += [good_enough_table(map_) for map_ in comparison.good_enough]
    return tables


def runs_table(comparison: Comparison) -> TextTable:
    unit = comparison.cost_unit
    rows = [
        [
            run.label,
            run.model,
            run.scaffold,
            f"{run.resolved} / {run.instances} ({run.resolved_rate:.0%})",
            cost_text(run.cost, unit),
            cost_text(run.cost_per_instance, unit),
            cost_text(run.cost_per_resolved, unit),
            tokens(run.tokens),
            tokens(round(run.tokens_per_resolved)) if run.tokens_per_resolved is not None else "-",
            duration(run.wall_seconds),
            duration(run.seconds_per_resolved) if run.seconds_per_resolved is not None else "-",
        ]
        for run in comparison.runs
    ]
    headers = ["run", "model", "scaffold", "resolved", "cost", "cost / instance", "cost / resolved", "tokens"]
    headers += ["tokens / resolved", "wall time", "instance time / resolved"]
    return TextTable(
        title="Runs",
        headers=headers,
        rows=rows,
        note=f"cost: {comparison.cost_note}. Instance time: each instance's own run time, added up.",
    )


def ids(instance_ids: Sequence[str]) -> str:
    shown = ", ".join(instance_ids[:IDS_SHOWN])
    more = len(instance_ids) - IDS_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def matrix_table(pair: PairCounts) -> TextTable:
    rows = [
        ["both", str(len(pair.both)), ids(pair.both)],
        [f"only {pair.a}", str(len(pair.only_a)), ids(pair.only_a)],
        [f"only {pair.b}", str(len(pair.only_b)), ids(pair.only_b)],
        ["neither", str(len(pair.neither)), ids(pair.neither)],
    ]
    note = f"{len(pair.unshared)} instance(s) only one run attempted: {ids(pair.unshared)}" if pair.unshared else ""
    return TextTable(title=f"Resolved: {pair.a} vs {pair.b}", headers=["", "instances", "ids"], rows=rows, note=note)


def instances_table(comparison: Comparison) -> TextTable:
    labels = [run.label for run in comparison.runs]
    rows = [
        [row.instance_id, row.features.repo, *(resolved_cell(row.results.get(label)) for label in labels)]
        for row in comparison.instances
    ]
    note = f"{RESOLVED} resolved, {UNRESOLVED} attempted but not resolved, {ABSENT} not attempted"
    return TextTable(title="Resolved per instance", headers=["instance", "repo", *labels], rows=rows, note=note)


def resolved_cell(result: InstanceResult | None) -> str:
    if result is None:
        return ABSENT
    return RESOLVED if result.resolved else UNRESOLVED


def pairs_table(pairs: Sequence[PairCounts]) -> TextTable:
    rows = [
        [pair.a, pair.b, str(len(pair.both)), str(len(pair.only_a)), str(len(pair.only_b)), str(len(pair.neither))]
        for pair in pairs
    ]
    headers = ["A", "B", "both", "only A", "only B", "neither"]
    return TextTable(title="Resolved, pair by pair", headers=headers, rows=rows)


def group_table(title: str, name: str, groups: Sequence[GroupRow], comparison: Comparison, note: str = "") -> TextTable:
    labels = [run.label for run in comparison.runs]
    rows = [
        [
            group.group,
            *(
                f"{score.resolved} / {score.total} ({score.resolved_rate:.0%})"
                if (score := group.scores.get(label))
                else ABSENT
                for label in labels
            ),
        ]
        for group in groups
    ]
    return TextTable(title=title, headers=[name, *labels], rows=rows, note=note)


def good_enough_table(map_: GoodEnoughMap) -> TextTable:
    cheaper, dearer = map_.cheaper, map_.dearer
    headers = ["feature", "value", "tasks", "both", f"only {dearer}", f"only {cheaper}", "neither"]
    headers += [f"{cheaper} enough?", "saved", f"{dearer} per extra"]
    rows = [good_enough_cells(row, map_) for row in [map_.overall, *map_.rows]]
    for index in range(len(rows) - 1, 0, -1):  # a feature is named on its first row only
        if rows[index][0] == rows[index - 1][0]:
            rows[index][0] = ""
    order = (
        f"{cheaper} and {dearer} cost the same per instance: {cheaper} is taken as the cheaper one (listed first)"
        if map_.equal_cost
        else f"{cheaper} costs less per instance than {dearer}"
    )
    note = (
        f"{order}. Enough: {cheaper} resolves at least as many of those tasks ({NO} {dearer} +N: it resolves N "
        f"fewer). Saved: {dearer}'s cost less {cheaper}'s on those tasks ({cost_axis(map_.unit)}). {dearer} per "
        f"extra: what each task {dearer} resolves beyond {cheaper} costs (saved / N). Gold patch lines: lines the "
        "reference fix adds or removes; issue words: the problem statement's length."
    )
    title = f"Good-enough map: where is {cheaper} as good as {dearer}?"
    return TextTable(title=title, headers=headers, rows=rows, note=note)


def good_enough_cells(row: GoodEnoughRow, map_: GoodEnoughMap) -> list[str]:
    gap = row.only_dearer - row.only_cheaper
    verdict = f"{YES} yes" if row.matches else f"{NO} {map_.dearer} +{gap}"
    return [
        row.feature,
        row.value,
        str(row.instances),
        str(row.both),
        str(row.only_dearer),
        str(row.only_cheaper),
        str(row.neither),
        verdict,
        cost_text(row.cost_saved, map_.unit),
        cost_text(row.cost_per_extra_resolved, map_.unit),
    ]
