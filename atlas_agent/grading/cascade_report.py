"""The cascade part of a run report: how many instances went to the stronger model and why, what
each stage resolved, and what the cascade cost against an estimate of the stronger model alone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from atlas_agent.scaffolds.cascade_record import CascadeRecord
from atlas_agent.trajectory import Trajectory, UnreadableTrajectory
from atlas_agent.vocabulary import Usage

# what the report.md table shows of each instance's reason; report.json keeps all of it
DETAIL_CHARS = 160
ESTIMATE_METHOD = (
    "the escalated stage's mean cost per escalated instance × all instances of the run; the escalated "
    "instances are those the first model failed, likely harder than most, so the estimate tends to be high"
)


class StageScore(BaseModel):
    instances: int
    resolved: int


class CascadeSummary(BaseModel):
    instances: int
    escalated: int
    escalated_share: float
    escalated_ids: list[str]
    # instances per trigger (`verification_failed`, `empty_patch`, a stop reason); one may have several
    triggers: dict[str, int]
    # `first`: instances whose first attempt was submitted; `escalated`: those the stronger model worked
    resolved_by_stage: dict[str, StageScore]
    first_stage_usage: Usage
    escalated_stage_usage: Usage
    cost_usd: float  # both stages, every instance
    # the stronger model alone, estimated as ESTIMATE_METHOD says; None when nothing was escalated
    strong_mean_cost_usd: float | None
    strong_alone_estimate_usd: float | None
    saved_usd: float | None
    estimate_method: str = ESTIMATE_METHOD


def cascade_facts(instance_dir: Path) -> dict[str, Any]:
    """`{"cascade": record}` for an instance a cascade worked; nothing for other scaffolds' (or an
    unreadable trajectory, which the rest of the report does without)."""
    try:
        record = CascadeRecord.of(Trajectory.load(instance_dir / "trajectory.json"))
    except (UnreadableTrajectory, ValueError):
        return {}
    return {} if record is None else {"cascade": record}


def summarize(instances: Sequence[tuple[str, str, CascadeRecord | None]]) -> CascadeSummary | None:
    """From (instance id, outcome, cascade record) of every instance; None for a run of no cascade."""
    worked = [(iid, outcome, record) for iid, outcome, record in instances if record is not None]
    if not worked:
        return None
    escalated = [(iid, outcome, record) for iid, outcome, record in worked if record.escalated]
    kept = [outcome for _, outcome, record in worked if not record.escalated]
    first_usage, strong_usage = Usage(), Usage()
    for _, _, record in worked:
        first_usage = first_usage + record.usage_of("first")
        strong_usage = strong_usage + record.usage_of("escalated")
    cost = first_usage.cost_usd + strong_usage.cost_usd
    strong_runs = sum(1 for _, _, record in escalated if any(s.name == "escalated" for s in record.stages))
    mean = strong_usage.cost_usd / strong_runs if strong_runs else None
    estimate = mean * len(worked) if mean is not None else None
    return CascadeSummary(
        instances=len(worked),
        escalated=len(escalated),
        escalated_share=round(len(escalated) / len(worked), 4),
        escalated_ids=sorted(iid for iid, _, _ in escalated),
        triggers=dict(sorted(Counter(t for _, _, record in escalated for t in record.triggers).items())),
        resolved_by_stage={
            "first": StageScore(instances=len(kept), resolved=kept.count("resolved")),
            "escalated": StageScore(
                instances=len(escalated), resolved=sum(outcome == "resolved" for _, outcome, _ in escalated)
            ),
        },
        first_stage_usage=first_usage,
        escalated_stage_usage=strong_usage,
        cost_usd=cost,
        strong_mean_cost_usd=mean,
        strong_alone_estimate_usd=estimate,
        saved_usd=None if estimate is None else estimate - cost,
    )


def render_cascade(summary: CascadeSummary | None, records: Sequence[tuple[str, CascadeRecord]]) -> list[str]:
    """The report.md section: the run's figures, then each instance's decision."""
    if summary is None:
        return []
    stages = summary.resolved_by_stage
    lines = [
        "",
        "## Cascade",
        "",
        f"- escalated to the stronger model: **{summary.escalated} / {summary.instances}** "
        f"({summary.escalated_share:.1%})" + (f": {', '.join(summary.escalated_ids)}" if summary.escalated_ids else ""),
    ]
    if summary.triggers:
        lines.append("- why: " + ", ".join(f"{name} {count}" for name, count in summary.triggers.items()))
    lines += [
        f"- resolved by stage: first attempt kept {stages['first'].resolved} / {stages['first'].instances}, "
        f"escalated {stages['escalated'].resolved} / {stages['escalated'].instances}",
        f"- cost of the cascade: ${summary.cost_usd:.4f} (first stage ${summary.first_stage_usage.cost_usd:.4f}"
        f"{_gpu(summary.first_stage_usage)}, escalated stage ${summary.escalated_stage_usage.cost_usd:.4f}"
        f"{_gpu(summary.escalated_stage_usage)})",
        _estimate_line(summary),
        "",
        "| instance | submitted | why | first stage | escalated stage |",
        "|---|---|---|---|---|",
    ]
    for iid, record in records:
        submitted = "escalated" if record.escalated else "first"
        why = _cell(record.detail[:DETAIL_CHARS] + ("…" if len(record.detail) > DETAIL_CHARS else ""))
        escalated = f"${record.usage_of('escalated').cost_usd:.4f}" if record.escalated else "-"
        lines.append(f"| {iid} | {submitted} | {why} | ${record.usage_of('first').cost_usd:.4f} | {escalated} |")
    return lines


def _cell(text: str) -> str:
    """Text that stays inside one table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _estimate_line(summary: CascadeSummary) -> str:
    if summary.strong_alone_estimate_usd is None or summary.strong_mean_cost_usd is None or summary.saved_usd is None:
        return "- the stronger model alone: no estimate (no instance was worked by it)"
    estimate, saved = summary.strong_alone_estimate_usd, summary.saved_usd
    share = f" ({saved / estimate:.1%})" if estimate else ""
    return (
        f"- the stronger model alone: ≈ ${estimate:.4f}, an **estimate**: its mean cost per escalated instance "
        f"(${summary.strong_mean_cost_usd:.4f}) × all {summary.instances} instances; the escalated instances are "
        f"those the first model failed, likely harder than most, so it tends to be high. "
        f"Saved ≈ ${saved:.4f}{share}"
    )


def _gpu(usage: Usage) -> str:
    return f", {usage.gpu_seconds:.1f} GPU-s" if usage.gpu_seconds else ""
