"""The versioned trajectory schema: a save/load round trip, the upgrade of version 1 files (a real one,
written by Atlas before the schema was versioned, is kept in tests/data), refusal of newer versions,
and what the loop and the pipeline stages record of every step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel
from test_agent import run_agent

from atlas_agent.grading.record import grading_of
from atlas_agent.grading.report import InstanceReport
from atlas_agent.grading.tamper import InfraEdit
from atlas_agent.models import open_provider
from atlas_agent.scaffolds.structured import ask
from atlas_agent.trajectory import (
    SCHEMA_VERSION,
    Candidate,
    Choice,
    GradedTests,
    Grading,
    InstanceMetadata,
    ModelInput,
    Stage,
    Step,
    TamperEdit,
    ToolResult,
    Trajectory,
    UnreadableTrajectory,
)
from atlas_agent.trajectory.upgrade import upgraded
from atlas_agent.vocabulary import Message, Observation, StopReason, ToolCall, Usage

V1_FILE = Path(__file__).parent / "data" / "trajectory-v1.json"


def full_step(index: int) -> Step:
    return Step(
        index=index,
        started_at="2026-01-01T00:00:00.000+00:00",
        finished_at="2026-01-01T00:00:01.500+00:00",
        model_input=ModelInput(messages=4, history_messages=6, trimmed=True, estimated_tokens=900, input_tokens=812),
        thought="look",
        tool_calls=[ToolCall(id=f"c{index}", name="bash", arguments={"command": "ls"})],
        results=[
            ToolResult(tool_call_id=f"c{index}", tool="bash", observation=Observation(output="a\nb", exit_code=0))
        ],
        usage=Usage(input_tokens=800, output_tokens=20, cache_read_tokens=12, cost_usd=0.0042),
        model_latency_s=1.25,
        tool_latency_s=0.25,
        finish_reason="tool_use",
    )


def full_trajectory() -> Trajectory:
    """Every section filled: metadata, steps, stages, an attempt, candidates, a choice and a grading."""
    return Trajectory(
        instance_id="atlas__tally-2",
        model="claude-sonnet-4-5",
        metadata=InstanceMetadata(
            run_id="r1",
            dataset="atlas-mini",
            repo="atlas/tally",
            base_commit="ab394e7",
            model_spec="claude-sonnet-4-5",
            scaffold="best-of-k",
            scaffold_type="best-of-k",
            atlas_version="0.1.0",
        ),
        steps=[full_step(0), full_step(1)],
        stages=[Stage(name="review", steps=[full_step(0)], result={"chosen": "attempt-1"})],
        attempts=[Trajectory(instance_id="atlas__tally-2", model="m (attempt-1)", steps=[full_step(0)])],
        candidates=[Candidate(id="attempt-1", source="attempt-1: submitted", patch="diff")],
        choice=Choice(candidate_id="attempt-1", method="tests"),
        stop_reason=StopReason.SUBMITTED,
        finished_at="2026-01-01T00:01:00.000+00:00",
        grading=Grading(
            graded_at="2026-01-01T00:02:00.000+00:00",
            outcome="resolved",
            resolved=True,
            patch_applied=True,
            fail_to_pass=GradedTests(passed=["tests/test_x.py::test_fix"]),
            pass_to_pass=GradedTests(passed=["tests/test_x.py::test_old"], failed=["tests/test_x.py::test_flaky"]),
            tampering=[TamperEdit(path="conftest.py", reason="conftest.py", diff="+x")],
            tamper_action="stripped",
            verdicts=["resolved", "unresolved"],
            flaky=True,
            log_dir="eval/r1/m/atlas__tally-2",
        ),
    )


def test_a_full_trajectory_survives_save_and_load(tmp_path: Path) -> None:
    trajectory = full_trajectory()
    path = tmp_path / "trajectory.json"
    trajectory.save(path)
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION == 2
    assert Trajectory.load(path) == trajectory


def test_a_version_1_file_is_upgraded_as_it_is_read() -> None:
    stored = json.loads(V1_FILE.read_text())
    assert "schema_version" not in stored, "the kept file is one written before the schema was versioned"
    trajectory = Trajectory.load(V1_FILE)
    assert trajectory.schema_version == SCHEMA_VERSION
    assert [step.index for step in trajectory.steps] == [step["index"] for step in stored["steps"]]
    assert trajectory.steps[0].thought == stored["steps"][0]["thought"]
    assert trajectory.stop_reason == StopReason.SUBMITTED and trajectory.environment is not None
    # version 1 kept no tool time: the upgrade sums the commands' own durations
    for step, old in zip(trajectory.steps, stored["steps"], strict=True):
        durations = [result["observation"]["duration_s"] for result in old["results"]]
        assert step.tool_latency_s == pytest.approx(sum(durations))
    assert trajectory.steps[3].tool_latency_s > 0.1, "the test run took time"
    # what version 1 never recorded stays empty, not made up
    assert all(step.model_input is None and step.finished_at is None for step in trajectory.steps)
    assert trajectory.metadata is None and trajectory.grading is None


def test_an_upgraded_file_is_saved_as_the_current_version(tmp_path: Path) -> None:
    original = tmp_path / "v1.json"
    original.write_bytes(V1_FILE.read_bytes())
    trajectory = Trajectory.load(original)
    assert original.read_bytes() == V1_FILE.read_bytes(), "the upgrade is in memory: reading never writes"
    path = tmp_path / "trajectory.json"
    trajectory.save(path)
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
    assert Trajectory.load(path) == trajectory


def test_the_upgrade_leaves_its_input_alone() -> None:
    stored = json.loads(V1_FILE.read_text())
    before = json.dumps(stored, sort_keys=True)
    assert upgraded(stored)["steps"][0]["tool_latency_s"] == pytest.approx(0.053)
    assert json.dumps(stored, sort_keys=True) == before


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, 0, "2", True])
def test_a_schema_version_this_atlas_does_not_know_is_refused_in_one_line(tmp_path: Path, version: object) -> None:
    stored = json.loads(V1_FILE.read_text()) | {"schema_version": version}
    path = tmp_path / "trajectory.json"
    path.write_text(json.dumps(stored))
    with pytest.raises(UnreadableTrajectory) as caught:
        Trajectory.load(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert f"schema_version {version!r} is not one this Atlas reads (1 to {SCHEMA_VERSION})" in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [('{"instance_id": "x", "mo', "Invalid JSON"), ('{"instance_id": "x"}', "model: Field required"), ("", "EOF")],
)
def test_a_damaged_file_is_one_line_naming_it(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "trajectory.json"
    path.write_text(text)
    with pytest.raises(UnreadableTrajectory, match=problem) as caught:
        Trajectory.load(path)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(str(path))


def test_a_new_trajectory_is_of_the_current_version() -> None:
    assert Trajectory(instance_id="a__b-1", model="m").schema_version == SCHEMA_VERSION


def test_the_loop_records_input_output_time_and_tokens_of_every_step(tmp_path: Path) -> None:
    script = """
default:
  - thought: look
    bash: ls
  - bash: "sleep 0.3; echo slept"
  - bash: "echo third"
  - submit
"""
    # one observation kept whole: from the third step on, older ones are elided from the prompt
    trajectory, _ = run_agent(tmp_path, script, **{"history.keep_last": 1})
    inputs = [step.model_input for step in trajectory.steps]
    assert all(item is not None for item in inputs)
    # system + task, then an assistant turn and its observation per step
    assert [(item.history_messages, item.messages) for item in inputs if item] == [(2, 2), (4, 4), (6, 6), (8, 8)]
    assert [item.trimmed for item in inputs if item] == [False, False, True, True]
    assert all(item.estimated_tokens > 0 for item in inputs if item)
    for step in trajectory.steps:
        assert step.finished_at is not None and step.finished_at >= step.started_at
        assert step.finish_reason == "tool_use"  # the replay model's reply ends in a tool call
    assert trajectory.steps[1].tool_latency_s >= 0.3
    assert trajectory.steps[0].thought == "look"
    assert trajectory.steps[1].results[0].observation.output.strip() == "slept"


class Verdict(BaseModel):
    verdict: str


def test_a_pipeline_stage_records_its_model_calls(tmp_path: Path) -> None:
    script = tmp_path / "stage.yaml"
    script.write_text("default:\n  - tool: answer\n    args: {wrong: 1}\n  - tool: answer\n    args: {verdict: ok}\n")
    model = open_provider(f"replay:{script}").for_instance("a__b-1")
    stage = Stage(name="review")
    messages = [Message(role="system", content="judge"), Message(role="user", content="which?")]
    answer = ask(model, messages, name="answer", description="Answer.", schema=Verdict, stage=stage)
    assert answer.verdict == "ok"
    first, second = stage.steps
    assert first.error and "invalid" in first.error
    assert first.model_input == ModelInput(
        messages=2, history_messages=2, trimmed=False, estimated_tokens=first.model_input.estimated_tokens
    )
    # the retry is sent the first reply and the error that answered it
    assert second.model_input is not None and second.model_input.messages == 4
    assert all(step.finished_at and step.finish_reason == "tool_use" for step in stage.steps)


def test_the_grading_section_keeps_flaky_verdicts_tests_and_tamper_edits() -> None:
    item = InstanceReport(
        instance_id="atlas__tally-1",
        outcome="unresolved",
        verdicts=["unresolved", "resolved"],
        flaky=True,
        failure_reason="a test failed",
        tampering=[InfraEdit(path="pytest.ini", reason="pytest settings", diff="+addopts = -p x")],
        tamper_action="graded as written",
    )
    official = {
        "patch_successfully_applied": True,
        "tests_status": {
            "FAIL_TO_PASS": {"success": ["t::a"], "failure": ["t::b"]},
            "PASS_TO_PASS": {"success": ["t::c"], "failure": []},
        },
    }
    grading = grading_of(item, official, "2026-01-01T00:00:00.000+00:00", "eval/r/m/atlas__tally-1")
    assert (grading.outcome, grading.resolved, grading.flaky, grading.verdicts) == (
        "unresolved",
        False,
        True,
        ["unresolved", "resolved"],
    )
    assert grading.fail_to_pass == GradedTests(passed=["t::a"], failed=["t::b"])
    assert grading.pass_to_pass == GradedTests(passed=["t::c"])
    assert grading.tampering == [TamperEdit(path="pytest.ini", reason="pytest settings", diff="+addopts = -p x")]
    assert (grading.tamper_action, grading.failure_reason, grading.patch_applied) == (
        "graded as written",
        "a test failed",
        True,
    )
    # a patch the harness never ran (refused by the tamper guard): no tests, no logs
    refused = grading_of(item.model_copy(update={"outcome": "refused"}), None, "t", None)
    assert refused.patch_applied is None and refused.fail_to_pass == GradedTests() and refused.log_dir is None
