"""One mini-swe-agent episode, the other side of bench/vs_mini_swe_agent.py.

    .bench-venv/bin/python bench/mini_swe_agent_episode.py SPEC.json OUT.json

Runs under the bench virtualenv (mini-swe-agent from PyPI), never under Atlas's: it imports only
mini-swe-agent and the standard library, so its start-up cost is mini-swe-agent's own. It wires the
pieces the way mini-swe-agent's SWE-bench runner does: the `swebench_backticks.yaml` config (the
text-based bash-action format), `DefaultAgent`, `DockerEnvironment` on the task image, and
`DeterministicModel` playing back the scripted replies. SPEC.json gives the image, the task text, the
commands, the trajectory path and a container label; OUT.json receives wall-clock times (seconds
since the epoch, comparable with the parent's clock), per-command durations and the submission.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from minisweagent import __version__
from minisweagent.agents.default import DefaultAgent
from minisweagent.config import get_config_from_spec
from minisweagent.environments.docker import DockerEnvironment
from minisweagent.models.test_models import DeterministicModel, make_output

IMPORTED_AT = time.time()


class TimedModel(DeterministicModel):
    """Notes when each query arrives; the first one is the "first model call" the comparison times."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.query_times: list[float] = []

    def query(self, messages: list[dict[str, str]], **kwargs: Any) -> dict[str, Any]:
        self.query_times.append(time.time())
        return super().query(messages, **kwargs)


class TimedDocker(DockerEnvironment):
    """Times each `docker exec` round trip, the per-command cost set against Atlas's shell."""

    def __init__(self, **kwargs: Any) -> None:
        self.durations: list[float] = []
        super().__init__(**kwargs)

    def execute(self, action: dict[str, Any], cwd: str = "", *, timeout: int | None = None) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return super().execute(action, cwd, timeout=timeout)
        finally:  # the submit command ends the episode by raising Submitted
            self.durations.append(time.perf_counter() - started)


def replies(commands: list[str]) -> list[dict[str, Any]]:
    """Each command as a reply in the format the config asks of a model, plus its parsed action. A
    script costs nothing: at the default cost of 1 per call the config's $3 limit would end it early."""
    return [
        make_output(f"THOUGHT: step {i}.\n\n```mswea_bash_command\n{command}\n```", [{"command": command}], cost=0.0)
        for i, command in enumerate(commands, 1)
    ]


def environment(config: dict[str, Any], spec: dict[str, Any]) -> TimedDocker:
    settings = {key: value for key, value in config.items() if key != "environment_class"}
    # `bash -c` is non-login and reads no rc file; BASH_ENV makes it run the image's conda activation,
    # as mini-swe-agent's own swebench.yaml does, so `python` and `pytest` are the testbed's.
    settings["env"] = {**settings.get("env", {}), "BASH_ENV": "/root/.bashrc"}
    # --rm as by default; --network none as Atlas's task containers; the label lets the parent remove
    # what the background `docker stop` of mini-swe-agent's cleanup has not removed yet.
    settings["run_args"] = ["--rm", "--network", "none", "--label", spec["label"]]
    return TimedDocker(image=spec["image"], **settings)


def main(spec_path: str, out_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    config = get_config_from_spec("swebench_backticks.yaml")
    model = TimedModel(
        outputs=replies(spec["commands"]),
        cost_per_call=0.0,
        observation_template=config["model"]["observation_template"],
    )
    env = environment(config["environment"], spec)
    ready_at = time.time()
    # The agent saves its trajectory after every step, as in a benchmark run.
    agent = DefaultAgent(model, env, **{**config["agent"], "output_path": Path(spec["trajectory"])})
    result = agent.run(spec["task"])
    record = {
        "version": __version__,
        "imported_at": IMPORTED_AT,
        "container_ready_at": ready_at,
        "query_times": model.query_times,
        "command_durations": env.durations,
        "exit_status": result.get("exit_status", ""),
        "submission": result.get("submission", ""),
    }
    Path(out_path).write_text(json.dumps(record))
    return 0 if record["exit_status"] == "Submitted" else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
