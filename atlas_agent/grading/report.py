"""The run report: the official harness's verdicts joined with what the agent did per instance,
what the tamper guard found, and how stable each verdict was over repeated gradings."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from atlas_agent.grading.cascade_report import CascadeSummary, summarize
from atlas_agent.grading.tamper import InfraEdit, TamperMode
from atlas_agent.scaffolds.cascade_record import CascadeRecord
from atlas_agent.vocabulary import Usage

Outcome = Literal["resolved", "unresolved", "error", "empty_patch", "incomplete", "refused"]
FailureKind = Literal["infra", "ambiguous"]
TamperAction = Literal["stripped", "refused", "graded as written"]
TAMPER_ACTIONS: dict[TamperMode, TamperAction] = {"strip": "stripped", "refuse": "refused", "off": "graded as written"}
NO_DIFFICULTY = "(none)"


class InstanceReport(BaseModel):
    instance_id: str
    repo: str = ""
    difficulty: str | None = None
    outcome: Outcome
    # as the official report classifies a failed instance: infra_failure_ids / ambiguous_failure_ids
    failure_kind: FailureKind | None = None
    # the official classifier's reason (failure_reasons), only where it gives one
    failure_reason: str | None = None
    tampering: list[InfraEdit] = []
    tamper_action: TamperAction | None = None
    # one outcome per grading, when graded more than once
    verdicts: list[Outcome] = []
    flaky: bool = False
    stop_reason: str | None = None
    steps: int = 0
    usage: Usage = Field(default_factory=Usage)
    # what a cascade did with the instance (None for other scaffolds): escalated or not, why, each stage's usage
    cascade: CascadeRecord | None = None


class GroupScore(BaseModel):
    total: int
    resolved: int
    resolved_rate: float


class RunReport(BaseModel):
    run_id: str
    model: str
    dataset: str
    total: int
    submitted: int
    resolved: int
    resolved_rate: float
    resolved_ids: list[str]
    unresolved_ids: list[str]
    error_ids: list[str]
    empty_patch_ids: list[str]
    infra_failure_ids: list[str]
    ambiguous_failure_ids: list[str]
    incomplete_ids: list[str]
    refused_ids: list[str]
    tamper_mode: TamperMode
    tampered_ids: list[str]
    gradings: int
    flaky_ids: list[str]
    by_repo: dict[str, GroupScore]
    by_difficulty: dict[str, GroupScore]
    usage: Usage
    # a cascade run's escalations, resolved counts by stage and cost against the stronger model alone
    cascade: CascadeSummary | None = None
    instances: list[InstanceReport]
    # the first grading's official report, as the harness wrote it
    official: dict[str, Any]


def outcome_of(instance_id: str, official: Mapping[str, Any]) -> Outcome:
    for key, outcome in (
        ("resolved_ids", "resolved"),
        ("empty_patch_ids", "empty_patch"),
        ("error_ids", "error"),
        ("unresolved_ids", "unresolved"),
    ):
        if instance_id in official.get(key, []):
            return outcome  # type: ignore[return-value]
    return "incomplete"


def failure_kind(instance_id: str, official: Mapping[str, Any]) -> FailureKind | None:
    if instance_id in official.get("infra_failure_ids", []):
        return "infra"
    if instance_id in official.get("ambiguous_failure_ids", []):
        return "ambiguous"
    return None


def _reported_ids(official: Mapping[str, Any], refused_ids: list[str]) -> list[str]:
    """Every instance the report speaks of: whatever the harness saw, and the refused ones it never did."""
    seen = ("completed_ids", "incomplete_ids", "empty_patch_ids", "error_ids")
    return sorted({iid for key in seen for iid in official.get(key, [])} | set(refused_ids))


def _instance_report(
    iid: str,
    gradings: Sequence[Mapping[str, Any]],
    facts: Mapping[str, Any],
    edits: list[InfraEdit],
    tamper_mode: TamperMode,
    refused_ids: list[str],
) -> InstanceReport:
    """One instance: its verdict in every grading, the official labels, and the tampering found."""
    official = gradings[0]
    refused = iid in refused_ids
    verdicts = ["refused" if refused else outcome_of(iid, g) for g in gradings]
    return InstanceReport(
        instance_id=iid,
        outcome=verdicts[0],
        failure_kind=failure_kind(iid, official),
        failure_reason=official.get("failure_reasons", {}).get(iid),
        tampering=edits,
        tamper_action=("refused" if refused else TAMPER_ACTIONS[tamper_mode]) if edits else None,
        verdicts=verdicts if len(gradings) > 1 else [],
        flaky=len(set(verdicts)) > 1,
        **facts,
    )


def build_report(
    *,
    run_id: str,
    model: str,
    dataset: str,
    gradings: Sequence[Mapping[str, Any]],
    facts: Mapping[str, Mapping[str, Any]],
    tamper_mode: TamperMode = "strip",
    tampering: Mapping[str, Sequence[InfraEdit]] | None = None,
    refused: Iterable[str] = (),
) -> RunReport:
    """`gradings`: the official run report of every grading, first one first (it gives the score).

    `facts` maps instance id to what the run and the dataset know of it (stop_reason, steps,
    usage, repo, difficulty). `tampering`: the infrastructure edits found per instance;
    `refused`: instances not graded because of them.
    """
    official = gradings[0]
    tampering = tampering or {}
    refused_ids = sorted(set(refused))
    ids = _reported_ids(official, refused_ids)
    instances = [
        _instance_report(iid, gradings, facts.get(iid, {}), list(tampering.get(iid, ())), tamper_mode, refused_ids)
        for iid in ids
    ]
    total_usage = Usage()
    for item in instances:
        total_usage = total_usage + item.usage
    total = int(official.get("total_instances", len(ids)))
    resolved_ids = sorted(official.get("resolved_ids", []))
    return RunReport(
        run_id=run_id,
        model=model,
        dataset=dataset,
        total=total,
        # refused predictions never reach the harness, but they were submitted
        submitted=int(official.get("submitted_instances", 0)) + len(refused_ids),
        resolved=len(resolved_ids),
        resolved_rate=_rate(len(resolved_ids), total),
        resolved_ids=resolved_ids,
        unresolved_ids=sorted(official.get("unresolved_ids", [])),
        error_ids=sorted(official.get("error_ids", [])),
        empty_patch_ids=sorted(official.get("empty_patch_ids", [])),
        infra_failure_ids=sorted(official.get("infra_failure_ids", [])),
        ambiguous_failure_ids=sorted(official.get("ambiguous_failure_ids", [])),
        incomplete_ids=sorted(set(official.get("incomplete_ids", [])) - set(refused_ids)),
        refused_ids=refused_ids,
        tamper_mode=tamper_mode,
        tampered_ids=sorted(iid for iid in ids if tampering.get(iid)),
        gradings=len(gradings),
        flaky_ids=[item.instance_id for item in instances if item.flaky],
        by_repo=group_scores((item.repo or "(unknown)", item.outcome) for item in instances),
        by_difficulty=group_scores((item.difficulty or NO_DIFFICULTY, item.outcome) for item in instances)
        if any(item.difficulty for item in instances)
        else {},
        usage=total_usage,
        cascade=summarize([(item.instance_id, item.outcome, item.cascade) for item in instances]),
        instances=instances,
        official=dict(official),
    )


def group_scores(pairs: Iterable[tuple[str, Outcome]]) -> dict[str, GroupScore]:
    """Resolved / total per group, groups in name order."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for group, outcome in pairs:
        counts[group][0] += 1
        counts[group][1] += outcome == "resolved"
    return {
        group: GroupScore(total=total, resolved=resolved, resolved_rate=_rate(resolved, total))
        for group, (total, resolved) in sorted(counts.items())
    }


def _rate(resolved: int, total: int) -> float:
    return round(resolved / total, 4) if total else 0.0
