"""Branching from a recorded step: `atlas run --from RUN/INSTANCE@STEP` runs the parent's tool calls up to
STEP again in a fresh container, then the chosen model goes on, in a new run linked to its parent. Replay
models over an atlas-mini task in real containers; the container state at STEP is checked against a run
that stopped there on its own (same patch)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from atlas_agent.rundir import RunDir
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.scaffolds.loader import load_scaffold
from atlas_agent.tasks import MINI_SUITE_DIR, load_tasks
from helpers import atlas, one_line_error

pytestmark = pytest.mark.docker

TASK = "atlas__tally-1"
# step by step: a file created with the editor, a file changed by a command whose output is not the
# same twice (nanoseconds), a file a command writes, more edits; then submit
STEPS: list[Any] = [
    {"thought": "keep notes", "edit": {"command": "create", "path": "NOTES.md", "file_text": "notes\n"}},
    {"bash": "sed -i 's/Exact money arithmetic/Exact decimal money arithmetic/' README.md && date +%N"},
    {"bash": "python -c 'import tally; print(sorted(vars(tally))[:3])' > probe.txt && cat probe.txt"},
    {"bash": "echo 'step four' >> NOTES.md && echo '# four' >> tally/format.py"},
    "submit",
]
# what a branch at step 3 goes on with: other edits than the parent's step 4
OTHER_EDITS: list[Any] = [{"bash": "echo 'another way' > OTHER.md"}, "submit"]


def run(root: Path, run_id: str, steps: list[Any], *args: str):
    (root / f"{run_id}.yaml").write_text(yaml.safe_dump({"instances": {TASK: steps}}))
    return atlas("run", "--model", f"replay:{run_id}.yaml", "--run-id", run_id, *args, cwd=root)


def instance(root: Path, run_id: str) -> Path:
    return root / "runs" / run_id / "instances" / TASK


def patch(root: Path, run_id: str) -> str:
    return (instance(root, run_id) / "patch.diff").read_text()


def trajectory(root: Path, run_id: str) -> dict[str, Any]:
    return dict(json.loads((instance(root, run_id) / "trajectory.json").read_text()))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, docker_client) -> Path:
    """Run `a` (STEPS, with -i), `b` (STEPS' first three, then submit: the state at step 3), and
    branches of `a` at step 3: `c` submits at once, `d` goes on with other edits."""
    prepare_images(docker_client, [t for t in load_tasks("atlas-mini") if t.instance_id == TASK], MINI_SUITE_DIR)
    root = tmp_path_factory.mktemp("branch")
    for result in (
        run(root, "a", STEPS, "-i", TASK),
        run(root, "b", [*STEPS[:3], "submit"], "-i", TASK),
        run(root, "c", ["submit"], "--from", f"a/{TASK}@3"),
        run(root, "d", OTHER_EDITS, "--from", f"runs/a/{TASK}@3", "-s", "tools"),
    ):
        assert result.returncode == 0, result.stderr
    (root / "d.stderr").write_text(result.stderr)
    return root


def test_a_branch_reproduces_the_container_state_at_its_step(runs: Path) -> None:
    at_step_3 = patch(runs, "b")
    assert "probe.txt" in at_step_3 and "NOTES.md" in at_step_3 and "decimal money" in at_step_3
    assert "step four" not in at_step_3 and "# four" not in at_step_3
    assert patch(runs, "c") == at_step_3
    assert patch(runs, "a") != at_step_3, "the parent's step 4 is not replayed"


def test_a_branch_marks_its_replayed_steps_and_links_its_parent(runs: Path) -> None:
    branched = trajectory(runs, "d")
    steps = branched["steps"]
    assert [step["finish_reason"] for step in steps] == ["replayed"] * 3 + ["tool_use"] * 2
    assert [call["name"] for step in steps for call in step["tool_calls"]] == ["edit", "bash", "bash", "bash", "submit"]
    record = branched["metadata"]["branch"]
    assert record["parent"] == {"run_id": "a", "instance_id": TASK, "step": 3}
    assert record["replayed_steps"] == 3
    assert branched["stop_reason"] == "submitted"
    assert "another way" in patch(runs, "d") and "probe.txt" in patch(runs, "d")
    assert "step four" not in patch(runs, "d")


def test_a_replayed_step_that_observes_something_else_is_noted(runs: Path) -> None:
    """Step 2 prints nanoseconds: its observation differs from the recorded one; the others do not."""
    record = trajectory(runs, "d")["metadata"]["branch"]
    assert record["diverged_steps"] == 1
    assert record["first_divergence"].startswith("step 2, call 1 (bash): recorded '")
    recorded = trajectory(runs, "a")["steps"][2]["results"][0]["observation"]["output"]
    assert trajectory(runs, "d")["steps"][2]["results"][0]["observation"]["output"] == recorded
    said = f"branch of a/{TASK}@3: 3 of 3 step(s) replayed; 1 observed other output than recorded, first step 2"
    assert said in (runs / "d.stderr").read_text()


def test_run_yaml_records_the_parent_and_a_resume_must_name_it_again(runs: Path) -> None:
    config = RunDir(runs / "runs" / "d").config()
    assert config.parent is not None and str(config.parent) == f"a/{TASK}@3"
    assert config.selection.instances == [TASK]
    line = one_line_error(run(runs, "d", OTHER_EDITS, "--from", f"a/{TASK}@2"))
    assert line == (
        f"error: run d was started with --from=a/{TASK}@3; this command asks for a/{TASK}@2: "
        "use a new --run-id or the same options"
    )
    line = one_line_error(run(runs, "d", OTHER_EDITS, "-i", TASK))
    assert line.startswith(f"error: run d was started with --from=a/{TASK}@3; this command asks for none")
    again = run(runs, "d", OTHER_EDITS, "--from", f"a/{TASK}@3")
    assert again.returncode == 0, again.stderr
    assert "1 tasks, 1 already done" in again.stderr


def test_a_bad_branch_point_is_one_line(runs: Path) -> None:
    def refused(spec: str, *args: str) -> str:
        return one_line_error(run(runs, "e", ["submit"], "--from", spec, *args))

    assert refused(f"nope/{TASK}@3") == (
        f"error: --from nope/{TASK}@3: no run nope: name a run directory or a run id under runs"
    )
    assert refused("a/atlas__tally-9@1") == (
        f"error: --from a/atlas__tally-9@1: run a has no trajectory of atlas__tally-9 (it has: {TASK})"
    )
    assert refused(f"a/{TASK}@9") == f"error: --from a/{TASK}@9: {TASK} has 5 step(s) in run a: STEP is 1 to 5"
    assert refused(f"a/{TASK}@5") == (
        f"error: --from a/{TASK}@5: step 5 is where the episode submitted: branch at an earlier step"
    )
    assert refused(f"a/{TASK}") == (
        f"error: --from a/{TASK}: expected RUN/INSTANCE@STEP with STEP from 1, e.g. runs/demo/atlas__tally-1@3"
    )
    assert refused(f"a/{TASK}@3", "-i", TASK) == "error: --from runs its one instance: drop --instances"
    assert not (runs / "runs" / "e").exists(), "nothing was started"


def test_a_branch_needs_loop_scaffolds_with_the_replayed_tools(runs: Path, tmp_path: Path) -> None:
    def refused(spec: str, *args: str) -> str:
        return one_line_error(run(runs, "e", ["submit"], "--from", spec, *args))

    assert refused(f"a/{TASK}@3", "-s", "bash-only") == (
        f"error: --from a/{TASK}@3: step 1 calls `edit`, which scaffold bash-only does not offer: choose a "
        "scaffold with that tool (-s tools) or branch at an earlier step"
    )
    assert refused(f"a/{TASK}@3", "-s", "best-of-k") == (
        f"error: --from a/{TASK}@3: scaffold best-of-k is best-of-k: a branch goes on in one conversation, "
        "so choose a tools or bash-only scaffold"
    )
    # a parent of a multi-attempt scaffold: its run.yaml says so
    parent = tmp_path / "k"
    shutil.copytree(runs / "runs" / "a", parent)
    record = yaml.safe_load((parent / "run.yaml").read_text())
    record["config"] |= {"scaffold_name": "best-of-k", "scaffold": load_scaffold("best-of-k").model_dump(mode="json")}
    (parent / "run.yaml").write_text(yaml.safe_dump(record))
    assert refused(f"{parent}/{TASK}@2") == (
        f"error: --from {parent}/{TASK}@2: run k used scaffold best-of-k (best-of-k): only an episode of a tools "
        "or bash-only scaffold is one conversation that can be branched"
    )


def test_show_and_the_html_page_mark_the_replayed_steps(runs: Path) -> None:
    shown = atlas("show", "runs/d", TASK, cwd=runs)
    assert shown.returncode == 0, shown.stderr
    headings = [line for line in shown.stdout.splitlines() if line.startswith("step ")]
    assert ["replayed from the parent run" in heading for heading in headings] == [True] * 3 + [False] * 2
    page = atlas("html", "runs/d", "-o", "d.html", cwd=runs)
    assert page.returncode == 0, page.stderr
    data = (runs / "d.html").read_text()
    assert data.count('"replayed":true') == 3 and data.count('"replayed":false') == 2
    assert 'step.replayed ? "replayed from the parent run"' in data, "the page's script shows the mark"
