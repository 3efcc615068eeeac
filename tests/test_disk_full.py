"""The disk holding runs/ fills up mid-episode: the run ends with one line, finished instances stay
byte for byte, the one in flight is left unfinished, and a rerun after freeing space completes it."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from atlas_agent.runtime.orphans import INSTANCE_LABEL, list_containers
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, load_tasks
from helpers import ATLAS, atlas

pytestmark = [pytest.mark.docker, pytest.mark.faults]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs: a disk the test can fill without touching the machine's own."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Takes every free byte of `disk`."""
    filler = disk / "filler"
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    return filler


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_a_full_disk_ends_the_run_cleanly_and_a_rerun_completes_it(
    tmp_path: Path, small_disk: Path, docker_client
) -> None:
    first, second = tasks = [
        t for t in load_tasks("atlas-mini") if t.instance_id in ("atlas__tally-1", "atlas__tally-2")
    ]
    prepare_images(docker_client, tasks, MINI_SUITE_DIR)
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump({"default": [{"bash": "sleep 3"}, "submit"]}))
    args = ["run", "--instances", f"{first.instance_id},{second.instance_id}", "--model", f"replay:{script}"]
    args += ["--run-id", "full", "--runs-dir", str(small_disk)]
    run = subprocess.Popen([ATLAS, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(
        c.labels.get(INSTANCE_LABEL) == second.instance_id for c in list_containers(docker_client, run_id="full")
    ):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.1)
    filler = fill(small_disk)  # while the second instance runs its first command
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 1 and "Traceback" not in stderr, stderr
    line = stderr.strip().splitlines()[-1]  # after the progress lines: one line says what happened
    assert line.startswith("error: no space left on the disk holding") and "rerun the same command" in line
    assert not list_containers(docker_client, run_id="full")
    instances = small_disk / "full" / "instances"
    done = files_of(instances / first.instance_id)
    assert {"status.json", "patch.diff", "trajectory.json"} <= set(done)
    assert not (instances / second.instance_id / "status.json").exists(), "the episode in flight stays unfinished"
    assert not [p for p in small_disk.rglob("*.tmp")], "no half-written file is left"

    filler.unlink()
    rerun = atlas(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 already done" in rerun.stderr
    assert files_of(instances / first.instance_id) == done, "finished work is never rewritten"
    preds = (small_disk / "full" / "preds.jsonl").read_text().splitlines()
    assert len(preds) == 2
