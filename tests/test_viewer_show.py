"""`atlas show` on a real replayed and graded run: the table, its filters, one instance, one step, and
runs that are empty or damaged."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shutil
import struct
import subprocess
import termios
from pathlib import Path

import pytest
from viewer_runs import EMPTY_PATCH, ERRORED, HOSTILE_OUTPUT, INSTANCES, RESOLVED, UNRESOLVED, replayed_run

from atlas_agent.tasks import Task, load_tasks
from helpers import ATLAS, atlas, one_line_error

pytestmark = pytest.mark.docker
ESCAPE = "\x1b["
DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


@pytest.fixture(scope="module")
def run_path(docker_client, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return replayed_run(tmp_path_factory.mktemp("viewer-show"))


@pytest.fixture(scope="module")
def tasks() -> dict[str, Task]:
    return {task.instance_id: task for task in load_tasks("atlas-mini", "test")}


def show(*args: str | Path, cwd: Path) -> str:
    result = atlas("show", *map(str, args), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


def table_rows(output: str) -> dict[str, list[str]]:
    """The table's rows by instance: every cell, stripped."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells and cells[0].startswith("atlas__"):
            rows[cells[0]] = cells
    return rows


def test_the_table_has_a_row_per_instance_with_its_outcome(run_path: Path, tmp_path: Path) -> None:
    output = show(run_path, cwd=tmp_path)
    rows = table_rows(output)
    assert sorted(rows) == INSTANCES
    outcomes = {iid: cells[1] for iid, cells in rows.items()}
    assert outcomes == {
        **dict.fromkeys(RESOLVED, "resolved"),
        UNRESOLVED: "unresolved",
        EMPTY_PATCH: "empty_patch",
        ERRORED: "error",
    }
    # stop reason, steps, patch size as the run recorded them; an error names its cause
    assert rows["atlas__tally-2"][2:4] == ["submitted", "5"] and rows["atlas__tally-2"][6] == "+1 -1 (1 file)"
    assert rows[EMPTY_PATCH][6] == "empty"
    assert rows[UNRESOLVED][7] == "tamper: stripped" and rows["atlas__tally-2"][7] == "", "report.json's flags"
    assert rows[ERRORED][2] == "error: replay script has no steps for atlas_..."
    assert "6 of 6 instances: resolved 3, unresolved 1, error 1, empty_patch 1" in output
    assert ESCAPE not in output, "not a terminal: no colours"


def test_outcome_and_repo_filters(run_path: Path, tmp_path: Path) -> None:
    assert sorted(table_rows(show(run_path, "--outcome", "resolved", cwd=tmp_path))) == RESOLVED
    both = show(run_path, "--outcome", "error", "--outcome", "empty_patch", cwd=tmp_path)
    assert sorted(table_rows(both)) == [EMPTY_PATCH, ERRORED]
    assert "2 of 6 instances: error 1, empty_patch 1" in both
    assert sorted(table_rows(show(run_path, "--repo", "tally", cwd=tmp_path))) == ["atlas__tally-1", "atlas__tally-2"]
    result = atlas("show", str(run_path), "--outcome", "solved", cwd=tmp_path)
    assert result.returncode != 0 and "solved" in result.stderr


def test_a_run_id_under_runs_is_enough(run_path: Path) -> None:
    assert sorted(table_rows(show("mixed", cwd=run_path.parent.parent))) == INSTANCES


def test_an_instance_shows_steps_collapsed_its_diff_and_test_results(
    run_path: Path, tmp_path: Path, tasks: dict[str, Task]
) -> None:
    output = show(run_path, UNRESOLVED, cwd=tmp_path)
    steps = [line for line in output.splitlines() if line.startswith("step ")]
    assert steps == ["step 1", "step 2", "step 3", "step 4"]
    assert f"bash $ echo '{HOSTILE_OUTPUT}' && seq 1 30" in output
    # 31 lines of output: the first and last three, and how many lie between
    assert "     ... 25 more lines ..." in output and "     15\n" not in output and "     30\n" in output
    assert "+# rounding: Money.rounded" in output, "the diff"
    assert "flags        tamper: stripped" in output and "tamper       tests/test_money.py: test file" in output
    task = tasks[UNRESOLVED]
    assert f"FAIL_TO_PASS: 0 of {len(task.FAIL_TO_PASS)} passed" in output
    assert all(f"  FAIL {name}" in output for name in task.FAIL_TO_PASS)
    assert f"PASS_TO_PASS: {len(task.PASS_TO_PASS)} of {len(task.PASS_TO_PASS)} passed" in output
    assert f"logs: eval/mixed/replay:mixed/{UNRESOLVED}" in output

    resolved = show(run_path, "atlas__tally-2", cwd=tmp_path)
    fixed = tasks["atlas__tally-2"].FAIL_TO_PASS
    assert f"FAIL_TO_PASS: {len(fixed)} of {len(fixed)} passed" in resolved
    assert all(f"  pass {name}" in resolved for name in fixed)
    assert "+            converted = money.amount / self.rate(source)" in resolved


def test_an_errored_instance_says_why(run_path: Path, tmp_path: Path) -> None:
    output = show(run_path, ERRORED, cwd=tmp_path)
    assert "replay script has no steps for atlas__textkit-1 and no `default` list" in output
    assert "no test results (error)" in output


def test_step_n_shows_that_step_whole(run_path: Path, tmp_path: Path) -> None:
    output = show(run_path, UNRESOLVED, "--step", "1", cwd=tmp_path)
    assert output.splitlines()[0] == "step 1"
    assert "Look around first." in output and HOSTILE_OUTPUT in output
    assert all(f"     {n}\n" in output for n in range(1, 31)), "every line of the observation"
    assert "more lines" not in output and "step 2" not in output
    past_the_end = atlas("show", str(run_path), UNRESOLVED, "--step", "5", cwd=tmp_path)
    assert "has steps 1 to 4; --step 5 is not one of them" in one_line_error(past_the_end)
    assert "--step needs an INSTANCE" in one_line_error(atlas("show", str(run_path), "--step", "1", cwd=tmp_path))


def test_an_unknown_instance_or_run_is_one_line(run_path: Path, tmp_path: Path) -> None:
    line = one_line_error(atlas("show", str(run_path), "atlas__nope-1", cwd=tmp_path))
    assert "run mixed has no instance atlas__nope-1 (it has atlas__hoard-1" in line
    assert "does not exist" in one_line_error(atlas("show", str(tmp_path / "nowhere"), cwd=tmp_path))
    assert "is not a run directory" in one_line_error(atlas("show", str(tmp_path), cwd=tmp_path))


def test_colours_on_a_terminal(run_path: Path, tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))  # rows, columns
    env = {key: value for key, value in os.environ.items() if key not in ("NO_COLOR", "COLUMNS")}
    with subprocess.Popen([ATLAS, "show", str(run_path)], stdout=follower, stderr=follower, env=env, cwd=tmp_path):
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the command is done
                break
            if not chunk:
                break
            output += chunk
    os.close(leader)
    assert ESCAPE in output.decode() and "atlas__tally-2" in output.decode()


def damaged_copy(run_path: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "runs" / "mixed"
    shutil.copytree(run_path, copy)
    return copy


def test_damaged_instance_files_are_shown_not_fatal(run_path: Path, tmp_path: Path) -> None:
    copy = damaged_copy(run_path, tmp_path)
    (copy / "instances" / "atlas__tally-2" / "status.json").write_text('{"instance_id": ')
    (copy / "instances" / "atlas__semverkit-3" / "trajectory.json").write_text("not json")
    (copy / "instances" / EMPTY_PATCH / "patch.diff").unlink()
    rows = table_rows(show(copy, cwd=tmp_path))
    assert rows["atlas__tally-2"][1] == "resolved" and rows["atlas__tally-2"][7] == "damaged", "the report still counts"
    assert rows[EMPTY_PATCH][7] == "damaged"
    assert rows["atlas__textkit-2"][7] == ""
    output = show(copy, "atlas__semverkit-3", cwd=tmp_path)
    assert "damaged: instances/atlas__semverkit-3/trajectory.json: " in output
    assert "FAIL_TO_PASS: 1 of 1 passed" in output, "what other files say still shows"
    assert "instances/atlas__hoard-1/patch.diff: missing" in show(copy, EMPTY_PATCH, cwd=tmp_path)


def test_a_damaged_report_leaves_the_run_ungraded(run_path: Path, tmp_path: Path) -> None:
    copy = damaged_copy(run_path, tmp_path)
    (copy / "report.json").write_text(json.dumps({"run_id": "mixed"}))
    output = show(copy, cwd=tmp_path)
    assert "damaged: report.json: " in output
    outcomes = {iid: cells[1] for iid, cells in table_rows(output).items()}
    assert outcomes[EMPTY_PATCH] == "empty_patch" and outcomes[ERRORED] == "error"
    assert {outcomes[iid] for iid in [*RESOLVED, UNRESOLVED]} == {"not_graded"}
    assert "(not graded: `atlas eval` grades it)" in output


def test_an_empty_run_is_an_empty_table(run_path: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(run_path / "run.yaml", empty / "run.yaml")
    assert "0 of 0 instances: none" in show(empty, cwd=tmp_path)
    (empty / "run.yaml").write_text("config: [")
    assert "damaged: run.yaml: " in show(empty, cwd=tmp_path)


def test_svg_rendering_for_the_docs(run_path: Path, tmp_path: Path) -> None:
    """`atlas show` as SVG (rich's export); ATLAS_DOCS_IMAGES=1 also refreshes docs/images/ with it."""
    from rich.console import Console

    from atlas_agent.viewer.detail import load_detail
    from atlas_agent.viewer.load import find_instance, load_run
    from atlas_agent.viewer.show import print_instance, print_run

    run = load_run(run_path)
    table = Console(record=True, width=150, force_terminal=True)
    print_run(table, run, run.instances)
    instance = Console(record=True, width=110, force_terminal=True)
    item = find_instance(run, "atlas__tally-2")
    print_instance(instance, run, item, load_detail(run, item))
    for console, name, title in (
        (table, "show-run.svg", "atlas show runs/mixed"),
        (instance, "show-instance.svg", "atlas show runs/mixed atlas__tally-2"),
    ):
        console.save_svg(str(tmp_path / name), title=title)
        svg = (tmp_path / name).read_text().replace("&#160;", " ")
        assert svg.startswith("<svg") and title in svg and "atlas__tally-2" in svg
        if os.environ.get("ATLAS_DOCS_IMAGES"):
            DOCS_IMAGES.mkdir(exist_ok=True)
            shutil.copy(tmp_path / name, DOCS_IMAGES / name)
