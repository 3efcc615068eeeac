"""Each shipped scaffold, driven by the replay model through realistic calls on a mini task in real
containers, and graded by the official harness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from atlas_agent.runtime.orphans import list_containers
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, load_tasks
from helpers import SCAFFOLD_CASES as CASES
from helpers import SCAFFOLD_REPLAYS as REPLAYS
from helpers import atlas

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def images(docker_client) -> None:
    wanted = set(CASES.values())
    prepare_images(docker_client, [t for t in load_tasks("atlas-mini") if t.instance_id in wanted], MINI_SUITE_DIR)


def run_scaffold(tmp_path: Path, scaffold: str, *overrides: str) -> Path:
    result = atlas(
        "run",
        "--scaffold",
        scaffold,
        "--model",
        f"replay:{REPLAYS / scaffold}.yaml",
        "--instances",
        CASES[scaffold],
        "--run-id",
        scaffold,
        *[arg for item in overrides for arg in ("-c", item)],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    return tmp_path / "runs" / scaffold


def run_and_grade(tmp_path: Path, scaffold: str) -> tuple[dict[str, Any], dict[str, Any]]:
    instance = CASES[scaffold]
    run_dir = run_scaffold(tmp_path, scaffold)
    graded = atlas("eval", str(run_dir), cwd=tmp_path)
    assert graded.returncode == 0, graded.stderr
    trajectory = json.loads((run_dir / "instances" / instance / "trajectory.json").read_text())
    return trajectory, json.loads((run_dir / "report.json").read_text())


@pytest.mark.parametrize("scaffold", ["bash-only", "tools"])
def test_loop_scaffolds_resolve(tmp_path: Path, images: None, scaffold: str, docker_client) -> None:
    trajectory, report = run_and_grade(tmp_path, scaffold)
    assert report["resolved_ids"] == [CASES[scaffold]]
    assert trajectory["stop_reason"] == "submitted"
    if scaffold == "tools":
        outputs = [r["observation"]["output"] for s in trajectory["steps"] for r in s["results"]]
        assert "def RateTable.convert" in outputs[1], "symbols finds the method through tree-sitter"
        assert "occurs 2 times" in outputs[3], "an ambiguous str_replace is refused with its candidates"
        assert "7 passed" in outputs[5]
    assert not list_containers(docker_client, run_id=scaffold)


def test_best_of_k_shows_attempts_evidence_and_review(tmp_path: Path, images: None, docker_client) -> None:
    trajectory, report = run_and_grade(tmp_path, "best-of-k")
    assert report["resolved_ids"] == [CASES["best-of-k"]]
    assert len(trajectory["attempts"]) == 3
    evidence = {c["id"]: c["evidence"] for c in trajectory["candidates"]}
    assert evidence["attempt-1"]["failed"], "attempt 1 breaks existing tests"
    assert not evidence["attempt-2"]["failed"] and not evidence["attempt-3"]["failed"]
    assert trajectory["choice"] == {
        "candidate_id": "attempt-2",
        "method": "review",
        "reason": "Same logic as attempt-3 without the stray comment.",
    }
    assert [stage["name"] for stage in trajectory["stages"]] == ["review"]
    assert trajectory["stages"][0]["result"]["candidates"] == ["attempt-2", "attempt-3"]
    assert not list_containers(docker_client, run_id="best-of-k")


def test_agentless_shows_stages_candidates_and_choice(tmp_path: Path, images: None, docker_client) -> None:
    trajectory, report = run_and_grade(tmp_path, "agentless")
    assert report["resolved_ids"] == [CASES["agentless"]]
    stages = {stage["name"]: stage["result"] for stage in trajectory["stages"]}
    assert list(stages) == ["localize_files", "localize_symbols", "repair-1", "repair-2", "reproduce"]
    assert stages["reproduce"]["fails_on_base"] is True
    candidates = {c["id"]: c for c in trajectory["candidates"]}
    assert "does not occur" in candidates["repair-1"]["rejected"]
    assert candidates["repair-2"]["evidence"]["reproduction_passed"] is True
    assert candidates["repair-2"]["evidence"]["regressions"] == []
    assert trajectory["choice"]["candidate_id"] == "repair-2" and trajectory["choice"]["method"] == "tests"
    patch = (tmp_path / "runs" / "agentless" / "instances" / CASES["agentless"] / "patch.diff").read_text()
    assert "test_issue_repro" not in patch, "the reproduction test is evidence, not part of the answer"
    assert not list_containers(docker_client, run_id="agentless")


def test_pipeline_limits_end_with_a_reason(tmp_path: Path, images: None) -> None:
    agentless = run_scaffold(tmp_path, "agentless", "limits.max_steps=2") / "instances" / CASES["agentless"]
    trajectory = json.loads((agentless / "trajectory.json").read_text())
    assert trajectory["stop_reason"] == "step_limit"
    assert [stage["name"] for stage in trajectory["stages"]] == ["localize_files", "localize_symbols"]

    best = run_scaffold(tmp_path, "best-of-k", "limits.max_steps=2") / "instances" / CASES["best-of-k"]
    trajectory = json.loads((best / "trajectory.json").read_text())
    assert len(trajectory["attempts"]) == 1, "no attempt starts once the episode's step limit is reached"
    assert trajectory["choice"]["method"] == "only"
