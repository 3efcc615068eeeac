"""The run report: the official harness's verdicts joined with what the agent did per instance."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from atlas_agent.models.base import Usage

Outcome = Literal["resolved", "unresolved", "error", "empty_patch", "incomplete"]


class InstanceReport(BaseModel):
    instance_id: str
    outcome: Outcome
    infra_failure: str | None = None
    stop_reason: str | None = None
    steps: int = 0
    usage: Usage = Field(default_factory=Usage)


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
    incomplete_ids: list[str]
    usage: Usage
    instances: list[InstanceReport]
    official: dict[str, Any]


def outcome_of(instance_id: str, official: dict[str, Any]) -> Outcome:
    for key, outcome in (
        ("resolved_ids", "resolved"),
        ("empty_patch_ids", "empty_patch"),
        ("error_ids", "error"),
        ("unresolved_ids", "unresolved"),
    ):
        if instance_id in official.get(key, []):
            return outcome  # type: ignore[return-value]
    return "incomplete"


def build_report(
    *,
    run_id: str,
    model: str,
    dataset: str,
    official: dict[str, Any],
    agent_facts: dict[str, dict[str, Any]],
) -> RunReport:
    """`agent_facts` maps instance id to what the run recorded (stop_reason, steps, usage)."""
    ids = sorted(
        set(official.get("completed_ids", []))
        | set(official.get("incomplete_ids", []))
        | set(official.get("empty_patch_ids", []))
        | set(official.get("error_ids", []))
    )
    reasons = official.get("failure_reasons", {})
    instances = [
        InstanceReport(
            instance_id=iid,
            outcome=outcome_of(iid, official),
            infra_failure=reasons.get(iid),
            **agent_facts.get(iid, {}),
        )
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
        submitted=int(official.get("submitted_instances", 0)),
        resolved=len(resolved_ids),
        resolved_rate=round(len(resolved_ids) / total, 4) if total else 0.0,
        resolved_ids=resolved_ids,
        unresolved_ids=sorted(official.get("unresolved_ids", [])),
        error_ids=sorted(official.get("error_ids", [])),
        empty_patch_ids=sorted(official.get("empty_patch_ids", [])),
        infra_failure_ids=sorted(official.get("infra_failure_ids", [])),
        incomplete_ids=sorted(official.get("incomplete_ids", [])),
        usage=total_usage,
        instances=instances,
        official=official,
    )


def render_markdown(report: RunReport) -> str:
    lines = [
        f"# Run {report.run_id}",
        "",
        f"- model: `{report.model}`",
        f"- dataset: `{report.dataset}`",
        f"- resolved: **{report.resolved} / {report.total}** ({report.resolved_rate:.1%})",
        f"- unresolved: {len(report.unresolved_ids)}, errors: {len(report.error_ids)}, "
        f"empty patches: {len(report.empty_patch_ids)}, infra failures: {len(report.infra_failure_ids)}, "
        f"incomplete: {len(report.incomplete_ids)}",
        f"- tokens: {report.usage.input_tokens} in / {report.usage.output_tokens} out, "
        f"cost ${report.usage.cost_usd:.4f}",
        "",
        "| instance | outcome | stop reason | steps |",
        "|---|---|---|---|",
    ]
    for item in report.instances:
        outcome = item.outcome + (f" ({item.infra_failure})" if item.infra_failure else "")
        lines.append(f"| {item.instance_id} | {outcome} | {item.stop_reason or '-'} | {item.steps} |")
    return "\n".join(lines) + "\n"
