"""The agent loop, the replay model, history processing and stuck detection, on a local workspace."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from atlas_agent.agent import Agent
from atlas_agent.agent.history import estimate_tokens
from atlas_agent.agent.settings import LoopSettings
from atlas_agent.errors import ModelError
from atlas_agent.models import open_provider
from atlas_agent.models.base import Model, Turn
from atlas_agent.scaffolds.loader import load_scaffold
from atlas_agent.tools import default_tools
from atlas_agent.trajectory import Trajectory
from atlas_agent.vocabulary import CommandResult, Message, ToolSpec


class HostDirWorkspace:
    """Runs commands with the host's bash in a temp directory (no Docker needed for loop tests)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.workdir = str(root)
        self.commands: list[str] = []

    def run(self, command: str, timeout: float = 120.0) -> CommandResult:
        self.commands.append(command)
        start = time.monotonic()
        done = subprocess.run(["bash", "-c", command], cwd=self.root, capture_output=True, timeout=timeout)
        output = (done.stdout + done.stderr).decode(errors="replace")
        return CommandResult(
            output=output, exit_code=done.returncode, total_bytes=len(output), duration_s=time.monotonic() - start
        )

    def read_file(self, path: str) -> bytes:
        return (self.root / path).read_bytes()

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        target = self.root / path
        target.write_bytes(data.encode() if isinstance(data, str) else data)
        target.chmod(mode)


class RecordingModel:
    """Wraps a model and keeps the size of every prompt it was sent."""

    def __init__(self, inner: Model) -> None:
        self.inner = inner
        self.prompt_tokens: list[int] = []

    def complete(self, messages: list[Message], tools: list[ToolSpec]) -> Turn:
        self.prompt_tokens.append(estimate_tokens(messages))
        return self.inner.complete(messages, tools)


def settings(**overrides: object) -> LoopSettings:
    items = [f"{key}={value}" for key, value in overrides.items()]
    config = load_scaffold("bash-only", items)
    assert isinstance(config, LoopSettings)
    return config


def write_script(tmp_path: Path, text: str) -> str:
    path = tmp_path / "script.yaml"
    path.write_text(text)
    return f"replay:{path}"


def run_agent(
    tmp_path: Path, script: str, instance: str = "demo__x-1", **overrides: object
) -> tuple[Trajectory, HostDirWorkspace]:
    provider = open_provider(write_script(tmp_path, script))
    workspace = HostDirWorkspace(tmp_path)
    saved: list[int] = []
    agent = Agent(
        provider.for_instance(instance),
        default_tools(),
        settings(**overrides),
        on_step=lambda t: saved.append(len(t.steps)),
    )
    task = {"repo": "demo/x", "problem_statement": "bug", "workdir": str(tmp_path)}
    trajectory = agent.run(workspace, Trajectory(instance_id=instance, model=provider.name), task)
    assert saved, "on_step must be called so the trajectory is written as the run goes"
    return trajectory, workspace


def test_replay_runs_commands_and_submits(tmp_path: Path) -> None:
    script = """
instances:
  demo__x-1:
    - thought: create a file
      bash: echo hello > out.txt
    - tool: bash
      args: {command: "cat out.txt; exit 3"}
    - submit
"""
    trajectory, workspace = run_agent(tmp_path, script)
    assert trajectory.stop_reason == "submitted"
    assert len(trajectory.steps) == 3
    assert workspace.commands == ["echo hello > out.txt", "cat out.txt; exit 3"]
    second = trajectory.steps[1].results[0].observation
    assert second.output.strip() == "hello" and second.exit_code == 3
    assert trajectory.steps[0].thought == "create a file"
    assert "demo/x" in trajectory.system_prompt and "bug" in trajectory.instance_prompt


def test_default_steps_serve_unlisted_instances(tmp_path: Path) -> None:
    trajectory, _ = run_agent(tmp_path, "default:\n  - submit\n", instance="other__y-2")
    assert trajectory.stop_reason == "submitted"


def test_step_limit_is_a_recorded_stop(tmp_path: Path) -> None:
    script = "default:\n" + "".join(f"  - bash: 'echo {i}'\n" for i in range(5))
    trajectory, _ = run_agent(tmp_path, script, **{"limits.max_steps": 3})
    assert trajectory.stop_reason == "step_limit"
    assert len(trajectory.steps) == 3


def test_exhausted_script_is_a_model_error(tmp_path: Path) -> None:
    trajectory, _ = run_agent(tmp_path, "default:\n  - bash: 'true'\n")
    assert trajectory.stop_reason == "model_error"
    assert "ran out after 1 steps" in trajectory.stop_detail


def test_repeating_the_same_action_nudges_then_stops(tmp_path: Path) -> None:
    script = "default:\n" + "  - bash: 'ls'\n" * 8
    trajectory, _ = run_agent(tmp_path, script)
    assert trajectory.stop_reason == "stuck"
    assert len(trajectory.steps) == 5, "stop after five identical action/result pairs"
    nudges = [step.index for step in trajectory.steps if step.nudge]
    assert nudges == [2, 3], "a nudge after the third and fourth repeat"


def test_same_action_with_a_different_result_is_not_stuck(tmp_path: Path) -> None:
    script = "default:\n" + "  - bash: 'date +%N'\n" * 6 + "  - submit\n"
    trajectory, _ = run_agent(tmp_path, script)
    assert trajectory.stop_reason == "submitted"


def test_unknown_tool_and_bad_arguments_become_observations(tmp_path: Path) -> None:
    script = """
default:
  - tool: teleport
  - tool: bash
    args: {cmd: ls}
  - submit
"""
    trajectory, workspace = run_agent(tmp_path, script)
    assert trajectory.stop_reason == "submitted"
    assert "Unknown tool 'teleport'" in trajectory.steps[0].results[0].observation.output
    assert "command: Field required" in trajectory.steps[1].results[0].observation.output
    assert workspace.commands == []


class SilentModel:
    def complete(self, messages: list[Message], tools: list[ToolSpec]) -> Turn:
        return Turn(text="I think the fix is obvious.")


def test_replies_without_tool_calls_end_with_format_errors(tmp_path: Path) -> None:
    agent = Agent(SilentModel(), default_tools(), settings())
    trajectory = agent.run(
        HostDirWorkspace(tmp_path),
        Trajectory(instance_id="a", model="silent"),
        {"repo": "r", "problem_statement": "p", "workdir": "/testbed"},
    )
    assert trajectory.stop_reason == "format_errors"
    assert len(trajectory.steps) == 3
    assert all("no tool call" in (step.error or "") for step in trajectory.steps)


def test_150_step_run_stays_inside_a_32k_window(tmp_path: Path) -> None:
    """Each step prints ~12 kB; without history processing the prompt would pass 500k tokens."""
    script = "default:\n" + "".join(f"  - bash: 'seq {i} {i + 2400}'\n" for i in range(150)) + "  - submit\n"
    provider = open_provider(write_script(tmp_path, script))
    model = RecordingModel(provider.for_instance("long__run-1"))
    config = settings(**{"limits.max_steps": 200, "history.context_window": 32768})
    agent = Agent(model, default_tools(), config)
    trajectory = agent.run(
        HostDirWorkspace(tmp_path),
        Trajectory(instance_id="long__run-1", model="replay"),
        {"repo": "r", "problem_statement": "p", "workdir": "/testbed"},
    )
    assert trajectory.stop_reason == "submitted" and len(trajectory.steps) == 151
    assert max(model.prompt_tokens) <= 32768 - config.history.reserve_output_tokens
    full = sum(len(r.observation.output) for s in trajectory.steps for r in s.results)
    assert full / 3 > 10 * 32768, "the trajectory keeps every observation whole"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("instances: [1, 2]", "instances"),
        ("default:\n  - {bash: ls, submit: {}}", "default.0"),
        ("instances: {a: [submit]}\nextra: 1", "extra"),
        (":\n- [", "not valid YAML"),
    ],
)
def test_malformed_replay_scripts_fail_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ModelError) as caught:
        open_provider(write_script(tmp_path, text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_script_and_unknown_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        open_provider(f"replay:{tmp_path / 'nope.yaml'}")
    with pytest.raises(ModelError, match="unknown model"):
        open_provider("gpt-17")


def test_tool_specs_are_json_schemas() -> None:
    specs = {tool.name: tool.spec() for tool in default_tools()}
    assert specs["bash"].parameters["required"] == ["command"]
    assert specs["submit"].parameters["properties"] == {}
