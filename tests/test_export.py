"""A replayed, graded atlas-mini run: `atlas eval` writes each verdict into its trajectory, and
`atlas export` writes mini-swe-agent's and SWE-agent's trajectory formats, checked against the
schemas those projects document (written out below, with the files they come from)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, model_validator
from typing_extensions import TypedDict

from atlas_agent.models.backends import BUNDLED_REPLAYS
from atlas_agent.tasks import load_tasks
from atlas_agent.trajectory import SCHEMA_VERSION, Trajectory
from helpers import atlas, one_line_error

pytestmark = pytest.mark.docker

RESOLVED = "atlas__tally-2"  # the bundled demo's fix
TAMPERED = "atlas__textkit-2"  # the demo's fix, plus a conftest.py the tamper guard strips
UNRESOLVED = "atlas__tally-1"  # an edit that fixes nothing
EMPTY = "atlas__hoard-1"  # submits at once
INSTANCES = [RESOLVED, TAMPERED, UNRESOLVED, EMPTY]
V1_FILE = Path(__file__).parent / "data" / "trajectory-v1.json"  # a trajectory of RESOLVED, schema version 1


def script() -> dict[str, Any]:
    demo = yaml.safe_load((BUNDLED_REPLAYS / "atlas-mini-demo.yaml").read_text())["instances"]
    return {
        "instances": {
            RESOLVED: demo[RESOLVED],
            TAMPERED: [*demo[TAMPERED][:-1], {"bash": "printf '# local test settings\\n' > conftest.py"}, "submit"],
            UNRESOLVED: [
                {
                    "thought": "Note where rounding happens.",
                    "bash": "echo '# rounding: Money.rounded' >> tally/money.py",
                },
                "submit",
            ],
            EMPTY: ["submit"],
        }
    }


@pytest.fixture(scope="module")
def graded_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`atlas run` of INSTANCES, then `atlas eval --repeat 2` (so each instance has two verdicts)."""
    root = tmp_path_factory.mktemp("export")
    (root / "script.yaml").write_text(yaml.safe_dump(script(), sort_keys=False))
    ran = atlas(
        "run", "--model", f"replay:{root / 'script.yaml'}", "--instances", ",".join(INSTANCES), "--run-id", "exported",
        "--workers", "2", cwd=root,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    graded = atlas("eval", "runs/exported", "--repeat", "2", "--workers", "2", cwd=root)
    assert graded.returncode == 0, graded.stderr
    return root / "runs" / "exported"


def trajectory_of(run: Path, instance_id: str) -> Trajectory:
    return Trajectory.load(run / "instances" / instance_id / "trajectory.json")


# ---------------------------------------------------------------- the grading section


def test_eval_writes_each_verdict_and_test_result_into_the_trajectory(graded_run: Path) -> None:
    tasks = {task.instance_id: task for task in load_tasks("atlas-mini")}
    gradings = {iid: trajectory_of(graded_run, iid).grading for iid in INSTANCES}
    assert {iid: grading.outcome if grading else None for iid, grading in gradings.items()} == {
        RESOLVED: "resolved", TAMPERED: "resolved", UNRESOLVED: "unresolved", EMPTY: "empty_patch",
    }  # fmt: skip
    resolved = gradings[RESOLVED]
    assert resolved is not None and resolved.resolved and resolved.patch_applied
    assert resolved.fail_to_pass.passed == tasks[RESOLVED].FAIL_TO_PASS and not resolved.fail_to_pass.failed
    assert sorted(resolved.pass_to_pass.passed) == sorted(tasks[RESOLVED].PASS_TO_PASS)
    unresolved = gradings[UNRESOLVED]
    assert unresolved is not None and not unresolved.resolved and unresolved.patch_applied
    assert sorted(unresolved.fail_to_pass.failed) == sorted(tasks[UNRESOLVED].FAIL_TO_PASS)
    assert sorted(unresolved.pass_to_pass.passed) == sorted(tasks[UNRESOLVED].PASS_TO_PASS)
    tampered = gradings[TAMPERED]
    assert tampered is not None and tampered.tamper_action == "stripped"
    assert [(edit.path, edit.reason) for edit in tampered.tampering] == [("conftest.py", "conftest.py")]
    assert "# local test settings" in tampered.tampering[0].diff
    empty = gradings[EMPTY]
    assert empty is not None and empty.patch_applied is None and empty.log_dir is None
    for iid, grading in gradings.items():
        assert grading is not None
        assert grading.verdicts == [grading.outcome] * 2 and not grading.flaky, iid
    log_dir = resolved.log_dir
    assert log_dir is not None and (graded_run / log_dir / "test_output.txt").is_file()
    report = json.loads((graded_run / "report.json").read_text())
    assert [gradings[iid].outcome for iid in report["resolved_ids"]] == ["resolved", "resolved"]  # type: ignore[union-attr]


def test_a_trajectory_records_its_instance_and_every_step(graded_run: Path) -> None:
    trajectory = trajectory_of(graded_run, RESOLVED)
    assert trajectory.schema_version == SCHEMA_VERSION
    metadata = trajectory.metadata
    assert metadata is not None
    task = next(task for task in load_tasks("atlas-mini") if task.instance_id == RESOLVED)
    assert (metadata.run_id, metadata.dataset, metadata.repo, metadata.base_commit) == (
        "exported", "atlas-mini", task.repo, task.base_commit,
    )  # fmt: skip
    assert metadata.model_spec.startswith("replay:") and (metadata.scaffold, metadata.scaffold_type) == ("tools",) * 2
    assert metadata.atlas_version not in ("", "not installed")
    for step in trajectory.steps:
        assert step.model_input is not None and step.model_input.messages == 2 + 2 * step.index
        assert step.finished_at is not None and step.finished_at >= step.started_at
    # the test run (step 4) takes longer than printing a diff (step 3)
    assert trajectory.steps[3].tool_latency_s > trajectory.steps[2].tool_latency_s > 0
    assert trajectory.stop_reason == "submitted"


def test_eval_warns_about_a_trajectory_it_cannot_read_and_leaves_it_alone(graded_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "exported"
    shutil.copytree(graded_run, run)
    damaged = run / "instances" / UNRESOLVED / "trajectory.json"
    damaged.write_text('{"instance_id": "atlas__tally-1", "steps": [')
    before = damaged.read_bytes()
    # an earlier Atlas wrote this one: it is upgraded when its grading is written
    (run / "instances" / RESOLVED / "trajectory.json").write_bytes(V1_FILE.read_bytes())
    result = atlas("eval", str(run), "--reuse", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {damaged}: Invalid JSON: EOF while parsing a list at line 1 column 44: its grading was not "
        "written into it (report.json has it)"
    ]
    assert damaged.read_bytes() == before
    upgraded = json.loads((run / "instances" / RESOLVED / "trajectory.json").read_text())
    assert upgraded["schema_version"] == SCHEMA_VERSION and upgraded["grading"]["outcome"] == "resolved"
    assert upgraded["steps"] == Trajectory.load(V1_FILE).model_dump(mode="json")["steps"]
    assert not list(run.glob("instances/*/.trajectory.json.*")), "written atomically: no temporary file is left"


# ---------------------------------------------------------------- mini-swe-agent's format
# mini-swe-agent v2 (`trajectory_format: mini-swe-agent-1.1`), from github.com/SWE-agent/mini-swe-agent:
#   src/minisweagent/agents/default.py  DefaultAgent.serialize: info.model_stats {instance_cost, api_calls},
#       info.config, info.exit_status, info.submission, messages, trajectory_format
#   src/minisweagent/models/utils/actions_toolcall.py  an assistant message's extra.actions [{command,
#       tool_call_id}]; a tool message per action: role "tool", tool_call_id, extra {raw_output, returncode,
#       timestamp}; a format error is a user message with extra.interrupt_type
#   src/minisweagent/environments/local.py  the last message: role "exit", extra {exit_status, submission}
#   src/minisweagent/run/benchmarks/swebench.py  batch layout <id>/<id>.traj.json, preds.json keyed by id
#   src/minisweagent/run/utilities/inspector.py  the inspector opens *.traj.json files holding a dict with
#       `messages`; a message's role and content (get_content_string: a string, or tool_calls whose
#       function.arguments is JSON) are shown, a new page starting at each assistant message
#   docs/usage/output_files.md, docs/v2_migration.md


class MiniModelStats(BaseModel):
    instance_cost: float
    api_calls: int


class MiniInfo(BaseModel):
    model_stats: MiniModelStats
    config: dict[str, Any]
    exit_status: str
    submission: str


class MiniFunction(BaseModel):
    name: str
    arguments: str

    @model_validator(mode="after")
    def _json_arguments(self) -> MiniFunction:
        assert isinstance(json.loads(self.arguments), dict)
        return self


class MiniToolCall(BaseModel):
    id: str
    type: Literal["function"]
    function: MiniFunction


class MiniAction(BaseModel):
    command: str
    tool_call_id: str


class MiniMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant", "tool", "exit"]
    content: str
    tool_calls: list[MiniToolCall] | None = None
    tool_call_id: str | None = None
    extra: dict[str, Any] = {}

    @model_validator(mode="after")
    def _as_its_role_needs(self) -> MiniMessage:
        if self.role == "assistant":
            actions = [MiniAction.model_validate(action) for action in self.extra["actions"]]
            assert [action.tool_call_id for action in actions] == [call.id for call in self.tool_calls or []]
            assert isinstance(self.extra["cost"], float) and isinstance(self.extra["timestamp"], float)
        if self.role == "tool":
            assert self.tool_call_id and {"raw_output", "returncode", "timestamp"} <= set(self.extra)
        if self.role == "exit":
            assert set(self.extra) == {"exit_status", "submission"}
        return self


class MiniTrajectory(BaseModel):
    info: MiniInfo
    messages: list[MiniMessage]
    trajectory_format: Literal["mini-swe-agent-1.1"]
    instance_id: str


@pytest.fixture(scope="module")
def mini_export(graded_run: Path) -> Path:
    result = atlas("export", "exported", "--format", "mini", cwd=graded_run.parent.parent)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == f"wrote 4 mini trajectories to {Path('runs/exported/export/mini')}"
    return graded_run / "export" / "mini"


def test_the_mini_export_has_mini_swe_agents_layout(mini_export: Path, graded_run: Path) -> None:
    assert sorted(path.relative_to(mini_export).as_posix() for path in mini_export.rglob("*.traj.json")) == [
        f"{iid}/{iid}.traj.json" for iid in sorted(INSTANCES)
    ]
    preds = json.loads((mini_export / "preds.json").read_text())
    assert set(preds) == set(INSTANCES)
    for iid, pred in preds.items():
        assert (
            pred["instance_id"] == iid
            and pred["model_patch"] == (graded_run / "instances" / iid / "patch.diff").read_text()
        )


def test_every_mini_trajectory_fits_the_documented_schema(mini_export: Path, graded_run: Path) -> None:
    for iid in INSTANCES:
        exported = MiniTrajectory.model_validate_json((mini_export / iid / f"{iid}.traj.json").read_bytes())
        trajectory = trajectory_of(graded_run, iid)
        assert exported.instance_id == iid
        assert exported.info.exit_status == "Submitted"
        assert exported.info.submission == (graded_run / "instances" / iid / "patch.diff").read_text()
        assert exported.info.model_stats.api_calls == len(trajectory.steps)
        roles = [message.role for message in exported.messages]
        assert roles[:2] == ["system", "user"] and roles[-1] == "exit"
        assert roles.count("assistant") == len(trajectory.steps) and roles.count("tool") == len(trajectory.steps)
        assert exported.messages[0].content == trajectory.system_prompt
        assert exported.messages[1].content == trajectory.instance_prompt


def test_a_mini_trajectory_carries_the_commands_their_output_and_the_grading(mini_export: Path) -> None:
    data = json.loads((mini_export / RESOLVED / f"{RESOLVED}.traj.json").read_text())
    assistants = [message for message in data["messages"] if message["role"] == "assistant"]
    assert assistants[0]["extra"]["actions"][0]["command"] == 'grep -n "def convert" -A 14 tally/exchange.py'
    assert assistants[0]["content"].startswith("Converting into the base currency")
    tools = [message for message in data["messages"] if message["role"] == "tool"]
    assert "def convert" in tools[0]["content"] and tools[0]["extra"]["returncode"] == 0
    assert "7 passed" in tools[3]["content"]
    atlas_info = data["info"]["atlas"]
    assert atlas_info["grading"]["resolved"] is True and atlas_info["metadata"]["repo"] == "atlas/tally"
    assert atlas_info["schema_version"] == SCHEMA_VERSION and atlas_info["stop_reason"] == "submitted"


# ---------------------------------------------------------------- SWE-agent's format
# SWE-agent's `.traj`, from github.com/SWE-agent/SWE-agent:
#   sweagent/types.py  TrajectoryStep, HistoryItem (_HistoryItem's required keys, the rest optional), AgentInfo,
#       AgentRunResult (info + trajectory)
#   sweagent/agent/agents.py  DefaultAgent.get_trajectory_data: {trajectory, history, info} + replay_config (a JSON
#       string or None) + environment (the environment's name)
#   sweagent/agent/models.py  InstanceStats, info.model_stats: instance_cost, tokens_sent, tokens_received, api_calls
#   sweagent/run/common.py  batch layout <output>/<id>/<id>.traj; `submitted` is the exit status of a real submission
#   sweagent/inspector/server.py  the web inspector: *.traj files under the directory, the instance id is the file's
#       stem; every non-demo assistant history item needs `action`; an exit status starting with "submitted" needs
#       info.submission; results.json beside the file with completed_ids, submitted_ids, resolved_ids
#   sweagent/run/inspector_cli.py  `sweagent inspect DIR`: *.traj under DIR, results.json in DIR (resolved_ids),
#       info.exit_status, info.model_stats.api_calls and instance_cost, `trajectory` entries' thought, action,
#       observation


class SweTrajectoryStep(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    action: str
    observation: str
    response: str
    state: dict[str, str]
    thought: str
    execution_time: float
    query: list[dict[str, Any]]
    extra_info: dict[str, Any]


class _SweHistoryItem(TypedDict):
    role: str
    content: str | list[dict[str, Any]]
    message_type: Literal["thought", "action", "observation"]


class SweHistoryItem(_SweHistoryItem, total=False):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    agent: str
    is_demo: bool
    thought: str
    action: str | None
    # types.py says list[dict[str, str]], but SWE-agent stores the model's calls as litellm gives them:
    # {"id", "type": "function", "function": {"name", "arguments"}}
    tool_calls: list[dict[str, Any]] | None
    tool_call_ids: list[str] | None
    tags: list[str]
    cache_control: dict[str, Any] | None
    thinking_blocks: list[dict[str, Any]] | None


class SweInstanceStats(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instance_cost: float
    tokens_sent: int
    tokens_received: int
    api_calls: int


class SweAgentInfo(TypedDict, total=False):
    # SWE-agent's own info holds more keys than these (review, summarizer, versions) and is read key by key
    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]

    model_stats: SweInstanceStats
    exit_status: str | None
    submission: str | dict[str, Any] | None


class SweTraj(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trajectory: list[SweTrajectoryStep]
    history: list[SweHistoryItem]
    info: SweAgentInfo
    replay_config: str | None
    environment: str


@pytest.fixture(scope="module")
def sweagent_export(graded_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("sweagent") / "traj"
    result = atlas("export", str(graded_run), "-f", "sweagent", "-o", str(target), cwd=graded_run)
    assert result.returncode == 0, result.stderr
    return target


def test_every_swe_agent_trajectory_fits_the_documented_schema(sweagent_export: Path, graded_run: Path) -> None:
    files = sorted(sweagent_export.rglob("*.traj"))
    assert [path.relative_to(sweagent_export).as_posix() for path in files] == [
        f"{iid}/{iid}.traj" for iid in sorted(INSTANCES)
    ]
    for path in files:
        exported = SweTraj.model_validate_json(path.read_bytes())
        trajectory = trajectory_of(graded_run, path.stem)
        assert len(exported.trajectory) == len(trajectory.steps)
        info = exported.info
        assert info["submission"] == (graded_run / "instances" / path.stem / "patch.diff").read_text()
        assert info["exit_status"] == "submitted"
        assert info["model_stats"].api_calls == len(trajectory.steps)
        assert exported.environment == "docker" and exported.replay_config is None


def test_swe_agents_inspectors_find_what_they_read(sweagent_export: Path) -> None:
    """What sweagent/inspector/server.py and sweagent/run/inspector_cli.py read without checking."""
    results = json.loads((sweagent_export / "results.json").read_text())
    assert sorted(results["resolved_ids"]) == sorted([RESOLVED, TAMPERED])
    assert {"completed_ids", "submitted_ids"} <= set(results)
    for path in sweagent_export.rglob("*.traj"):
        data = json.loads(path.read_text())
        assistants = [item for item in data["history"] if item["role"] == "assistant" and not item.get("is_demo")]
        assert assistants and all("action" in item for item in assistants)
        assert data["info"]["exit_status"].startswith("submitted") and "submission" in data["info"]
        assert any(item["role"] == "user" for item in data["history"]), "the problem statement"


def test_a_swe_agent_step_has_the_action_its_output_and_its_time(sweagent_export: Path) -> None:
    data = json.loads((sweagent_export / RESOLVED / f"{RESOLVED}.traj").read_text())
    first, *_, tests, submit = data["trajectory"]
    assert first["action"] == 'grep -n "def convert" -A 14 tally/exchange.py' and "def convert" in first["observation"]
    assert first["thought"] in first["response"] and first["action"] in first["response"]
    assert "7 passed" in tests["observation"] and tests["execution_time"] > 0
    assert tests["extra_info"]["model_input"]["messages"] == 8 and tests["extra_info"]["finished_at"]
    assert submit["action"] == "submit"
    tool_items = [item for item in data["history"] if item["role"] == "tool"]
    assert tool_items[0]["tool_call_ids"] == [data["history"][2]["tool_calls"][0]["id"]]
    assert data["info"]["atlas"]["grading"]["fail_to_pass"]["passed"]


# ---------------------------------------------------------------- trouble


def test_an_unreadable_trajectory_is_left_out_of_the_export_with_a_warning(graded_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "exported"
    shutil.copytree(graded_run, run, ignore=shutil.ignore_patterns("export", "eval"))
    damaged = run / "instances" / EMPTY / "trajectory.json"
    damaged.write_text("{")
    result = atlas("export", "exported", "-f", "sweagent", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"warning: {Path('runs/exported/instances', EMPTY, 'trajectory.json')}: Invalid JSON: EOF while parsing an "
        f"object at line 1 column 1: {EMPTY} is left out of the export",
        f"wrote 3 sweagent trajectories to {Path('runs/exported/export/sweagent')}",
    ]
    assert not (run / "export" / "sweagent" / EMPTY).exists()
    assert EMPTY not in json.loads((run / "export" / "sweagent" / "preds.json").read_text())


def test_exporting_what_is_not_a_run_is_one_line(tmp_path: Path) -> None:
    assert "no-such-run is not a run directory" in one_line_error(
        atlas("export", "no-such-run", "--format", "mini", cwd=tmp_path)
    )
    assert "'zip' is not one of" in atlas("export", "x", "--format", "zip", cwd=tmp_path).stderr
