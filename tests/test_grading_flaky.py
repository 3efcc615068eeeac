"""`atlas eval --repeat`: a task whose test follows the wall clock is caught changing its verdict.

The task repo is test data (tests/data/flaky-tasks, built offline like atlas-mini): `flaky__coin-1`
runs a PASS_TO_PASS test that passes in even 15-second slots and fails in odd ones, then sleeps into
the next slot, so back-to-back gradings alternate; `flaky__coin-2` shares its base and is stable.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import load_tasks
from helpers import atlas

pytestmark = pytest.mark.docker

FLAKY_TASKS = Path(__file__).parent / "data" / "flaky-tasks"
FLAKY, STABLE = "flaky__coin-1", "flaky__coin-2"


def test_repeated_gradings_list_the_task_whose_verdict_changes(tmp_path: Path, docker_client) -> None:
    tasks = load_tasks(str(FLAKY_TASKS))
    prepare_images(docker_client, tasks, FLAKY_TASKS)
    gold = {
        task.instance_id: [
            {"bash": f"cat > /tmp/gold.patch <<'ATLAS_EOF'\n{task.patch}ATLAS_EOF"},
            {"bash": "git apply /tmp/gold.patch"},
            "submit",
        ]
        for task in tasks
    }
    script = tmp_path / "gold.yaml"
    script.write_text(yaml.safe_dump({"instances": gold}))
    ran = atlas(
        "run", "--dataset", str(FLAKY_TASKS), "--model", f"replay:{script}", "--run-id", "flaky", "--workers", "2",
        cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    run = tmp_path / "runs" / "flaky"

    graded = atlas("eval", str(run), "--repeat", "3", "--workers", "2", cwd=tmp_path)
    assert graded.returncode == 0, graded.stderr
    report = json.loads((run / "report.json").read_text())
    assert report["gradings"] == 3 and report["flaky_ids"] == [FLAKY]
    verdicts = {item["instance_id"]: item["verdicts"] for item in report["instances"]}
    first, second, third = verdicts[FLAKY]
    assert {first, second} == {"resolved", "unresolved"} and third == first, verdicts
    assert verdicts[STABLE] == ["resolved"] * 3
    assert report["resolved_ids"] == sorted({STABLE} | ({FLAKY} if first == "resolved" else set()))
    assert f"flaky over 3 gradings: {FLAKY}" in graded.stderr
    assert "- flaky: 1 instance(s) changed verdict over 3 gradings" in (run / "report.md").read_text()
    assert sorted(p.name for p in (run / "eval").iterdir() if p.is_dir()) == [
        "flaky",
        "flaky.grading-2",
        "flaky.grading-3",
    ]
