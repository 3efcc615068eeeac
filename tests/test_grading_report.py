"""The run report's pure parts: labels as the official report has them, flaky verdicts, tamper flags, tables.

Official reports here are written by swebench's own `make_run_report` over per-instance logs laid
out the way `run_instance` leaves them, so the labels are checked against what the harness really says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from atlas_agent.grading.guard import guarded_predictions
from atlas_agent.grading.harness import evaluation_log_dir, grade
from atlas_agent.grading.report import build_report
from atlas_agent.grading.report_md import render_markdown
from atlas_agent.grading.tamper import CONFTEST, InfraEdit, Screening

RUN = "labels"


def official_report(tmp_path: Path, instances: dict[str, tuple[bool, str]]) -> dict[str, Any]:
    """Run swebench's make_run_report over logs: instance id -> (resolved, test output)."""
    import swebench.harness.reporting as reporting

    predictions = {}
    for iid, (resolved, output) in instances.items():
        folder = tmp_path / RUN / "m" / iid
        folder.mkdir(parents=True)
        (folder / "report.json").write_text(json.dumps({iid: {"resolved": resolved}}))
        (folder / "test_output.txt").write_text(output)
        predictions[iid] = {"instance_id": iid, "model_name_or_path": "m", "model_patch": "diff"}
    rows = [{"instance_id": iid} for iid in instances]
    with evaluation_log_dir(tmp_path):
        path = reporting.make_run_report(predictions, rows, RUN, None, str(tmp_path))
    return dict(json.loads(Path(path).read_text()))


def test_ambiguous_failures_are_not_infra_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    official = official_report(
        tmp_path,
        {
            "a__ok-1": (True, "PASSED tests/test_a.py::test_a\n"),
            "a__oom-1": (False, "Killed\n"),
            "a__module-1": (False, "E   ModuleNotFoundError: No module named 'yaml'\n"),
            "a__plain-1": (False, "FAILED tests/test_a.py::test_a\n"),
        },
    )
    capsys.readouterr()
    assert official["infra_failure_ids"] == ["a__oom-1"] and official["ambiguous_failure_ids"] == ["a__module-1"]
    report = build_report(run_id=RUN, model="m", dataset="d", gradings=[official], facts={})
    assert report.infra_failure_ids == ["a__oom-1"]
    assert report.ambiguous_failure_ids == ["a__module-1"]
    labels = {i.instance_id: (i.outcome, i.failure_kind, i.failure_reason) for i in report.instances}
    assert labels == {
        "a__ok-1": ("resolved", None, None),
        "a__oom-1": ("unresolved", "infra", "out_of_memory"),
        "a__module-1": ("unresolved", "ambiguous", "missing_module"),
        "a__plain-1": ("unresolved", None, None),
    }
    text = render_markdown(report)
    assert "| a__oom-1 | unresolved (infra failure: out_of_memory) |" in text
    assert "| a__module-1 | unresolved (ambiguous failure: missing_module) |" in text
    assert "| a__plain-1 | unresolved |" in text
    assert "to the environment: 1; ambiguous (environment or patch): 1" in text


def grading(resolved: list[str], unresolved: list[str], total: int = 3) -> dict[str, Any]:
    return {
        "total_instances": total,
        "submitted_instances": len(resolved) + len(unresolved),
        "completed_ids": sorted(resolved + unresolved),
        "resolved_ids": resolved,
        "unresolved_ids": unresolved,
    }


def test_a_verdict_that_changes_between_gradings_is_flaky_and_the_first_grading_scores() -> None:
    gradings = [
        grading(["x-1", "x-2"], ["x-3"]),
        grading(["x-2"], ["x-1", "x-3"]),
        grading(["x-1", "x-2"], ["x-3"]),
    ]
    report = build_report(run_id="r", model="m", dataset="d", gradings=gradings, facts={})
    assert report.resolved == 2 and report.gradings == 3
    assert report.flaky_ids == ["x-1"]
    flaky = next(i for i in report.instances if i.instance_id == "x-1")
    assert flaky.verdicts == ["resolved", "unresolved", "resolved"]
    text = render_markdown(report)
    assert "- flaky: 1 instance(s) changed verdict over 3 gradings (the score is the first grading's)" in text
    assert "**flaky**: resolved → unresolved → resolved" in text
    single = build_report(run_id="r", model="m", dataset="d", gradings=gradings[:1], facts={})
    assert single.flaky_ids == [] and all(i.verdicts == [] for i in single.instances)
    assert "flaky" not in render_markdown(single)


EDIT = InfraEdit(path="conftest.py", reason=CONFTEST, diff="diff --git a/conftest.py b/conftest.py\n+```\n")


@pytest.mark.parametrize(
    ("mode", "action"), [("strip", "stripped"), ("refuse", "refused"), ("off", "graded as written")]
)
def test_edits_of_test_infrastructure_are_flagged_in_every_mode(mode: Any, action: str) -> None:
    refused = ["x-1"] if mode == "refuse" else []
    first = grading([] if refused else ["x-1"], ["x-2"])
    if refused:
        first["incomplete_ids"] = ["x-1", "x-3"]
    report = build_report(
        run_id="r", model="m", dataset="d", gradings=[first], facts={}, tamper_mode=mode,
        tampering={"x-1": [EDIT]}, refused=refused,
    )  # fmt: skip
    item = next(i for i in report.instances if i.instance_id == "x-1")
    assert report.tampered_ids == ["x-1"] and item.tamper_action == action and item.tampering == [EDIT]
    assert report.refused_ids == refused
    assert item.outcome == ("refused" if refused else "resolved")
    assert "x-1" not in report.incomplete_ids
    text = render_markdown(report)
    assert f"### x-1: {action}" in text and "- `conftest.py` (conftest.py)" in text
    assert "````diff\ndiff --git a/conftest.py b/conftest.py\n+```\n````" in text, "the fence outlasts the diff's"


def test_tables_per_repository_and_per_difficulty() -> None:
    facts = {
        "a-1": {"repo": "o/a", "difficulty": "<15 min fix"},
        "a-2": {"repo": "o/a", "difficulty": "15 min - 1 hour"},
        "b-1": {"repo": "o/b", "difficulty": "<15 min fix"},
    }
    report = build_report(run_id="r", model="m", dataset="d", gradings=[grading(["a-1", "b-1"], ["a-2"])], facts=facts)
    assert {k: (v.resolved, v.total) for k, v in report.by_repo.items()} == {"o/a": (1, 2), "o/b": (1, 1)}
    assert {k: (v.resolved, v.total) for k, v in report.by_difficulty.items()} == {
        "15 min - 1 hour": (0, 1),
        "<15 min fix": (2, 2),
    }
    text = render_markdown(report)
    assert "## By repository" in text and "| o/a | 1 | 2 | 50.0% |" in text
    assert "## By difficulty" in text and "| <15 min fix | 2 | 2 | 100.0% |" in text
    no_difficulty = {iid: {"repo": fact["repo"]} for iid, fact in facts.items()}
    plain = build_report(run_id="r", model="m", dataset="d", gradings=[grading(["a-1"], [])], facts=no_difficulty)
    assert plain.by_difficulty == {} and "## By difficulty" not in render_markdown(plain)


def test_the_guard_policy_strips_refuses_or_keeps() -> None:
    predictions = {
        iid: {"instance_id": iid, "model_name_or_path": "m", "model_patch": f"patch {iid}"} for iid in ("x-1", "x-2")
    }
    screenings = {"x-1": Screening(patch="clean part", edits=(EDIT,))}
    stripped, none = guarded_predictions(predictions, screenings, "strip")
    assert none == [] and stripped["x-1"]["model_patch"] == "clean part" and stripped["x-2"] == predictions["x-2"]
    assert predictions["x-1"]["model_patch"] == "patch x-1", "the run's own predictions are not touched"
    kept, refused = guarded_predictions(predictions, screenings, "refuse")
    assert refused == ["x-1"] and list(kept) == ["x-2"]
    assert guarded_predictions(predictions, screenings, "off") == (predictions, [])


def test_a_grading_with_nothing_left_to_grade_reports_every_instance(tmp_path: Path) -> None:
    rows = {iid: {"instance_id": iid} for iid in ("x-1", "x-2")}
    official = grade(None, rows, {}, log_dir=tmp_path, run_id="r")  # no container needed
    assert official["incomplete_ids"] == ["x-1", "x-2"] and not list(tmp_path.iterdir())
    report = build_report(
        run_id="r", model="m", dataset="d", gradings=[official], facts={}, tamper_mode="refuse",
        tampering={"x-1": [EDIT], "x-2": [EDIT]}, refused=["x-1", "x-2"],
    )  # fmt: skip
    assert report.total == report.submitted == 2 and report.refused_ids == ["x-1", "x-2"]
    assert report.incomplete_ids == []
    assert [item.outcome for item in report.instances] == ["refused", "refused"]
