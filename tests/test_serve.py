"""`atlas serve` over real HTTP, with a scripted engine in place of a model: the OpenAI protocol as
Atlas's own client sees it, streaming, errors, queueing in front of a single-stream engine, metrics."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import pytest

if not os.environ.get("CI"):  # as with Docker: in CI a missing extra is a failure, not a skip
    pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")

from serve_harness import MODEL, Server

from atlas_agent.errors import ContextOverflow, ModelError
from atlas_agent.models.engine import Finish
from atlas_agent.models.openai_client import OpenAIProvider
from atlas_agent.models.options import ModelOptions
from atlas_agent.models.retry import RetryPolicy
from atlas_agent.vocabulary import Message, ToolCall
from helpers import BASH_TOOL, SUBMIT_TOOL

pytestmark = pytest.mark.timeout(60)


CHARS_PER_TOKEN = 4
TOOLS = [BASH_TOOL, SUBMIT_TOOL]
WIRE_TOOLS = [{"type": "function", "function": spec.model_dump()} for spec in TOOLS]
WRITTEN_CALL = 'Let me look around.\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls -la"}}\n</tool_call>'
CRASH = "<the engine raises>"
MALFORMED_CALL = '<tool_call>\n{"name": "bash", "arguments": {"command": ls -la}}\n</tool_call>'


class ScriptedEngine:
    """Implements the engine protocol: answers the last user message from `replies` (else echoes it),
    one piece per token of four characters, `delay_s` apart; records what it was asked."""

    model_name = MODEL
    max_concurrency = 1
    speculation = "none"

    def __init__(self, replies: dict[str, str] | None = None, delay_s: float = 0.0, context_window: int = 4096):
        self.replies = replies or {}
        self.delay_s = delay_s
        self.context_window = context_window
        self.rendered: list[tuple[list[dict[str, Any]], list[dict[str, Any]] | None]] = []
        self.started = threading.Event()
        self.closed_early = threading.Event()
        self.max_active = 0
        self._active = 0
        self._lock = threading.Lock()
        self._last_prompt = ""

    def count_tokens(self, text: str) -> int:
        return -(-len(text) // CHARS_PER_TOKEN)

    def render_prompt(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        self.rendered.append((messages, tools))
        return json.dumps({"messages": messages, "tools": tools})

    def generate(
        self, prompt: str, *, max_tokens: int, temperature: float | None, stop: list[str]
    ) -> Generator[str, None, Finish]:
        with self._lock:
            self._active += 1
            self.max_active = max(self.max_active, self._active)
            pairs = zip(prompt, self._last_prompt, strict=False)
            shared = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(prompt), len(self._last_prompt)))
            self._last_prompt = prompt
        self.started.set()
        last_user = next(m["content"] for m in reversed(json.loads(prompt)["messages"]) if m["role"] == "user")
        text = self.replies.get(last_user, f"echo: {last_user}")
        if text == CRASH:
            raise RuntimeError("CUDA out of memory")
        for word in stop:
            text = text.split(word)[0]
        pieces = [text[i : i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN)]
        finished = False
        try:
            for piece in pieces[:max_tokens]:
                time.sleep(self.delay_s)
                yield piece
            finished = True
        finally:
            with self._lock:
                self._active -= 1
            if not finished:
                self.closed_early.set()
        reason = "length" if len(pieces) > max_tokens else "stop"
        return Finish(reason, min(len(pieces), max_tokens), cached_tokens=shared // CHARS_PER_TOKEN)


def ask(question: str) -> list[Message]:
    return [Message(role="system", content="You fix bugs."), Message(role="user", content=question)]


def stream_events(server: Server, body: dict[str, Any]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    body = {"model": MODEL, "stream": True, **body}
    with httpx2.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    for line in lines[:-1]:
        assert line.startswith("data: ")
        events.append(json.loads(line.removeprefix("data: ")))
    return events


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(
        {"fix it": WRITTEN_CALL, "broken": MALFORMED_CALL, "plain": "The bug is in parse().", "crash": CRASH}
    )


@pytest.fixture
def server(engine: ScriptedEngine) -> Iterator[Server]:
    with Server(engine) as running:
        yield running


def test_written_tool_call_comes_back_native(server: Server) -> None:
    turn = server.client().for_instance("i").complete(ask("fix it"), TOOLS)
    assert turn.format_error is None
    assert [(c.name, c.arguments) for c in turn.tool_calls] == [("bash", {"command": "ls -la"})]
    assert turn.text == "Let me look around."
    assert turn.stop_reason == "tool_calls"
    assert turn.usage.output_tokens == server.engine.count_tokens(WRITTEN_CALL)
    raw = server.post({"messages": [{"role": "user", "content": "fix it"}], "tools": WIRE_TOOLS}).json()
    [call] = raw["choices"][0]["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert json.loads(call["function"]["arguments"]) == {"command": "ls -la"}


def test_malformed_tool_call_comes_back_as_text_for_the_client_parser(server: Server) -> None:
    turn = server.client().for_instance("i").complete(ask("broken"), TOOLS)
    assert turn.tool_calls == []
    assert turn.text == MALFORMED_CALL
    assert turn.format_error is not None and "not valid JSON" in turn.format_error
    assert turn.stop_reason == "stop"


def test_conversation_with_tool_results_reaches_the_template(server: Server) -> None:
    call = ToolCall(id="call_1_0", name="bash", arguments={"command": "ls"})
    messages = [
        *ask("plain"),
        Message(role="assistant", content="Looking.", tool_calls=[call]),
        Message(role="tool", tool_call_id="call_1_0", content="setup.py\nsrc/"),
        Message(role="user", content="plain"),
    ]
    turn = server.client().for_instance("i").complete(messages, TOOLS)
    assert turn.text == "The bug is in parse()." and turn.tool_calls == []
    rendered, tools = server.engine.rendered[-1]
    assert rendered[2]["tool_calls"] == [
        {"id": "call_1_0", "type": "function", "function": {"name": "bash", "arguments": {"command": "ls"}}}
    ]
    assert rendered[3] == {"role": "tool", "content": "setup.py\nsrc/", "tool_call_id": "call_1_0"}
    assert tools == WIRE_TOOLS
    # tool_choice "none": no tools in the prompt, and written markup stays text
    reply = server.post(
        {"messages": [{"role": "user", "content": "fix it"}], "tools": WIRE_TOOLS, "tool_choice": "none"}
    )
    assert server.engine.rendered[-1][1] is None
    assert reply.json()["choices"][0]["message"] == {"role": "assistant", "content": WRITTEN_CALL, "tool_calls": []}


@pytest.mark.parametrize(("question", "tools"), [("fix it", WIRE_TOOLS), ("broken", WIRE_TOOLS), ("plain", None)])
def test_stream_assembles_to_the_same_reply(server: Server, question: str, tools: list[dict[str, Any]] | None) -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": question}], "tools": tools}
    whole = server.post(body).json()
    events = stream_events(server, body | {"stream_options": {"include_usage": True}})
    assert {e["object"] for e in events} == {"chat.completion.chunk"} and len({e["id"] for e in events}) == 1
    deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
    assert deltas[0]["role"] == "assistant"
    content = "".join(d.get("content") or "" for d in deltas)
    calls = [c for d in deltas for c in d.get("tool_calls") or []]
    message = whole["choices"][0]["message"]
    assert content == (message["content"] or "")
    strip_ids = [{k: v for k, v in c.items() if k not in ("id", "index")} for c in calls]
    assert strip_ids == [{k: v for k, v in c.items() if k != "id"} for c in message["tool_calls"]]
    assert [e["choices"][0]["finish_reason"] for e in events if e["choices"]][-1] == whole["choices"][0][
        "finish_reason"
    ]
    assert (
        events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == whole["usage"]["completion_tokens"]
    )
    if tools is None:  # without tools nothing needs holding back: one delta per engine piece
        assert len([d for d in deltas if d.get("content")]) == len(range(0, len(content), CHARS_PER_TOKEN))


def test_models_and_health(server: Server) -> None:
    models = httpx2.get(f"{server.url}/v1/models", timeout=5).json()
    assert models["object"] == "list"
    assert [(m["id"], m["object"], m["max_model_len"]) for m in models["data"]] == [(MODEL, "model", 4096)]
    assert httpx2.get(f"{server.url}/health", timeout=5).json() == {"status": "ok"}


def test_prompt_past_the_window_is_a_context_overflow_on_the_client() -> None:
    with Server(ScriptedEngine(context_window=256)) as server:
        with pytest.raises(ContextOverflow, match="maximum context length is 256 tokens"):
            server.client().for_instance("i").complete(ask("x" * 2000), TOOLS)
        error = server.post({"messages": [{"role": "user", "content": "x" * 2000}], "max_tokens": 64})
        assert error.status_code == 400
        assert error.json()["error"]["code"] == "context_length_exceeded"
        assert "However, you requested" in error.json()["error"]["message"]
        # a prompt that fits gets what room is left, and says it was cut
        cut = server.post({"messages": [{"role": "user", "content": "y" * 700}], "max_tokens": 4096}).json()
        assert cut["choices"][0]["finish_reason"] == "length"
        assert cut["usage"]["prompt_tokens"] + cut["usage"]["completion_tokens"] == 256


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"messages": []}, 400, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, 400, "messages.0.role"),
        ({"messages": [{"role": "user", "content": "hi"}], "model": "gpt-9"}, 404, "does not exist"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, 400, "max_tokens"),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "n"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400, "not image_url"),
        (
            {
                "messages": [
                    {"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "bash", "arguments": "[1]"}}]}
                ]
            },
            400,
            "not an object",
        ),
    ],
)
def test_malformed_requests_get_openai_errors(server: Server, body: dict[str, Any], status: int, fragment: str) -> None:
    response = server.post(body)
    assert response.status_code == status
    assert fragment in response.json()["error"]["message"]
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    not_json = httpx2.post(f"{server.url}/v1/chat/completions", content=b"{", timeout=5)
    assert not_json.status_code == 400 and not_json.json()["error"]["message"] == "the request body is not JSON"
    assert httpx2.get(f"{server.url}/v2/nothing", timeout=5).json()["error"]["message"].startswith("Not Found")


def test_engine_failure_is_a_server_error_and_frees_the_slot(server: Server) -> None:
    body = {"messages": [{"role": "user", "content": "crash"}]}
    failed = server.post(body)
    assert failed.status_code == 500  # a status the client retries
    assert failed.json()["error"]["message"] == "the engine failed: RuntimeError: CUDA out of memory"
    events = stream_events(server, body)
    assert events[-1]["error"]["type"] == "server_error"
    assert server.post({"messages": [{"role": "user", "content": "plain"}]}).status_code == 200
    metrics = server.metrics()
    assert metrics['atlas_serve_request_errors_total{status="500"}'] == 2
    assert metrics["atlas_serve_requests_in_flight"] == 0


def test_wrong_model_name_is_a_model_error_on_the_client(server: Server) -> None:
    provider = OpenAIProvider(f"{server.url}/v1", "other", ModelOptions(retry=RetryPolicy(max_attempts=1)))
    with pytest.raises(ModelError, match="HTTP 404"):
        provider.for_instance("i").complete(ask("plain"), TOOLS)


def test_concurrent_clients_queue_for_a_single_stream_engine() -> None:
    engine = ScriptedEngine(delay_s=0.01)
    questions = [f"question {i}: " + "why " * (i + 1) for i in range(8)]
    with Server(engine) as server, ThreadPoolExecutor(8) as pool:
        provider = server.client()
        turns = [pool.submit(provider.for_instance(f"i{i}").complete, ask(q), TOOLS) for i, q in enumerate(questions)]
        deepest = 0.0
        while not all(t.done() for t in turns):
            deepest = max(deepest, server.metrics()["atlas_serve_queue_depth"])
            time.sleep(0.02)
        assert [t.result().text for t in turns] == [f"echo: {q}" for q in questions]
        assert deepest > 0
        assert engine.max_active == 1
        after = server.metrics()
    assert after["atlas_serve_queue_depth"] == 0 and after["atlas_serve_requests_in_flight"] == 0
    assert after["atlas_serve_requests_total"] == 8
    assert after["atlas_serve_completion_tokens_total"] == sum(t.result().usage.output_tokens for t in turns) > 0
    prompt_tokens = sum(t.result().usage.input_tokens + t.result().usage.cache_read_tokens for t in turns)
    assert after["atlas_serve_prompt_tokens_total"] == prompt_tokens
    # every prompt shares its system message and tools with the one before: the engine reports reuse
    reused = after["atlas_serve_reused_prompt_tokens_total"]
    assert reused == sum(t.result().usage.cache_read_tokens for t in turns) > 0
    assert after["atlas_serve_prefix_reuse_ratio"] == pytest.approx(reused / prompt_tokens)
    assert after["atlas_serve_prefill_tokens_total"] == prompt_tokens - reused
    assert after["atlas_serve_decode_tokens_per_second"] > 0


def test_metrics_answer_while_a_slow_generation_runs() -> None:
    engine = ScriptedEngine(delay_s=0.5)
    with Server(engine) as server, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(server.post, {"messages": [{"role": "user", "content": "slow"}]})
        assert engine.started.wait(5)
        started = time.monotonic()
        during = server.metrics()
        models = httpx2.get(f"{server.url}/v1/models", timeout=5)
        assert time.monotonic() - started < 0.4  # well inside one engine step
        assert during["atlas_serve_requests_in_flight"] == 1 and models.status_code == 200
        assert not pending.done()
        assert pending.result().json()["choices"][0]["message"]["content"] == "echo: slow"


def test_a_client_that_gives_up_frees_the_engine() -> None:
    engine = ScriptedEngine(delay_s=0.05)
    with Server(engine) as server:
        long_question = "please " * 100
        with pytest.raises(httpx2.TimeoutException):
            httpx2.post(
                f"{server.url}/v1/chat/completions",
                json={"model": MODEL, "messages": [{"role": "user", "content": long_question}]},
                timeout=0.3,
            )
        assert engine.closed_early.wait(3)
        engine.closed_early.clear()
        body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": long_question}]}
        with httpx2.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=5) as response:
            # past the role chunk, which goes out before the engine starts, to the first piece of text
            assert any('"content": "echo"' in line for line in response.iter_lines())
        assert engine.closed_early.wait(3)
        assert server.post({"messages": [{"role": "user", "content": "next"}]}).json()["usage"]["completion_tokens"] > 0
        metrics = server.metrics()
        assert metrics['atlas_serve_request_errors_total{status="499"}'] == 1
        assert metrics["atlas_serve_requests_in_flight"] == 0
