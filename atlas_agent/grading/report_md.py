"""report.md: the run report for people."""

from __future__ import annotations

from atlas_agent.grading.cascade_report import render_cascade
from atlas_agent.grading.report import GroupScore, InstanceReport, RunReport

_GUARD = {
    "strip": "their hunks were removed before grading",
    "refuse": "those instances were not graded",
    "off": "graded as written, as the official harness does",
}


def render_markdown(report: RunReport) -> str:
    lines = [
        f"# Run {report.run_id}",
        "",
        f"- model: `{report.model}`",
        f"- dataset: `{report.dataset}`",
        f"- resolved: **{report.resolved} / {report.total}** ({report.resolved_rate:.1%})",
        f"- unresolved: {len(report.unresolved_ids)}, errors: {len(report.error_ids)}, "
        f"empty patches: {len(report.empty_patch_ids)}, incomplete: {len(report.incomplete_ids)}, "
        f"refused: {len(report.refused_ids)}",
        f"- failures the official classifier attributes to the environment: {len(report.infra_failure_ids)}; "
        f"ambiguous (environment or patch): {len(report.ambiguous_failure_ids)}",
        _guard_line(report),
    ]
    if report.gradings > 1:
        lines.append(
            f"- flaky: {len(report.flaky_ids)} instance(s) changed verdict over {report.gradings} gradings "
            "(the score is the first grading's)"
        )
    lines.append(
        f"- tokens: {report.usage.input_tokens} in / {report.usage.output_tokens} out, "
        f"cost ${report.usage.cost_usd:.4f}"
    )
    lines += render_cascade(report.cascade, [(i.instance_id, i.cascade) for i in report.instances if i.cascade])
    lines += _group_table("repository", report.by_repo)
    lines += _group_table("difficulty", report.by_difficulty)
    lines += ["", "## Instances", "", "| instance | outcome | stop reason | steps |", "|---|---|---|---|"]
    lines += [
        f"| {item.instance_id} | {_outcome(item)} | {item.stop_reason or '-'} | {item.steps} |"
        for item in report.instances
    ]
    lines += _tamper_section(report)
    return "\n".join(lines) + "\n"


def _guard_line(report: RunReport) -> str:
    if not report.tampered_ids:
        return f"- test-infrastructure edits: none (tamper guard `{report.tamper_mode}`)"
    return (
        f"- test-infrastructure edits: {len(report.tampered_ids)} instance(s) "
        f"(tamper guard `{report.tamper_mode}`: {_GUARD[report.tamper_mode]})"
    )


def _group_table(title: str, groups: dict[str, GroupScore]) -> list[str]:
    if not groups:
        return []
    lines = ["", f"## By {title}", "", f"| {title} | resolved | total | rate |", "|---|---|---|---|"]
    for name, score in groups.items():
        lines.append(f"| {name} | {score.resolved} | {score.total} | {score.resolved_rate:.1%} |")
    return lines


def _outcome(item: InstanceReport) -> str:
    text: str = item.outcome
    if item.failure_kind == "infra":
        text += f" (infra failure: {item.failure_reason})"
    elif item.failure_kind == "ambiguous":
        text += f" (ambiguous failure: {item.failure_reason})"
    if item.tamper_action:
        text += f"; test infrastructure edited, {item.tamper_action}"
    if item.flaky:
        text += f"; **flaky**: {' → '.join(item.verdicts)}"
    return text


def _tamper_section(report: RunReport) -> list[str]:
    flagged = [item for item in report.instances if item.tampering]
    if not flagged:
        return []
    lines = ["", "## Test-infrastructure edits"]
    for item in flagged:
        lines += ["", f"### {item.instance_id}: {item.tamper_action}", ""]
        for edit in item.tampering:
            fence = _fence(edit.diff)
            lines += [f"- `{edit.path}` ({edit.reason})", "", f"{fence}diff", edit.diff.rstrip("\n"), fence, ""]
    return lines


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks inside `text`."""
    longest, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)
