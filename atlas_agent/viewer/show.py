"""`atlas show`: a run as a table of instances, one instance's steps, diff and test results, or one
step whole. Colours only on a terminal; every text from the run is printed as text, never as markup."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from atlas_agent.errors import AtlasError
from atlas_agent.trajectory import GradedTests
from atlas_agent.viewer import text
from atlas_agent.viewer.models import OUTCOMES, InstanceDetail, InstanceView, RunView, StepView

OUTCOME_STYLES = {
    "resolved": "bold green",
    "unresolved": "red",
    "error": "bold red",
    "empty_patch": "yellow",
    "not_graded": "dim",
}
# passing PASS_TO_PASS tests named before the rest are only counted (a large repository has hundreds)
PASSES_NAMED = 10
ERROR_CHARS = 40


def outcome_text(outcome: str) -> Text:
    return Text(outcome, style=OUTCOME_STYLES.get(outcome, ""))


def selected(run: RunView, outcomes: Sequence[str], repo: str | None) -> list[InstanceView]:
    """The instances of the wanted outcomes (all when none named) whose repository contains `repo`."""
    return [
        instance
        for instance in run.instances
        if (not outcomes or instance.outcome in outcomes) and (not repo or repo.lower() in instance.repo.lower())
    ]


def run_table(instances: Sequence[InstanceView]) -> Table:
    table = Table("instance", "outcome", "stop reason", "steps", "cost", "time", "patch", "flags")
    for column in table.columns[3:6]:
        column.justify = "right"
    # ids and numbers stay whole on a narrow terminal; the texts wrap
    for column in [*table.columns[:2], *table.columns[3:7]]:
        column.no_wrap = True
    table.columns[2].min_width = len("format_errors")
    for item in instances:
        table.add_row(
            Text(item.instance_id),
            outcome_text(item.outcome),
            Text(stop_text(item)),
            str(item.steps),
            text.cost(item.usage.cost_usd),
            text.duration(item.duration_s) if item.duration_s else "-",
            text.patch_size(item.patch),
            Text(", ".join(item.flags), style="yellow"),
        )
    return table


def stop_text(item: InstanceView) -> str:
    """Why the instance stopped; for a run error, its cause (the whole of it is in the instance view)."""
    if item.stop_reason:
        return item.stop_reason
    if item.state == "error":
        return f"error: {text.clipped_line(item.error or 'unknown', ERROR_CHARS)}"
    return "unfinished" if item.state == "unfinished" else "-"


def print_run(console: Console, run: RunView, instances: Sequence[InstanceView]) -> None:
    console.print(Text.assemble(("run ", ""), (run.run_id, "bold"), f"  {run.model}  {run.dataset}  {run.scaffold}"))
    print_damage(console, run)
    console.print(run_table(instances))
    counts = ", ".join(f"{outcome} {n}" for outcome in OUTCOMES if (n := sum(i.outcome == outcome for i in instances)))
    graded = "" if run.graded else " (not graded: `atlas eval` grades it)"
    console.print(Text(f"{len(instances)} of {len(run.instances)} instances: {counts or 'none'}{graded}"))


def print_damage(console: Console, run: RunView) -> None:
    for damage in run.damaged:
        console.print(Text(f"damaged: {damage.file}: {damage.problem}", style="yellow"))


def facts_table(item: InstanceView) -> Table:
    facts = Table.grid(padding=(0, 2))
    usage = item.usage
    rows = [
        ("outcome", outcome_text(item.outcome)),
        ("repo", Text(item.repo + (f"  (difficulty {item.difficulty})" if item.difficulty else ""))),
        ("stop reason", Text(" - ".join(filter(None, [item.stop_reason or item.state, item.stop_detail])))),
        ("steps", Text(f"{item.steps}, {text.duration(item.duration_s)}")),
        ("usage", Text(f"{usage.input_tokens} in / {usage.output_tokens} out tokens, {text.cost(usage.cost_usd)}")),
        ("patch", Text(text.patch_size(item.patch) + "  " + ", ".join(item.patch.files))),
    ]
    rows += [("error", Text(item.error, style="red"))] if item.error else []
    rows += [("failure", Text(f"{item.failure_kind}: {item.failure_reason or ''}"))] if item.failure_kind else []
    rows += [("flags", Text(", ".join(item.flags), style="yellow"))] if item.flags else []
    rows += [("verdicts", Text(", ".join(item.verdicts)))] if item.verdicts else []
    rows += [("tamper", Text(f"{edit.path}: {edit.reason}")) for edit in item.tampering]
    rows += [("damaged", Text(f"{d.file}: {d.problem}", style="yellow")) for d in item.damaged]
    for name, value in rows:
        facts.add_row(Text(name, style="bold"), value)
    return facts


def print_instance(console: Console, run: RunView, item: InstanceView, detail: InstanceDetail) -> None:
    title = f"{run.run_id} / {item.instance_id}"
    console.print(Panel(facts_table(item), title=Text(title), title_align="left", expand=False))
    for damage in detail.damaged:
        console.print(Text(f"damaged: {damage.file}: {damage.problem}", style="yellow"))
    if detail.choice:
        console.print(Text(f"choice: {detail.choice}"))
    for step in detail.steps:
        console.print(step_renderable(step, whole=False))
    console.rule("patch")
    console.print(patch_renderable(detail.patch))
    console.rule("tests")
    console.print(tests_renderable(item))


def patch_renderable(patch: str) -> RenderableType:
    if not patch.strip():
        return Text("(empty patch)", style="dim")
    # as wide as its longest line: a Syntax pads every line to the console's width otherwise
    width = max(len(line) for line in patch.splitlines())
    return Syntax(patch, "diff", word_wrap=True, code_width=width, background_color="default")


def step_heading(step: StepView) -> Text:
    parts = [f"step {step.number}", step.part, "replayed from the parent run" if step.replayed else ""]
    if step.latency_s:
        parts.append(f"model {step.latency_s:.1f} s")
    if step.usage.input_tokens or step.usage.output_tokens:
        parts.append(f"{step.usage.input_tokens} in / {step.usage.output_tokens} out")
    parts += [text.cost(step.usage.cost_usd)] if step.usage.cost_usd else []
    parts += [f"{step.retries} retries"] if step.retries else []
    return Text("  ".join(filter(None, parts)), style="bold cyan")


def step_renderable(step: StepView, whole: bool) -> RenderableType:
    """A step's thought, tool calls and observations; observations collapsed unless `whole`."""
    shown = (lambda body: body) if whole else text.collapsed
    lines: list[RenderableType] = [step_heading(step)]
    if step.thought:
        lines.append(Text(shown(step.thought), style="italic"))
    for call in step.calls:
        arguments = shown(text.arguments_text(call.arguments))
        lines.append(Text.assemble((call.tool, "bold magenta"), f" {arguments}" if arguments else ""))
    for result in step.results:
        status = f"exit {result.exit_code}" if result.exit_code is not None else "done"
        status += " (timed out)" if result.timed_out else ""
        status += f", {result.duration_s:.1f} s"
        lines.append(Text(f"  -> {result.tool}: {status}", style="dim"))
        if result.output.strip():
            lines.append(Text(indented(shown(result.output))))
    lines += [Text(f"error: {step.error}", style="red")] if step.error else []
    lines += [Text(f"nudge: {step.nudge}", style="yellow")] if step.nudge else []
    return Group(*lines, Text(""))


def indented(body: str) -> str:
    return "\n".join("     " + line for line in body.splitlines())


def tests_renderable(item: InstanceView) -> RenderableType:
    grading = item.grading
    if grading is None:
        why = "graded, but no per-instance report" if item.outcome in ("resolved", "unresolved") else item.outcome
        return Text(f"no test results ({why.replace('_', ' ')})", style="dim")
    lines: list[RenderableType] = [
        Text(f"patch applied: {'yes' if grading.patch_applied else 'no'}; logs: {grading.log_dir}", style="dim")
    ]
    lines += group_lines("FAIL_TO_PASS", grading.fail_to_pass, name_passes=True)
    lines += group_lines("PASS_TO_PASS", grading.pass_to_pass, name_passes=False)
    return Group(*lines)


def group_lines(title: str, tests: GradedTests, name_passes: bool) -> list[RenderableType]:
    total = len(tests.passed) + len(tests.failed)
    lines: list[RenderableType] = [Text(f"{title}: {len(tests.passed)} of {total} passed", style="bold")]
    lines += [Text(f"  FAIL {name}", style="red") for name in tests.failed]
    named = tests.passed if name_passes else tests.passed[:PASSES_NAMED]
    lines += [Text(f"  pass {name}", style="green") for name in named]
    if len(named) < len(tests.passed):
        lines.append(Text(f"  ... and {len(tests.passed) - len(named)} more passed", style="green"))
    return lines


def print_step(console: Console, item: InstanceView, detail: InstanceDetail, number: int) -> None:
    for step in detail.steps:
        if step.number == number:
            console.print(step_renderable(step, whole=True))
            return
    steps = f"steps 1 to {len(detail.steps)}" if detail.steps else "no steps"
    raise AtlasError(f"{item.instance_id} has {steps}; --step {number} is not one of them")
