"""The Claude backend with the real SDK over real HTTP, against a local Messages API stand-in."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atlas_agent.errors import ContextOverflow, ModelError
from atlas_agent.models import open_provider
from atlas_agent.models.base import Turn
from atlas_agent.models.claude import ClaudeModel
from atlas_agent.models.options import PRICES, parse_model_options
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, load_tasks
from atlas_agent.vocabulary import Message, Sampling, ToolCall, ToolSpec
from helpers import atlas, one_line_error
from servers.anthropic_server import AnthropicServer, api_key

# the SDK warns about retiring models on every call; the ids here are only labels for the test server
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).parent / "data" / "claude"
KEY = f"sk-ant-test-{secrets.token_hex(8)}"
TOOLS = [
    ToolSpec(name="bash", description="Run a command.", parameters={"type": "object", "properties": {}}),
    ToolSpec(name="submit", description="Finish.", parameters={"type": "object", "properties": {}}),
]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[AnthropicServer]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with AnthropicServer() as running:
        yield running


def model(server: AnthropicServer, *options: str, spec: str = "claude-sonnet-4-5", **kwargs: Any) -> ClaudeModel:
    """A model on the test server, through the same `-M` parsing as the command line; tiny retry waits."""
    parsed = parse_model_options([f"base_url={server.url}", "retry.initial_wait_s=0.01", *options])
    provider = open_provider(spec, parsed)
    made = provider.for_instance("demo__x-1", **kwargs)
    assert isinstance(made, ClaudeModel)
    return made


def opening() -> list[Message]:
    return [Message(role="system", content="You fix bugs."), Message(role="user", content="Fix the bug.")]


def answer(messages: list[Message], turn: Turn, output: str = "ok") -> None:
    """What the agent appends after a turn: the assistant message, then one result per call."""
    messages.append(
        Message(role="assistant", content=turn.text, tool_calls=turn.tool_calls, provider_blocks=turn.provider_blocks)
    )
    messages += [Message(role="tool", content=output, tool_call_id=call.id) for call in turn.tool_calls]


def bash(command: str = "ls", text: str = "") -> dict[str, Any]:
    return {"text": text, "tool_use": {"name": "bash", "input": {"command": command}}}


def test_specs_route_to_claude_and_a_missing_key_fails_at_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    assert open_provider("claude-sonnet-4-5").name == "claude:claude-sonnet-4-5"
    assert open_provider("anthropic:claude-haiku-4-5-20251001").name == "claude:claude-haiku-4-5-20251001"
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(ModelError, match="set ANTHROPIC_API_KEY"):
        open_provider("claude-sonnet-4-5")
    monkeypatch.setenv("TEAM_CLAUDE_KEY", KEY)
    assert open_provider("claude-sonnet-4-5", parse_model_options(["api_key_env=TEAM_CLAUDE_KEY"]))


def test_atlas_run_without_a_key_fails_before_any_container(tmp_path: Path) -> None:
    env = {"ANTHROPIC_API_KEY": "", "DOCKER_HOST": f"unix://{tmp_path / 'no-engine.sock'}"}
    line = one_line_error(atlas("run", "--model", "claude-sonnet-4-5", "-i", "atlas__tally-2", cwd=tmp_path, env=env))
    assert "set ANTHROPIC_API_KEY" in line, "the key is checked before Docker is even contacted"


def test_conversation_reaches_the_wire_in_api_shape(server: AnthropicServer) -> None:
    calls = [ToolCall(id="toolu_a", name="bash", arguments={"command": "ls"}), ToolCall(id="toolu_b", name="submit")]
    thinking = {"type": "redacted_thinking", "data": "opaque"}
    messages = [
        *opening(),
        Message(role="assistant", content="", tool_calls=calls, provider_blocks=[thinking]),
        Message(role="tool", content="a.py", tool_call_id="toolu_a"),
        Message(role="tool", content="", tool_call_id="toolu_b"),
        Message(role="user", content="You repeated yourself."),
    ]
    server.script = [{"text": "Done."}]
    turn = model(server).complete(messages, TOOLS)
    assert (turn.text, turn.tool_calls, turn.stop_reason) == ("Done.", [], "end_turn")
    request = server.requests[0]
    assert api_key(request.headers) == KEY
    body = request.body
    assert body["system"][0]["text"] == "You fix bugs."
    assert [t["name"] for t in body["tools"]] == ["bash", "submit"] and "input_schema" in body["tools"][0]
    assistant, results = body["messages"][1], body["messages"][2]
    # passed-back blocks first, no empty text block, then the calls
    assert [b["type"] for b in assistant["content"]] == ["redacted_thinking", "tool_use", "tool_use"]
    assert assistant["content"][0] == thinking
    # both results and the note in ONE user turn, results first; an empty result has no content
    assert len(body["messages"]) == 3 and results["role"] == "user"
    assert [b["type"] for b in results["content"]] == ["tool_result", "tool_result", "text"]
    assert results["content"][0]["content"] == "a.py" and "content" not in results["content"][1]


def test_cache_breakpoints_roll_and_cached_tokens_are_reported(server: AnthropicServer) -> None:
    server.script = [bash("ls"), bash("cat a.py"), bash("pytest"), {"text": "done"}]
    claude, messages = model(server), opening()
    turns = []
    for _ in range(4):
        turn = claude.complete(messages, TOOLS)
        turns.append(turn)
        answer(messages, turn, output="x" * 400)
    for request in server.requests:
        body = request.body
        marked = [b for b in [*body["tools"], *body["system"]] if "cache_control" in b]
        marked += [b for m in body["messages"] for b in m["content"] if "cache_control" in b]
        assert len(marked) <= 4
        assert "cache_control" in body["tools"][-1] and "cache_control" in body["system"][-1]
        users = [m for m in body["messages"] if m["role"] == "user"]
        assert all("cache_control" in m["content"][-1] for m in users[-2:])
        assert len(marked) == 2 + min(2, len(users))
    first, second = turns[0].usage, turns[1].usage
    assert first.cache_write_tokens > 0 and first.cache_read_tokens == 0
    assert second.cache_read_tokens >= first.cache_write_tokens, "the second call reads what the first wrote"
    assert all(t.usage.cache_read_tokens > t.usage.input_tokens for t in turns[2:]), "the prefix is paid for once"


def test_thinking_blocks_are_kept_and_sent_back(server: AnthropicServer) -> None:
    server.script = [{**bash(text="Listing."), "thinking": "Start by looking around."}, {"text": "Done."}]
    claude = model(server, "thinking_budget=2048", "max_output_tokens=1000", sampling=Sampling(temperature=0.7))
    messages = opening()
    turn = claude.complete(messages, TOOLS)
    assert turn.text == "Listing.", "thinking stays out of the visible text"
    assert [b["type"] for b in turn.provider_blocks] == ["thinking"]
    assert turn.provider_blocks[0]["thinking"] == "Start by looking around."
    answer(messages, turn)
    # the server rejects a tool-use turn whose signed thinking block is missing or altered
    assert claude.complete(messages, TOOLS).text == "Done."
    first, second = (r.body for r in server.requests)
    assert first["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert first["max_tokens"] == 2048 + 1024 and "temperature" not in first
    assert claude.sampling == Sampling(temperature=None, max_output_tokens=2048 + 1024), "what was sent, recorded"
    assert second["messages"][1]["content"][0] == turn.provider_blocks[0]


def test_sampling_per_conversation_overrides_the_options(server: AnthropicServer) -> None:
    server.script = [{"text": "a"}, {"text": "b"}, {"text": "c"}]
    run_options = ("temperature=0.2", "max_output_tokens=700")
    model(server, *run_options).complete(opening(), TOOLS)
    model(server, *run_options, sampling=Sampling(temperature=0.9)).complete(opening(), TOOLS)
    model(server, *run_options, sampling=Sampling(max_output_tokens=321)).complete(opening(), TOOLS)
    sent = [(r.body["temperature"], r.body["max_tokens"]) for r in server.requests]
    assert sent == [(0.2, 700), (0.9, 700), (0.2, 321)]


def test_a_model_that_refuses_temperature_is_asked_again_without(server: AnthropicServer) -> None:
    server.script = [{"text": "a"}, {"text": "b"}]
    claude = model(server, spec="claude-opus-4-7", sampling=Sampling(temperature=0.9))
    first = claude.complete(opening(), TOOLS)
    assert first.text == "a" and "temperature is deprecated" in first.retries[0].error.replace("`", "")
    assert claude.complete(opening(), TOOLS).retries == [], "the conversation remembers"
    assert ["temperature" in r.body for r in server.requests] == [True, False, False]
    assert claude.sampling.temperature is None


def test_rate_limit_burst_waits_as_long_as_the_server_asks(server: AnthropicServer) -> None:
    server.script = [
        {"error": {"status": 429, "type": "rate_limit_error", "retry_after": 0.05}},
        {"error": {"status": 429, "type": "rate_limit_error", "retry_after_ms": 80}},
        bash(),
    ]
    turn = model(server).complete(opening(), TOOLS)
    assert turn.tool_calls[0].name == "bash"
    assert len(server.requests) == 3
    assert [r.attempt for r in turn.retries] == [1, 2]
    assert turn.retries[0].wait_s >= 0.05 and turn.retries[1].wait_s >= 0.08
    assert all("429 rate_limit_error" in r.error for r in turn.retries)
    assert turn.latency_s >= 0.13


@pytest.mark.parametrize(("status", "kind"), [(529, "overloaded_error"), (500, "api_error"), (503, "api_error")])
def test_server_trouble_is_retried(server: AnthropicServer, status: int, kind: str) -> None:
    server.script = [{"error": {"status": status, "type": kind}}, bash()]
    turn = model(server).complete(opening(), TOOLS)
    assert turn.tool_calls and len(server.requests) == 2
    assert f"{status} {kind}" in turn.retries[0].error


def test_a_reply_slower_than_the_timeout_is_retried(server: AnthropicServer) -> None:
    server.script = [{**bash(), "delay_s": 0.3}, bash("pwd")]
    turn = model(server, "timeout_s=0.1").complete(opening(), TOOLS)
    assert turn.tool_calls[0].arguments == {"command": "pwd"}
    assert "APITimeoutError" in turn.retries[0].error


def test_a_dead_server_fails_after_bounded_attempts(server: AnthropicServer) -> None:
    claude = model(server, "retry.max_attempts=3")
    server.stop()
    started = time.monotonic()
    with pytest.raises(ModelError, match="failed after 3 attempts") as failure:
        claude.complete(opening(), TOOLS)
    assert "Connection" in str(failure.value) and time.monotonic() - started < 5


def test_a_refused_request_is_one_line_with_the_servers_message(server: AnthropicServer) -> None:
    server.script = [
        {"error": {"status": 400, "type": "invalid_request_error", "message": "messages.1.content.0: bad\nblock"}}
    ]
    with pytest.raises(ModelError) as failure:
        model(server).complete(opening(), TOOLS)
    assert str(failure.value) == "claude-sonnet-4-5: 400 invalid_request_error: messages.1.content.0: bad block"
    assert not isinstance(failure.value, ContextOverflow) and len(server.requests) == 1


def test_a_prompt_past_the_window_is_context_overflow(server: AnthropicServer) -> None:
    message = "prompt is too long: 215000 tokens > 200000 maximum"
    server.script = [{"error": {"status": 400, "type": "invalid_request_error", "message": message}}]
    with pytest.raises(ContextOverflow, match="215000 tokens"):
        model(server).complete(opening(), TOOLS)
    assert len(server.requests) == 1, "never retried"


def test_a_rejected_key_never_appears_in_the_error(server: AnthropicServer) -> None:
    server.script = [{"error": {"status": 401, "type": "authentication_error"}}]
    with pytest.raises(ModelError, match="401 authentication_error") as failure:
        model(server).complete(opening(), TOOLS)
    assert KEY not in str(failure.value)


@pytest.mark.parametrize("reason", ["max_tokens", "refusal", "pause_turn", "stop_sequence"])
def test_stop_reasons_are_kept(server: AnthropicServer, reason: str) -> None:
    server.script = [{"text": "partial", "stop_reason": reason}]
    assert model(server).complete(opening(), TOOLS).stop_reason == reason


def test_cost_from_the_price_table_or_an_override(server: AnthropicServer) -> None:
    server.script = [bash(), bash(), bash()]
    listed = model(server).complete(opening(), TOOLS).usage
    price = PRICES["claude-sonnet-4-5"]
    expected = (
        listed.input_tokens * price.input
        + listed.output_tokens * price.output
        + listed.cache_write_tokens * price.cache_write
        + listed.cache_read_tokens * price.cache_read
    ) / 1e6
    assert listed.cost_usd == pytest.approx(expected) and listed.cost_usd > 0
    override = ["price.input=100", "price.output=0", "price.cache_write=0", "price.cache_read=0"]
    priced = model(server, *override).complete(opening(), TOOLS).usage
    assert priced.cost_usd == pytest.approx(priced.input_tokens * 100 / 1e6)
    assert model(server, spec="claude-unlisted-9").complete(opening(), TOOLS).usage.cost_usd == 0.0


# End to end: the real CLI against the stand-in started as its own process.


@pytest.fixture
def api_process(tmp_path: Path) -> Iterator[Any]:
    """Starts the stand-in for a script: `api_process(script) -> port`; requests land in tmp/requests.jsonl."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(script: Path) -> int:
        port_file = tmp_path / f"port-{len(procs)}"
        command = [sys.executable, "-m", "tests.servers.anthropic_server", "--script", str(script)]
        command += ["--port-file", str(port_file), "--requests-log", str(tmp_path / "requests.jsonl")]
        procs.append(subprocess.Popen(command, cwd=ROOT))
        deadline = time.monotonic() + 20
        while not port_file.is_file():
            assert procs[-1].poll() is None and time.monotonic() < deadline, "the test API did not start"
            time.sleep(0.05)
        return int(port_file.read_text())

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def tally_image(docker_client: Any) -> None:
    prepare_images(
        docker_client, [t for t in load_tasks("atlas-mini") if t.instance_id == "atlas__tally-2"], MINI_SUITE_DIR
    )


def claude_run(tmp_path: Path, port: int, run_id: str, *extra: str, status: int = 0) -> Path:
    env = {"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}", "ANTHROPIC_API_KEY": KEY}
    args = ["--dataset", "atlas-mini", "--instances", "atlas__tally-2", "--scaffold", "tools"]
    args += ["--model", "claude-sonnet-4-5", "--run-id", run_id, "-M", "retry.initial_wait_s=0.05", *extra]
    result = atlas("run", *args, cwd=tmp_path, env=env)
    assert result.returncode == status, result.stderr
    return tmp_path / "runs" / run_id


def assert_key_never_written(run_dir: Path) -> None:
    files = [path for path in run_dir.rglob("*") if path.is_file()]
    assert files and not [path for path in files if KEY.encode() in path.read_bytes()]


@pytest.mark.docker
def test_claude_run_resolves_through_rate_limits(tmp_path: Path, tally_image: None, api_process: Any) -> None:
    run_dir = claude_run(tmp_path, api_process(SCRIPTS / "tally-2.yaml"), "claude-e2e")
    graded = atlas("eval", str(run_dir), cwd=tmp_path)
    assert graded.returncode == 0, graded.stderr
    instance = run_dir / "instances" / "atlas__tally-2"
    trajectory = json.loads((instance / "trajectory.json").read_text())
    assert trajectory["model"] == "claude:claude-sonnet-4-5" and trajectory["stop_reason"] == "submitted"
    retries = {step["index"]: step["model_retries"] for step in trajectory["steps"] if step["model_retries"]}
    assert list(retries) == [2, 4]
    assert [r["attempt"] for r in retries[2]] == [1] and retries[2][0]["wait_s"] >= 0.2
    assert "429 rate_limit_error" in retries[2][0]["error"]
    assert [r["attempt"] for r in retries[4]] == [1, 2] and retries[4][0]["wait_s"] >= 0.1
    assert all("529 overloaded_error" in r["error"] for r in retries[4])
    status = json.loads((instance / "status.json").read_text())
    report = json.loads((run_dir / "report.json").read_text())
    assert report["resolved_ids"] == ["atlas__tally-2"]
    for usage in (status["usage"], report["usage"], report["instances"][0]["usage"]):
        assert usage["cache_write_tokens"] > 0 and usage["cache_read_tokens"] > 0 and usage["cost_usd"] > 0
    sent = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert len(sent) == 10 and all(api_key(r["headers"]) == KEY for r in sent), "the key went to the API"
    assert_key_never_written(run_dir)


@pytest.mark.docker
def test_claude_refusal_ends_the_instance_as_a_model_error(tmp_path: Path, tally_image: None, api_process: Any) -> None:
    # exit status 3: an instance ended in an error
    run_dir = claude_run(tmp_path, api_process(SCRIPTS / "bad-request.yaml"), "claude-refused", status=3)
    status = json.loads((run_dir / "instances" / "atlas__tally-2" / "status.json").read_text())
    assert status["state"] == "error" and status["stop_reason"] == "model_error"
    assert "400 invalid_request_error: messages.1.content.0: tool_use ids must be unique" in status["error"]
    assert_key_never_written(run_dir)


@pytest.mark.docker
def test_scaffold_sampling_overrides_the_run_options_on_the_wire(
    tmp_path: Path, tally_image: None, api_process: Any
) -> None:
    script = tmp_path / "submit.yaml"
    script.write_text("- tool_use: {name: submit, input: {}}\n")
    overrides = ["-c", "sampling.temperature=0.9", "-c", "sampling.max_output_tokens=321"]
    run_dir = claude_run(tmp_path, api_process(script), "claude-sampling", "-M", "temperature=0.2", *overrides)
    [sent] = [json.loads(line)["body"] for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert (sent["temperature"], sent["max_tokens"]) == (0.9, 321)
    trajectory = json.loads((run_dir / "instances" / "atlas__tally-2" / "trajectory.json").read_text())
    assert trajectory["sampling"] == {"temperature": 0.9, "max_output_tokens": 321}
