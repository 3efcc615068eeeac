"""`atlas validate`: why a task is broken, and where its logs go."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from atlas_agent.grading.validate import validation_dir, validation_row
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, load_tasks
from helpers import atlas

F2P = ["t.py::test_new_1", "t.py::test_new_2"]
P2P = ["t.py::test_old"]
P2P_TEST = "tests/test_exchange.py::test_rate_of_base_is_one"
GHOST_TEST = "tests/test_exchange.py::test_that_does_not_exist"


def harness_report(resolved: bool, f2p_passing: list[str], p2p_passing: list[str]) -> dict[str, Any]:
    """The per-instance dict the harness writes to report.json (include_tests_status=True)."""
    return {
        "patch_is_None": False,
        "patch_exists": True,
        "patch_successfully_applied": True,
        "resolved": resolved,
        "tests_status": {
            "FAIL_TO_PASS": {"success": f2p_passing, "failure": [t for t in F2P if t not in f2p_passing]},
            "PASS_TO_PASS": {"success": p2p_passing, "failure": [t for t in P2P if t not in p2p_passing]},
            "FAIL_TO_FAIL": {"success": [], "failure": []},
            "PASS_TO_FAIL": {"success": [], "failure": []},
        },
    }


GOOD_GOLD = harness_report(True, F2P, P2P)
GOOD_EMPTY = harness_report(False, [], P2P)


def test_a_sound_task_is_ok_and_says_nothing() -> None:
    row = validation_row("x-1", GOOD_GOLD, GOOD_EMPTY, "")
    assert row.ok and row.why == ""


def test_failing_gold_tests_are_named_by_list() -> None:
    row = validation_row("x-1", harness_report(False, F2P[:1], []), GOOD_EMPTY, "")
    assert not row.ok
    assert row.why == (
        "FAIL_TO_PASS failing with the gold patch: t.py::test_new_2; "
        "PASS_TO_PASS failing with the gold patch: t.py::test_old"
    )


def test_fail_to_pass_tests_that_already_pass_make_the_task_broken_even_unresolved() -> None:
    row = validation_row("x-1", GOOD_GOLD, harness_report(False, F2P[:1], P2P), "")
    assert row.empty_resolved is False and not row.ok
    assert row.why == "FAIL_TO_PASS passing without a fix: t.py::test_new_1"
    resolved = validation_row("x-1", GOOD_GOLD, harness_report(True, F2P, P2P), "")
    assert resolved.why == "FAIL_TO_PASS passing without a fix: t.py::test_new_1, t.py::test_new_2"


def test_a_gold_patch_that_never_graded_says_why() -> None:
    log = "...\n>>>>> Patch Apply Failed:\nerror: patch failed: a.py:3\n"
    assert validation_row("x-1", None, GOOD_EMPTY, log).why == "gold patch: does not apply"
    assert validation_row("x-1", None, GOOD_EMPTY, "").why == "gold patch: not graded (see its run_instance.log)"
    no_output = {"patch_successfully_applied": False, "resolved": False, "infra_failure_reason": "out_of_memory"}
    row = validation_row("x-1", no_output, None, "")
    assert row.why == "gold patch: no test results in the log (out_of_memory); empty patch: not graded"


def test_long_test_lists_are_cut() -> None:
    many = [f"t.py::test_{n}" for n in range(8)]
    row = validation_row("x-1", GOOD_GOLD, {"resolved": False, "tests_status": {"FAIL_TO_PASS": {"success": many}}}, "")
    assert row.why.endswith("t.py::test_4 (+3 more)")


def test_datasets_of_the_same_file_name_get_their_own_directories(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "tasks.jsonl", tmp_path / "b" / "tasks.jsonl"
    for path in (first, second):
        path.parent.mkdir()
        path.write_text("{}\n")
    runs = tmp_path / "runs"
    one, two = validation_dir(runs, str(first)), validation_dir(runs, str(second))
    assert one != two and one.name.startswith("validate-tasks-") and two.name.startswith("validate-tasks-")
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert validation_dir(runs, "a/tasks.jsonl") == one, "the same file, however it is spelled"
    finally:
        os.chdir(cwd)
    assert validation_dir(runs, "verified") == validation_dir(runs, "SWE-bench/SWE-bench_Verified")
    assert validation_dir(runs, "other/SWE-bench_Verified") != validation_dir(runs, "verified")
    assert validation_dir(runs, "atlas-mini").name.startswith("validate-atlas-mini-")


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(rows))
    return path


@pytest.mark.docker
def test_validate_names_what_is_broken_and_keeps_same_named_datasets_apart(tmp_path: Path, docker_client) -> None:
    """Rows of atlas-mini, broken three ways, saved as a.../tasks.json; the sound row alone as b.../tasks.json."""
    task = next(t for t in load_tasks("atlas-mini") if t.instance_id == "atlas__tally-2")
    prepare_images(docker_client, [task], MINI_SUITE_DIR)
    sound = task.model_dump()
    already_passing = {**sound, "instance_id": "atlas__tally-2-early", "FAIL_TO_PASS": [*task.FAIL_TO_PASS, P2P_TEST]}
    missing = {**sound, "instance_id": "atlas__tally-2-missing", "PASS_TO_PASS": [*task.PASS_TO_PASS, GHOST_TEST]}
    unappliable = {
        **sound,
        "instance_id": "atlas__tally-2-stale",
        "patch": task.patch.replace(" converted = ", " x = "),
    }
    broken = write_rows(tmp_path / "a" / "tasks.json", [already_passing, missing, unappliable])
    good = write_rows(tmp_path / "b" / "tasks.json", [sound])

    result = atlas("validate", "--dataset", str(broken), "--workers", "2", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    line = result.stderr.splitlines()[-1]  # the verdict, after a line per graded patch
    assert line.startswith("error: 3 task(s) fail validation: ")
    assert f"atlas__tally-2-early (FAIL_TO_PASS passing without a fix: {P2P_TEST})" in line
    assert f"atlas__tally-2-missing (PASS_TO_PASS failing with the gold patch: {GHOST_TEST})" in line
    assert "atlas__tally-2-stale (gold patch: does not apply" in line
    assert atlas("validate", "--dataset", str(good), cwd=tmp_path).returncode == 0
    logs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(logs) == 2 and all(name.startswith("validate-tasks-") for name in logs)
