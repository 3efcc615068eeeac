"""`atlas serve` driving the bundled tiny model on the CPU, used by Atlas's own OpenAI client and by a
whole `atlas run` on a mini task (the CPU twin of the GPU server test)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from atlas_agent.models.openai_client import OpenAIProvider
from atlas_agent.models.options import ModelOptions
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, load_tasks
from atlas_agent.vocabulary import Message
from helpers import ATLAS, BASH_TOOL, atlas

pytest.importorskip("llama_cpp", reason="the CPU engine (llama-cpp-python) is not installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving() as url:
        yield url


@contextmanager
def serving(*options: str) -> Iterator[str]:
    """`atlas serve local:smollm2 OPTIONS` on a free port, until the block ends."""
    port = free_port()
    command = [ATLAS, "serve", "local:smollm2", "--port", str(port), *options]
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else "server exited"
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "atlas serve did not come up"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_the_client_talks_to_the_served_cpu_model(server: str) -> None:
    provider = OpenAIProvider(f"{server}/v1", "smollm2", ModelOptions(max_output_tokens=64))
    tools = [BASH_TOOL]
    messages = [
        Message(role="system", content="You are a helpful assistant."),
        Message(role="user", content="List the files in the current directory."),
    ]
    turn = provider.for_instance("x").complete(messages, tools)
    assert turn.usage.input_tokens > 20 and turn.usage.output_tokens > 0
    assert turn.tool_calls or turn.text or turn.format_error
    metrics = urllib.request.urlopen(f"{server}/metrics", timeout=5).read().decode()
    assert "completion_tokens" in metrics


def speculation_metrics(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    return {m[1]: float(m[2]) for m in re.finditer(r"^atlas_serve_(speculation_\w+) (\S+)$", text, re.M)}


def ask_to_repeat_code(url: str) -> None:
    code = (MINI_SUITE_DIR / "repos" / "tally" / "tally" / "money.py").read_text()[:1600]
    messages = [Message(role="user", content=f"```python\n{code}```\nRepeat this code exactly.")]
    turn = (
        OpenAIProvider(f"{url}/v1", "smollm2", ModelOptions(max_output_tokens=96))
        .for_instance("x")
        .complete(messages, [])
    )
    assert turn.usage.output_tokens > 40


def test_metrics_report_the_acceptance_of_prompt_lookup() -> None:
    """A server that speculates: /metrics says how much of the drafted text the model kept."""
    with serving("--speculation", "ngram") as url:
        ask_to_repeat_code(url)
        after = speculation_metrics(url)
    accepted, drafted = after["speculation_accepted_tokens_total"], after["speculation_draft_tokens_total"]
    assert accepted >= 10 and after["speculation_verify_steps_total"] > 0
    assert after["speculation_acceptance_rate"] == pytest.approx(accepted / drafted)
    per_step = accepted / after["speculation_verify_steps_total"]
    assert after["speculation_accepted_tokens_per_step"] == pytest.approx(per_step)


def test_a_cpu_server_does_not_speculate_by_default(server: str) -> None:
    """On the CPU prompt lookup costs more than it saves on agent turns (docs/models.md): off unless asked."""
    ask_to_repeat_code(server)
    assert speculation_metrics(server) == {}, "no speculation, so nothing to report"


@pytest.mark.docker
def test_an_agent_run_through_the_served_model(tmp_path: Path, server: str, docker_client: Any) -> None:
    task = next(t for t in load_tasks("atlas-mini") if t.instance_id == "atlas__textkit-2")
    prepare_images(docker_client, [task], MINI_SUITE_DIR)
    result = atlas(
        "run", "--dataset", "atlas-mini", "--instances", task.instance_id, "--scaffold", "bash-only",
        "--model", f"openai:{server}/v1/smollm2", "-M", "max_output_tokens=128",
        "-c", "history.context_window=8192", "-c", "history.reserve_output_tokens=1024",
        "--run-id", "served", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "runs" / "served"
    assert atlas("eval", str(run_dir), cwd=tmp_path).returncode == 0
    status = json.loads((run_dir / "instances" / task.instance_id / "status.json").read_text())
    assert status["state"] == "done" and status["steps"] >= 1
    assert status["usage"]["output_tokens"] > 0 and status["usage"]["gpu_seconds"] > 0
    assert json.loads((run_dir / "report.json").read_text())["total"] == 1


def test_serve_and_run_script_serves_runs_and_stops(tmp_path: Path) -> None:
    """scripts/serve_and_run.sh: its own server, an agent run against it (local runtime), the metrics."""
    port = free_port()
    script = Path(__file__).parents[1] / "scripts" / "serve_and_run.sh"
    env = {**os.environ, "ATLAS": ATLAS, "PORT": str(port), "SERVE_LOG": str(tmp_path / "serve.log")}
    result = subprocess.run(
        ["bash", str(script), "local:smollm2", "--runtime", "local", "--scaffold", "bash-only"]
        + ["-i", "atlas__textkit-1", "--run-id", "scripted", "-M", "max_output_tokens=32", "-c", "limits.max_steps=2"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"serving smollm2 on http://127.0.0.1:{port}" in result.stderr
    requests = re.search(r"^atlas_serve_requests_total (\d+)", result.stdout, re.M)
    assert requests and int(requests.group(1)) >= 1, result.stdout
    status = json.loads((tmp_path / "runs" / "scripted" / "instances" / "atlas__textkit-1" / "status.json").read_text())
    assert status["state"] == "done" and status["usage"]["output_tokens"] > 0
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the server was stopped"
