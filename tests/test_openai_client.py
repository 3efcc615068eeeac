"""The OpenAI-compatible backend against a local Chat Completions server over real HTTP, and end to end
through the CLI on a mini task in real containers."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atlas_agent.errors import ContextOverflow, ModelError
from atlas_agent.models import open_provider
from atlas_agent.models.base import Model
from atlas_agent.models.openai_client import OpenAIProvider, retry_after, split_spec, turn_from_reply
from atlas_agent.models.options import ModelOptions, parse_model_options
from atlas_agent.models.retry import RetryPolicy
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, load_tasks
from atlas_agent.vocabulary import Message, Sampling, ToolCall
from helpers import BASH_TOOL, SUBMIT_TOOL, atlas
from tests.servers.openai_server import MODEL, OpenAIServer

REPO = Path(__file__).resolve().parent.parent
FAST = RetryPolicy(max_attempts=3, initial_wait_s=0.01, max_wait_s=0.02)
TOOLS = [BASH_TOOL, SUBMIT_TOOL]
PROMPT = [Message(role="system", content="You fix bugs."), Message(role="user", content="Fix the bug.")]
LS = {"name": "bash", "arguments": {"command": "ls"}}


@pytest.fixture(autouse=True)
def no_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


def model(server: OpenAIServer, *options: str, sampling: Sampling | None = None, name: str = MODEL) -> Model:
    provider = open_provider(
        f"openai:{server.url}/{name}", parse_model_options(list(options)).model_copy(update={"retry": FAST})
    )
    return provider.for_instance("atlas__tally-2", sampling=sampling)


@pytest.mark.parametrize(
    ("spec", "base", "name"),
    [
        ("http://127.0.0.1:8000/v1/qwen2.5-coder-32b", "http://127.0.0.1:8000/v1", "qwen2.5-coder-32b"),
        (
            "http://gpu-box:8000/v1/Qwen/Qwen2.5-Coder-32B-Instruct",
            "http://gpu-box:8000/v1",
            "Qwen/Qwen2.5-Coder-32B-Instruct",
        ),
        ("https://host/api/local-model", "https://host/api", "local-model"),
    ],
)
def test_spec_splits_base_url_and_model(spec: str, base: str, name: str) -> None:
    assert split_spec(spec) == (base, name)
    provider = open_provider(f"openai:{spec}")
    assert isinstance(provider, OpenAIProvider) and provider.name == f"openai:{name}"


@pytest.mark.parametrize("spec", ["openai:qwen", "openai:http://127.0.0.1:8000/v1/", "openai:ftp://host/v1/m"])
def test_bad_spec_is_one_error(spec: str) -> None:
    with pytest.raises(ModelError, match="is not openai:BASE_URL/MODEL"):
        open_provider(spec)


def test_request_carries_the_conversation_and_tools(server: OpenAIServer) -> None:
    server.script = [{"tool_call": LS}]
    history = [
        *PROMPT,
        Message(
            role="assistant",
            content="Looking.",
            tool_calls=[ToolCall(id="c1", name="bash", arguments={"command": "pwd"})],
        ),
        Message(role="tool", content="/repo", tool_call_id="c1"),
        Message(role="assistant", content="No call here."),
        Message(role="user", content="Your reply contained no tool call."),
    ]
    model(server, "max_output_tokens=512", "temperature=0.2", sampling=Sampling(temperature=0.7)).complete(
        history, TOOLS
    )
    [request] = server.requests
    assert "authorization" not in request.headers
    body = request.body
    assert body["model"] == MODEL and body["max_tokens"] == 512 and body["temperature"] == 0.7
    assert body["tool_choice"] == "auto"
    assert body["tools"][0] == {
        "type": "function",
        "function": {"name": "bash", "description": "Run a shell command.", "parameters": TOOLS[0].parameters},
    }
    assert body["messages"][2:] == [
        {
            "role": "assistant",
            "content": "Looking.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "pwd"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "/repo"},
        {"role": "assistant", "content": "No call here."},
        {"role": "user", "content": "Your reply contained no tool call."},
    ]


def test_api_key_goes_only_into_the_header(server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-secret")
    server.script = [{"content": "hi"}]
    turn = model(server).complete(PROMPT, [])
    [request] = server.requests
    assert request.headers["authorization"] == "Bearer sk-local-secret"
    assert "tools" not in request.body and "temperature" not in request.body
    assert "sk-local" not in turn.model_dump_json()


def test_api_key_from_another_variable(server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTED_KEY", "sk-hosted")
    server.script = [{"content": "hi"}]
    model(server, "api_key_env=HOSTED_KEY").complete(PROMPT, [])
    assert server.requests[0].headers["authorization"] == "Bearer sk-hosted"


def test_native_tool_call(server: OpenAIServer) -> None:
    server.script = [{"content": "Listing.", "tool_call": LS}]
    turn = model(server).complete(PROMPT, TOOLS)
    assert turn.text == "Listing."
    assert [(c.id, c.name, c.arguments) for c in turn.tool_calls] == [("chatcmpl-tool-0001", "bash", {"command": "ls"})]
    assert turn.stop_reason == "tool_calls" and not turn.retries
    assert turn.usage.input_tokens > 0 and turn.usage.output_tokens > 0


def test_text_tool_calls_are_parsed_with_ids_unique_per_conversation(server: OpenAIServer) -> None:
    server.script = [{"content": "Listing.", "text_tool_call": LS}, {"text_tool_call": {"name": "submit"}}]
    conversation = model(server)
    first = conversation.complete(PROMPT, TOOLS)
    assert first.text == "Listing." and first.stop_reason == "stop"
    assert [(c.id, c.name, c.arguments) for c in first.tool_calls] == [("call_1_0", "bash", {"command": "ls"})]
    second = conversation.complete(PROMPT, TOOLS)
    assert [(c.id, c.name) for c in second.tool_calls] == [("call_2_0", "submit")]


def test_plain_text_has_no_calls(server: OpenAIServer) -> None:
    server.script = [{"content": "I think the bug is in convert()."}]
    turn = model(server).complete(PROMPT, TOOLS)
    assert turn.text == "I think the bug is in convert()." and not turn.tool_calls


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"tool_call": {"name": "bash", "arguments": '{"command": ls}'}}, "the call to bash could not be read"),
        (
            {"content": '<tool_call>\n{"name": "bash", "arguments": {"command": "ls" "-la"}}\n</tool_call>'},
            "Expecting ','",
        ),
        ({"text_tool_call": {"name": "grep", "arguments": {}}}, "unknown tool 'grep'"),
        (
            {
                "content": '<tool_call>\n{"name": "bash", "arguments": {"command": "echo \'unfinished',
                "finish_reason": "length",
            },
            "not valid JSON: Unterminated string starting at (line 1 column 43); "
            'write {"name": ..., "arguments": {...}} (the reply was cut off at max_tokens)',
        ),
    ],
    ids=["native-arguments", "text-json", "text-unknown-tool", "text-cut-off"],
)
def test_unreadable_calls_become_a_format_error(server: OpenAIServer, entry: dict[str, Any], problem: str) -> None:
    """No call is run, and the text the model sees next turn says what to fix."""
    server.script = [entry]
    turn = model(server).complete(PROMPT, TOOLS)
    assert not turn.tool_calls
    assert turn.format_error is not None
    assert turn.format_error.startswith("No tool call was run:") and problem in turn.format_error


def test_rate_limits_and_overload_are_retried_after_the_servers_wait(server: OpenAIServer) -> None:
    server.script = [
        {"error": {"status": 429, "retry_after": 0.2}},
        {"error": {"status": 503, "retry_after": 0.1}},
        {"tool_call": LS},
    ]
    started = time.monotonic()
    turn = model(server).complete(PROMPT, TOOLS)
    assert time.monotonic() - started >= 0.3
    assert [r.attempt for r in turn.retries] == [1, 2]
    assert turn.retries[0].wait_s >= 0.2 and "HTTP 429: Rate limit reached" in turn.retries[0].error
    assert turn.retries[1].wait_s >= 0.1 and "HTTP 503: Loading model" in turn.retries[1].error
    assert turn.latency_s >= 0.3 and turn.tool_calls[0].name == "bash" and len(server.requests) == 3


def test_connection_refused_fails_after_bounded_attempts() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = open_provider(f"openai:http://127.0.0.1:{port}/v1/{MODEL}", ModelOptions(retry=FAST))
    started = time.monotonic()
    with pytest.raises(ModelError, match=r"failed after 3 attempts: cannot reach http://127\.0\.0\.1") as caught:
        provider.for_instance("x").complete(PROMPT, TOOLS)
    assert time.monotonic() - started < 5 and "\n" not in str(caught.value)


def test_a_slow_server_times_out_and_is_retried(server: OpenAIServer) -> None:
    server.script = [{"delay_s": 1.0, "content": "too late"}, {"tool_call": LS}]
    turn = model(server, "timeout_s=0.2").complete(PROMPT, TOOLS)
    assert turn.tool_calls and "no reply within the timeout" in turn.retries[0].error


@pytest.mark.parametrize(("status", "wording"), [(400, "vllm"), (400, "llama.cpp"), (400, "openai"), (500, "vllm")])
def test_context_exceeded_is_an_overflow_and_not_retried(server: OpenAIServer, status: int, wording: str) -> None:
    server.script = [{"error": {"status": status, "context": wording}}]
    with pytest.raises(ContextOverflow, match="does not fit the context window"):
        model(server).complete(PROMPT, TOOLS)
    assert len(server.requests) == 1


def test_other_client_errors_carry_the_servers_message(server: OpenAIServer) -> None:
    server.script = [{"error": {"status": 400, "message": "'messages' must contain\nat least one user message"}}]
    with pytest.raises(ModelError) as caught:
        model(server).complete(PROMPT, TOOLS)
    assert not isinstance(caught.value, ContextOverflow) and len(server.requests) == 1
    assert str(caught.value).endswith("(HTTP 400): 'messages' must contain at least one user message")
    with pytest.raises(ModelError, match=r"\(HTTP 404\): The model `other-model` does not exist"):
        model(server, name="other-model").complete(PROMPT, TOOLS)


def test_an_exhausted_script_is_a_model_error(server: OpenAIServer) -> None:
    with pytest.raises(ModelError, match="script exhausted"):
        model(server).complete(PROMPT, TOOLS)


def test_local_servers_cost_gpu_seconds_and_hosted_ones_dollars(server: OpenAIServer) -> None:
    server.script = [{"delay_s": 0.1, "tool_call": LS}, {"delay_s": 0.1, "tool_call": LS}]
    local = model(server, "gpu_count=2").complete(PROMPT, TOOLS)
    assert local.usage.gpu_seconds >= 0.2 and local.usage.cost_usd == 0.0
    priced = model(server, "price.input=2", "price.output=10", "price.cache_read=0.2", "price.cache_write=0")
    usage = priced.complete(PROMPT, TOOLS).usage
    assert usage.cost_usd > 0
    assert usage.cost_usd == pytest.approx((usage.input_tokens * 2 + usage.output_tokens * 10) / 1e6)


def test_cached_prompt_tokens_are_counted_as_cache_reads() -> None:
    reply = {
        "choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 800}},
    }
    usage = turn_from_reply(reply, set(), "call_1_").usage
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (200, 800, 20)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after-ms": "150", "retry-after": "1"}, 0.15),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(headers) == seconds


def test_retry_after_as_an_http_date() -> None:
    waited = retry_after({"retry-after": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))})
    assert waited is not None and 25 < waited <= 30


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """The test server as its own process, playing tests/data/openai/tally-2.yaml."""
    with serve_script(tmp_path, REPO / "tests" / "data" / "openai" / "tally-2.yaml") as started:
        yield started


@contextlib.contextmanager
def serve_script(tmp_path: Path, script: Path) -> Iterator[tuple[int, Path]]:
    port_file, log = tmp_path / "port", tmp_path / "requests.jsonl"
    command = [
        sys.executable,
        "-m",
        "tests.servers.openai_server",
        "--script",
        str(script),
        "--port-file",
        str(port_file),
    ]
    process = subprocess.Popen([*command, "--requests-log", str(log)], cwd=REPO)
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert process.poll() is None and time.monotonic() < deadline, "the test server did not start"
            time.sleep(0.05)
        yield int(port_file.read_text()), log
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.docker
def test_a_refused_request_ends_the_instance_with_the_servers_message(tmp_path: Path, docker_client: Any) -> None:
    task = next(t for t in load_tasks("atlas-mini") if t.instance_id == "atlas__tally-2")
    prepare_images(docker_client, [task], MINI_SUITE_DIR)
    script = tmp_path / "refuse.yaml"
    script.write_text("turns:\n  - error: {status: 400, message: \"'tools.0.function.name' is not valid\"}\n")
    with serve_script(tmp_path, script) as (port, _log):
        result = atlas(
            "run", "--dataset", "atlas-mini", "--instances", task.instance_id, "--scaffold", "tools",
            "--model", f"openai:http://127.0.0.1:{port}/v1/{MODEL}", "--run-id", "openai-refused",
            cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 3, result.stderr  # an instance ended in an error
    assert "1 of 1 instance(s) ended in an error" in result.stderr
    status = json.loads(
        (tmp_path / "runs" / "openai-refused" / "instances" / task.instance_id / "status.json").read_text()
    )
    assert status["state"] == "error" and status["stop_reason"] == "model_error"
    assert "(HTTP 400): 'tools.0.function.name' is not valid" in status["error"]


@pytest.mark.docker
def test_tools_scaffold_resolves_a_task_through_a_local_server(
    tmp_path: Path, server_process: tuple[int, Path], docker_client: Any
) -> None:
    """Native and text tool calls, a 429 and a malformed call on the way; graded by the official harness."""
    task = next(t for t in load_tasks("atlas-mini") if t.instance_id == "atlas__tally-2")
    prepare_images(docker_client, [task], MINI_SUITE_DIR)
    port, log = server_process
    result = atlas(
        "run", "--dataset", "atlas-mini", "--instances", task.instance_id, "--scaffold", "tools",
        "--model", f"openai:http://127.0.0.1:{port}/v1/{MODEL}", "--run-id", "openai-e2e",
        "-M", "retry.initial_wait_s=0.05", "-M", "gpu_count=2",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "runs" / "openai-e2e"
    graded = atlas("eval", str(run_dir), cwd=tmp_path)
    assert graded.returncode == 0, graded.stderr

    report = json.loads((run_dir / "report.json").read_text())
    assert report["resolved_ids"] == [task.instance_id]
    trajectory = json.loads((run_dir / "instances" / task.instance_id / "trajectory.json").read_text())
    assert trajectory["model"] == f"openai:{MODEL}" and trajectory["stop_reason"] == "submitted"
    steps = trajectory["steps"]
    [retried] = [s for s in steps if s["model_retries"]]
    assert retried["model_retries"][0]["wait_s"] >= 0.1 and "HTTP 429" in retried["model_retries"][0]["error"]
    [malformed] = [s for s in steps if s["error"]]
    assert "Expecting ',' delimiter" in malformed["error"] and "No tool call was run" in malformed["error"]
    fixed = steps[malformed["index"] + 1]
    assert fixed["tool_calls"][0]["name"] == "edit" and fixed["tool_calls"][0]["id"].startswith("call_")
    assert "passed" in steps[-2]["results"][0]["observation"]["output"]

    # what the model was sent after the malformed call: its reply, then the format error
    requests = [json.loads(line) for line in log.read_text().splitlines()]
    after = requests[-3]["body"]["messages"]
    assert after[-2]["role"] == "assistant" and "<tool_call>" in after[-2]["content"], "its reply as written"
    assert after[-1] == {"role": "user", "content": malformed["error"]}, "then what to fix"

    status = json.loads((run_dir / "instances" / task.instance_id / "status.json").read_text())
    for usage in (status["usage"], report["usage"]):
        assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
        assert usage["gpu_seconds"] > 0 and usage["cost_usd"] == 0.0


@pytest.mark.docker
def test_scaffold_sampling_reaches_the_server(tmp_path: Path, docker_client: Any) -> None:
    """A scaffold's `sampling:` (YAML or -c) overrides the run's -M values on the wire; best-of-k's
    per-attempt temperatures override both; without either, -M applies as before."""
    task = next(t for t in load_tasks("atlas-mini") if t.instance_id == "atlas__tally-2")
    prepare_images(docker_client, [task], MINI_SUITE_DIR)
    script = tmp_path / "submits.yaml"
    script.write_text("turns:\n" + "  - tool_call: {name: submit, arguments: {}}\n" * 6)
    mine = tmp_path / "mine.yaml"
    mine.write_text((REPO / "scaffolds" / "tools.yaml").read_text() + "sampling:\n  temperature: 0.3\n")
    with serve_script(tmp_path, script) as (port, log):

        def run(run_id: str, *args: str) -> dict[str, Any]:
            result = atlas(
                "run", "--dataset", "atlas-mini", "--instances", task.instance_id, "--run-id", run_id,
                "--model", f"openai:http://127.0.0.1:{port}/v1/{MODEL}", "-M", "temperature=0.1",
                "-M", "max_output_tokens=999", *args, cwd=tmp_path,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            path = tmp_path / "runs" / run_id / "instances" / task.instance_id / "trajectory.json"
            trajectory: dict[str, Any] = json.loads(path.read_text())
            return trajectory

        by_override = run("override", "-c", "sampling.temperature=0.9", "-c", "sampling.max_output_tokens=321")
        by_file = run("file", "--scaffold", str(mine))
        by_options = run("options")
        best = run("best", "--scaffold", "best-of-k", "-c", "attempt.sampling.max_output_tokens=222")
        sent = [json.loads(line)["body"] for line in log.read_text().splitlines()]
    assert [(body["temperature"], body["max_tokens"]) for body in sent] == [
        (0.9, 321),
        (0.3, 999),
        (0.1, 999),
        (0.0, 222),
        (0.7, 222),
        (1.0, 222),
    ]
    assert by_override["sampling"] == {"temperature": 0.9, "max_output_tokens": 321}
    assert by_file["sampling"] == {"temperature": 0.3, "max_output_tokens": 999}
    assert by_options["sampling"] == {"temperature": 0.1, "max_output_tokens": 999}
    assert [a["sampling"] for a in best["attempts"]] == [
        {"temperature": t, "max_output_tokens": 222} for t in (0.0, 0.7, 1.0)
    ]
