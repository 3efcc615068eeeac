"""Resuming on purpose: `atlas run --redo IDS|errors|unresolved` runs instances again even if done, their
earlier files set aside in instances/<id>/previous-<N>/ and preds.jsonl kept to the current ones; and a
run directory that is empty or partly broken never makes `atlas run` crash. Replay models over
atlas-mini tasks in real containers, graded by the official harness."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from atlas_agent.models.backends import BUNDLED_REPLAYS
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, load_tasks
from helpers import atlas, one_line_error

pytestmark = pytest.mark.docker

RESOLVED, UNRESOLVED, ERRORED = "atlas__tally-2", "atlas__tally-1", "atlas__textkit-1"
INSTANCES = ",".join([RESOLVED, UNRESOLVED, ERRORED])
NOTE = {"bash": "echo 'looked here' > NOTES.txt"}


def script(**instances: list[object]) -> dict[str, object]:
    """The demo's fix of RESOLVED, a note that fixes nothing for UNRESOLVED, no steps for ERRORED (an error);
    `instances` replaces any of them."""
    demo = yaml.safe_load((BUNDLED_REPLAYS / "atlas-mini-demo.yaml").read_text())
    return {"instances": {RESOLVED: demo["instances"][RESOLVED], UNRESOLVED: [NOTE, "submit"], **instances}}


@pytest.fixture(scope="module")
def graded_run(tmp_path_factory: pytest.TempPathFactory, docker_client) -> Path:
    """A finished run of the three, graded: resolved, unresolved, errored."""
    chosen = [t for t in load_tasks("atlas-mini") if t.instance_id in INSTANCES.split(",")]
    prepare_images(docker_client, chosen, MINI_SUITE_DIR)
    root = tmp_path_factory.mktemp("graded")
    (root / "script.yaml").write_text(yaml.safe_dump(script()))
    result = atlas("run", "-i", INSTANCES, "--model", "replay:script.yaml", "--run-id", "r", cwd=root)
    assert result.returncode == 3, result.stderr
    graded = atlas("eval", str(root / "runs" / "r"), cwd=root)
    assert graded.returncode == 0, graded.stderr
    return root


@pytest.fixture
def copy(graded_run: Path, tmp_path: Path) -> Path:
    """The graded run in a folder of the test's own (the replay script travels with it)."""
    shutil.copytree(graded_run, tmp_path, dirs_exist_ok=True)
    return tmp_path


def rerun(root: Path, *args: str, **instances: list[object]):
    (root / "script.yaml").write_text(yaml.safe_dump(script(**instances)))
    return atlas("run", "-i", INSTANCES, "--model", "replay:script.yaml", "--run-id", "r", *args, cwd=root)


def folder(root: Path, instance: str) -> Path:
    return root / "runs" / "r" / "instances" / instance


def status(path: Path) -> dict[str, object]:
    return dict(json.loads((path / "status.json").read_text()))


def predictions(root: Path) -> dict[str, str]:
    lines = (root / "runs" / "r" / "preds.jsonl").read_text().splitlines()
    return {pred["instance_id"]: pred["model_patch"] for pred in map(json.loads, lines)}


def test_redo_errors_sets_their_files_aside_and_runs_only_them(copy: Path) -> None:
    before = predictions(copy)
    result = rerun(copy, "--redo", "errors", **{ERRORED: ["submit"]})
    assert result.returncode == 0, result.stderr
    assert "redo: 1 instance(s) run again; earlier files of 1 kept in instances/<id>/previous-<N>/" in result.stderr
    assert "3 tasks, 2 already done" in result.stderr
    assert "report.json predates the redo" in result.stderr
    assert status(folder(copy, ERRORED) / "previous-1")["state"] == "error"
    assert status(folder(copy, ERRORED))["state"] == "done"
    assert predictions(copy) == {**before, ERRORED: ""}


def test_redo_unresolved_runs_what_grading_found_unresolved_once(copy: Path) -> None:
    resolved_status = (folder(copy, RESOLVED) / "status.json").read_bytes()
    result = rerun(copy, "--redo", "unresolved", **{UNRESOLVED: ["submit"], ERRORED: ["submit"]})
    assert result.returncode == 0, result.stderr
    assert "redo: 1 instance(s) run again" in result.stderr, "the error reruns as any error does, not set aside"
    assert "NOTES.txt" in (folder(copy, UNRESOLVED) / "previous-1" / "patch.diff").read_text()
    assert predictions(copy)[UNRESOLVED] == "", "preds.jsonl holds the new episode's patch"
    assert (folder(copy, RESOLVED) / "status.json").read_bytes() == resolved_status, "the resolved one is kept"
    assert not (folder(copy, ERRORED) / "previous-1").exists()

    again = rerun(copy, "--redo", "unresolved", **{UNRESOLVED: ["submit"], ERRORED: ["submit"]})
    assert again.returncode == 0, again.stderr
    assert "redo:" not in again.stderr, "what ran after the grading is not graded unresolved"
    assert "3 tasks, 3 already done" in again.stderr


def test_redo_unresolved_of_a_run_never_graded_is_one_line(copy: Path) -> None:
    (copy / "runs" / "r" / "report.json").unlink()
    line = one_line_error(rerun(copy, "--redo", "unresolved"))
    assert line == "error: --redo unresolved: run r was never graded: grade it with `atlas eval runs/r`"
    (copy / "runs" / "r" / "report.json").write_text("{not json")
    assert "report.json is damaged (" in one_line_error(rerun(copy, "--redo", "unresolved"))


def test_redo_by_id_keeps_every_earlier_episode(copy: Path) -> None:
    fixed = predictions(copy)[RESOLVED]
    for _ in range(2):
        result = rerun(copy, "--redo", f"{RESOLVED},{UNRESOLVED}", "--redo", RESOLVED, **{ERRORED: ["submit"]})
        assert result.returncode == 0, result.stderr
        assert "redo: 2 instance(s) run again" in result.stderr
    for number in (1, 2):
        assert status(folder(copy, RESOLVED) / f"previous-{number}")["state"] == "done"
    assert predictions(copy)[RESOLVED] == fixed
    line = one_line_error(rerun(copy, "--redo", "atlas__nope-1"))
    assert line.startswith("error: --redo atlas__nope-1: not an instance this command selects")
    assert not (folder(copy, RESOLVED) / "previous-3").exists(), "a refused redo sets nothing aside"


def test_a_partly_broken_run_directory_never_crashes_atlas_run(copy: Path) -> None:
    run_dir = copy / "runs" / "r"
    (run_dir / "run.yaml").write_text("config: [cut sh")
    (run_dir / "preds.jsonl").write_text('{"instance_id": ')
    (folder(copy, RESOLVED) / "status.json").write_text("")
    (folder(copy, UNRESOLVED) / "trajectory.json").write_text('{"instance_id": "atlas__tally-1", "st')
    (folder(copy, UNRESOLVED) / "status.json").unlink()  # killed mid-episode: a partial trajectory only
    result = rerun(copy, **{ERRORED: ["submit"]})
    assert result.returncode == 0, result.stderr
    assert f"warning: {Path('runs/r/run.yaml')} is damaged: it is written anew" in result.stderr
    assert f"warning: {Path('runs/r/instances') / RESOLVED / 'status.json'} is damaged: its instance runs again" in (
        result.stderr
    )
    assert "3 tasks, 0 already done" in result.stderr
    assert yaml.safe_load((run_dir / "run.yaml").read_text())["config"]["run_id"] == "r"
    assert set(predictions(copy)) == {RESOLVED, UNRESOLVED, ERRORED}


def test_an_empty_run_directory_is_a_new_run(tmp_path: Path) -> None:
    (tmp_path / "runs" / "fresh").mkdir(parents=True)
    model = tmp_path / "submit.yaml"
    model.write_text("default: [submit]\n")
    result = atlas("run", "-i", ERRORED, "--model", f"replay:{model}", "--run-id", "fresh", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 tasks, 0 already done" in result.stderr
