"""The run directory holds what belongs to the run and survives damage: ids cannot lead a write
outside it, and a damaged status file makes its instance run again instead of stopping the run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from atlas_agent.errors import AtlasError
from atlas_agent.rundir import RunDir
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, load_tasks
from helpers import atlas, one_line_error

INSTANCE = "atlas__tally-2"


def test_run_ids_and_instance_ids_are_single_names(tmp_path: Path) -> None:
    for run_id in ("../../escaped-run", "a/b", "..", ""):
        with pytest.raises(AtlasError, match="is not a plain name"):
            RunDir.of_run(tmp_path / "runs", run_id)
    run_dir = RunDir.of_run(tmp_path / "runs", "fine-1")
    with pytest.raises(AtlasError, match=re.escape("instance id '../../../x/evil' is not a plain name")):
        run_dir.instance("../../../x/evil")


def test_a_damaged_status_file_marks_its_instance_unfinished(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path / "run")
    status = run_dir.instance(INSTANCE) / "status.json"
    status.parent.mkdir(parents=True)
    for damage in ('{"instance_id": "x", "state": "do', "not json at all", '{"state": "done"}'):
        status.write_text(damage)
        assert run_dir.status(INSTANCE) is None
    assert run_dir.damaged == {status}


def test_the_cli_refuses_ids_that_leave_the_run_directory(tmp_path: Path) -> None:
    escaped = atlas("run", "--model", "replay:atlas-mini-demo", "--run-id", "../../escaped-run", cwd=tmp_path)
    assert "--run-id: run id '../../escaped-run' is not a plain name" in one_line_error(escaped)
    row = next(t for t in load_tasks("atlas-mini") if t.instance_id == INSTANCE).model_dump(mode="json")
    dataset = tmp_path / "evil.jsonl"
    dataset.write_text(json.dumps({**row, "instance_id": "../../../x/evil"}) + "\n")
    hostile = atlas("run", "--dataset", str(dataset), "--model", "replay:atlas-mini-demo", cwd=tmp_path)
    assert "instance id '../../../x/evil' is not a plain name" in one_line_error(hostile)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.jsonl"], "nothing was written"


@pytest.mark.docker
def test_a_run_with_a_damaged_status_file_resumes_and_grades(tmp_path: Path, docker_client: object) -> None:
    prepare_images(docker_client, [t for t in load_tasks("atlas-mini") if t.instance_id == INSTANCE], MINI_SUITE_DIR)
    args = ["run", "-i", INSTANCE, "--model", "replay:atlas-mini-demo", "--run-id", "hurt"]
    first = atlas(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    status = tmp_path / "runs" / "hurt" / "instances" / INSTANCE / "status.json"
    status.write_text('{"instance_id": "atlas__tally-2", "sta')
    resumed = atlas(*args, cwd=tmp_path)
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr
    assert f"{status.relative_to(tmp_path)} is damaged: its instance runs again" in " ".join(resumed.stderr.split())
    assert json.loads(status.read_text())["state"] == "done", "the rerun wrote a whole status again"
    status.write_text("{")
    graded = atlas("eval", str(tmp_path / "runs" / "hurt"), cwd=tmp_path)
    assert graded.returncode == 0 and "Traceback" not in graded.stderr + graded.stdout, graded.stderr
