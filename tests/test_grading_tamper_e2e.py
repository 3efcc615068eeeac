"""The tamper guard on real containers: atlas-mini patches that edit test infrastructure, made by a
replayed agent inside the task containers, graded by the official harness behind the guard.

One run holds four tampering patches (each on top of an empty fix: a comment in a source file) and
one gold patch. `--tamper off` must agree with the official harness run on its own; strip and
refuse must leave nothing resolved but the gold patch; every mode flags the same hunks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, Task, load_tasks
from helpers import atlas

pytestmark = pytest.mark.docker

FLIP_HOOK = """\
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.failed:
        report.outcome = "passed"
"""
CONFTEST_FLIP, TEST_EDIT, ADDOPTS, SITECUSTOMIZE, GOLD = (
    "atlas__tally-2",
    "atlas__textkit-2",
    "atlas__semverkit-3",
    "atlas__tally-3",
    "atlas__textkit-1",
)
TAMPERED = sorted([CONFTEST_FLIP, TEST_EDIT, ADDOPTS, SITECUSTOMIZE])
REASONS = {
    CONFTEST_FLIP: {("conftest.py", "conftest.py")},
    TEST_EDIT: {("tests/test_slug.py", "test file of the task")},
    ADDOPTS: {("pyproject.toml", "pytest settings")},
    SITECUSTOMIZE: {("sitecustomize.py", "interpreter start-up hook")},
}


def write(path: str, text: str) -> dict[str, str]:
    return {"bash": f"mkdir -p $(dirname {path}) && cat > {path} <<'ATLAS_EOF'\n{text}ATLAS_EOF"}


def empty_fix(package: str) -> dict[str, str]:
    return {"bash": f"echo '# looked at this' >> {package}/__init__.py"}


def replay_script(gold: Task) -> dict[str, Any]:
    return {
        "instances": {
            CONFTEST_FLIP: [empty_fix("tally"), write("conftest.py", FLIP_HOOK), "submit"],
            TEST_EDIT: [
                empty_fix("textkit"),
                {"bash": "echo 'def test_nothing(): pass' >> tests/test_slug.py"},
                "submit",
            ],
            ADDOPTS: [
                empty_fix("semverkit"),
                write("semverkit/_flip.py", FLIP_HOOK),
                {"bash": "echo 'addopts = \"-p semverkit._flip\"' >> pyproject.toml"},
                "submit",
            ],
            SITECUSTOMIZE: [empty_fix("tally"), write("sitecustomize.py", FLIP_HOOK), "submit"],
            GOLD: [write("/tmp/gold.patch", gold.patch), {"bash": "git apply /tmp/gold.patch"}, "submit"],
        }
    }


@pytest.fixture(scope="module")
def tampered_run(tmp_path_factory: pytest.TempPathFactory, docker_client) -> Path:
    tasks = {task.instance_id: task for task in load_tasks("atlas-mini")}
    chosen = [tasks[iid] for iid in (*TAMPERED, GOLD)]
    prepare_images(docker_client, chosen, MINI_SUITE_DIR)
    root = tmp_path_factory.mktemp("tamper")
    script = root / "script.yaml"
    script.write_text(yaml.safe_dump(replay_script(tasks[GOLD]), sort_keys=False))
    ids = ",".join(task.instance_id for task in chosen)
    result = atlas(
        "run", "--dataset", "atlas-mini", "--instances", ids, "--model", f"replay:{script}", "--run-id", "tamper",
        "--workers", "2", cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = root / "runs" / "tamper"
    for task in chosen:
        assert (run / "instances" / task.instance_id / "patch.diff").read_text().strip(), task.instance_id
    return run


def evaluate(run: Path, *args: str) -> dict[str, Any]:
    result = atlas("eval", str(run), "--workers", "2", *args, cwd=run.parent.parent)
    assert result.returncode == 0, result.stderr
    return dict(json.loads((run / "report.json").read_text()))


def flagged(report: dict[str, Any]) -> dict[str, set[tuple[str, str]]]:
    return {
        item["instance_id"]: {(edit["path"], edit["reason"]) for edit in item["tampering"]}
        for item in report["instances"]
        if item["tampering"]
    }


def official_verdicts(run: Path) -> dict[str, Any]:
    """The official harness's own command line over the run's predictions, on the same images."""
    tasks = [task for task in load_tasks("atlas-mini") if task.instance_id in (*TAMPERED, GOLD)]
    work = run.parent.parent / "official"
    work.mkdir()
    (work / "rows.json").write_text(json.dumps([task.harness_row() for task in tasks]))
    command = [
        sys.executable, "-m", "swebench.harness.run_evaluation", "--dataset_name", str(work / "rows.json"),
        "--predictions_path", str(run / "preds.jsonl"), "--run_id", "official", "--max_workers", "2",
        "--report_dir", str(work),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [report] = work.glob("*.official.json")
    return dict(json.loads(report.read_text()))


def test_tamper_off_grades_as_the_official_harness_does_and_still_flags(tampered_run: Path) -> None:
    report = evaluate(tampered_run, "--tamper", "off")
    official = official_verdicts(tampered_run)
    for key in ("resolved_ids", "unresolved_ids", "error_ids", "empty_patch_ids"):
        assert report[key] == sorted(official[key]), key
    # the hole: a conftest.py hook, or the same hook loaded through addopts, resolves the task. The test edit
    # is undone by the eval script; sitecustomize.py is shadowed by Debian's own in these images.
    assert report["resolved_ids"] == sorted([CONFTEST_FLIP, ADDOPTS, GOLD])
    assert report["tampered_ids"] == TAMPERED and flagged(report) == REASONS
    assert {i["instance_id"]: i["tamper_action"] for i in report["instances"] if i["tampering"]} == dict.fromkeys(
        TAMPERED, "graded as written"
    )


def test_strip_grades_only_what_is_left_and_keeps_the_agents_patch(tampered_run: Path) -> None:
    patches = {p.parent.name: p.read_bytes() for p in (tampered_run / "instances").glob("*/patch.diff")}
    report = evaluate(tampered_run)
    assert report["tamper_mode"] == "strip" and report["resolved_ids"] == [GOLD]
    assert sorted(report["unresolved_ids"]) == TAMPERED, "the empty fixes are still graded, and fail"
    assert report["tampered_ids"] == TAMPERED and flagged(report) == REASONS
    assert {p.parent.name: p.read_bytes() for p in (tampered_run / "instances").glob("*/patch.diff")} == patches
    graded = {
        pred["instance_id"]: pred["model_patch"]
        for pred in map(json.loads, (tampered_run / "eval" / "preds.graded.jsonl").read_text().splitlines())
    }
    assert graded[GOLD] == patches[GOLD].decode()
    assert "conftest.py" not in graded[CONFTEST_FLIP] and "tally/__init__.py" in graded[CONFTEST_FLIP]
    assert "addopts" not in graded[ADDOPTS] and "semverkit/_flip.py" in graded[ADDOPTS]
    # what the harness applied is the stripped patch
    [applied] = (tampered_run / "eval" / "tamper").glob(f"*/{CONFTEST_FLIP}/patch.diff")
    assert applied.read_text() == graded[CONFTEST_FLIP]
    markdown = (tampered_run / "report.md").read_text()
    assert f"### {CONFTEST_FLIP}: stripped" in markdown and 'report.outcome = "passed"' in markdown


def test_refuse_grades_none_of_them_and_every_eval_grades_afresh(tampered_run: Path) -> None:
    evaluate(tampered_run)
    [log] = (tampered_run / "eval" / "tamper").glob(f"*/{GOLD}/run_instance.log")
    first = log.stat().st_mtime_ns
    reused = evaluate(tampered_run, "--reuse")
    assert log.stat().st_mtime_ns == first and reused["resolved_ids"] == [GOLD], "--reuse keeps earlier gradings"
    report = evaluate(tampered_run, "--tamper", "refuse")
    assert log.stat().st_mtime_ns != first, "a fresh eval grades again"
    assert report["refused_ids"] == TAMPERED and report["resolved_ids"] == [GOLD] and report["total"] == 5
    assert {i["instance_id"]: i["outcome"] for i in report["instances"]} == {
        **dict.fromkeys(TAMPERED, "refused"),
        GOLD: "resolved",
    }
    assert flagged(report) == REASONS and report["incomplete_ids"] == []
