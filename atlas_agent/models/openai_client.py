"""Any OpenAI-compatible Chat Completions server (`--model openai:BASE_URL/MODEL`): vLLM, llama.cpp,
TabbyAPI, or a hosted endpoint.

`openai:http://127.0.0.1:8000/v1/qwen2.5-coder-32b` posts to `http://127.0.0.1:8000/v1/chat/completions`
with model `qwen2.5-coder-32b`. A server without a tool-call parser returns calls as text in the
content; those are read by Atlas's text parser, and a call that cannot be read becomes a format
error the model is shown. Local servers cost GPU time (wall time x `-M gpu_count`), hosted ones the
dollars of `-M price.*`. An API key, if any, comes from OPENAI_API_KEY (or `-M api_key_env=NAME`) and
only ever goes into the Authorization header; local servers need none.
"""

from __future__ import annotations

import email.utils
import json
import os
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx2

from atlas_agent.errors import ContextOverflow, ModelError
from atlas_agent.models.base import Turn
from atlas_agent.models.options import ModelOptions
from atlas_agent.models.retry import Retryable, call_with_retries
from atlas_agent.models.toolcall_parser import ArgumentsError, decode_arguments, parse_tool_calls
from atlas_agent.vocabulary import Message, Sampling, ToolCall, ToolSpec, Usage

API_KEY_ENV = "OPENAI_API_KEY"
# rate limits, server trouble and "overloaded": another attempt may well succeed
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
# vLLM: "This model's maximum context length is 32768 tokens. However, you requested ...";
# llama.cpp: "the request exceeds the available context size" (type exceed_context_size_error);
# SGLang: "... is longer than the model's context length"; OpenAI: code context_length_exceeded
_CONTEXT_EXCEEDED = re.compile(
    r"context length|context_length_exceeded|context size|exceed_context_size|context window|prompt is too long",
    re.IGNORECASE,
)
# a dead host should fail in seconds, whatever `-M timeout_s` allows a slow generation
CONNECT_TIMEOUT_S = 30.0
# the endpoint check before a run: each try's wait, how many tries, and the pause between them
CHECK_TIMEOUT_S = 5.0
CHECK_ATTEMPTS = 2
CHECK_RETRY_WAIT_S = 1.0


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def split_spec(spec: str) -> tuple[str, str]:
    """`BASE_URL/MODEL` → (base URL, model), split at the last `/`; after `/v1/` when there is one, so
    that vLLM's default served names (`Qwen/Qwen2.5-Coder-32B-Instruct`) keep their slash."""
    head, sep, tail = spec.rpartition("/v1/")
    if sep and "://" in head:
        base, model = f"{head}/v1", tail
    else:
        base, _, model = spec.rpartition("/")
    if not re.match(r"https?://[^/]+", base) or not model:
        raise ModelError(
            f"model openai:{spec} is not openai:BASE_URL/MODEL (e.g. openai:http://127.0.0.1:8000/v1/qwen2.5-coder-32b)"
        )
    return base, model


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms`, else `retry-after` (seconds or an HTTP date)."""
    if (raw_ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        try:
            return max(0.0, (email.utils.parsedate_to_datetime(raw) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


def error_message(response: httpx2.Response) -> tuple[str, str]:
    """The server's message and code/type, from whichever error shape it uses."""
    try:
        body: Any = response.json()
    except ValueError:
        return _one_line(response.text or response.reason_phrase), ""
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or json.dumps(error)
        return _one_line(str(message)), f"{error.get('code') or ''} {error.get('type') or ''}"
    return _one_line(str(error)), ""


def wire_messages(messages: list[Message]) -> list[dict[str, Any]]:
    wire: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            wire.append({"role": "tool", "tool_call_id": message.tool_call_id or "", "content": message.content})
        elif message.role == "assistant" and message.tool_calls:
            calls = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                for c in message.tool_calls
            ]
            wire.append({"role": "assistant", "content": message.content or None, "tool_calls": calls})
        else:
            wire.append({"role": message.role, "content": message.content})
    return wire


def wire_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools
    ]


def turn_from_reply(reply: dict[str, Any], tool_names: set[str], id_prefix: str) -> Turn:
    """Text, tool calls (native, else written in the text), stop reason and token usage of one reply."""
    try:
        choice = reply["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ModelError(f"the server's reply has no choices[0].message: {_one_line(json.dumps(reply), 200)}") from exc
    text = message.get("content") or ""
    calls: list[ToolCall] = []
    problem: str | None = None
    for i, native in enumerate(message.get("tool_calls") or []):
        function = native.get("function") or {}
        name = function.get("name") or ""
        try:
            arguments = decode_arguments(function.get("arguments"))
        except ArgumentsError as exc:
            problem, calls = f"No tool call was run: the call to {name} could not be read: {exc}", []
            break
        calls.append(ToolCall(id=native.get("id") or f"{id_prefix}{i}", name=name, arguments=arguments))
    if not calls and not message.get("tool_calls") and text:
        parsed = parse_tool_calls(text, tool_names, id_prefix=id_prefix)
        if parsed.error:
            cut = " (the reply was cut off at max_tokens)" if choice.get("finish_reason") == "length" else ""
            problem = f"No tool call was run: {parsed.error}{cut}"
        elif parsed.calls:
            text, calls = parsed.text, parsed.calls
    usage = reply.get("usage") or {}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return Turn(
        text=text,
        tool_calls=calls,
        format_error=problem,
        stop_reason=choice.get("finish_reason") or "",
        # prompt_tokens counts cached tokens too; Atlas keeps them apart so they are priced as cache reads
        usage=Usage(
            input_tokens=max(0, (usage.get("prompt_tokens") or 0) - cached),
            output_tokens=usage.get("completion_tokens") or 0,
            cache_read_tokens=cached,
        ),
    )


class OpenAIModel:
    """One conversation; the HTTP client is the provider's, shared by every instance (it is thread-safe)."""

    def __init__(self, provider: OpenAIProvider, options: ModelOptions) -> None:
        self._provider = provider
        self._options = options  # the run's, under this conversation's own sampling
        self._turns = 0

    @property
    def sampling(self) -> Sampling:
        return self._options.sampling

    def complete(self, messages: list[Message], tools: list[ToolSpec]) -> Turn:
        options = self._options
        body: dict[str, Any] = {
            "model": self._provider.model,
            "messages": wire_messages(messages),
            "max_tokens": options.max_output_tokens,
        }
        if tools:
            body |= {"tools": wire_tools(tools), "tool_choice": "auto"}
        if options.temperature is not None:
            body["temperature"] = options.temperature
        started = time.monotonic()
        (reply, served_s), retries = call_with_retries(
            lambda: self._provider.post(body), options.retry, what=f"model {self._provider.spec}"
        )
        self._turns += 1
        # ids of calls written as text must not repeat across turns: tool results are matched by id
        turn = turn_from_reply(reply, {t.name for t in tools}, id_prefix=f"call_{self._turns}_")
        # the GPUs were busy for the answered request, not while we backed off
        turn.usage.gpu_seconds = round(served_s * options.gpu_count, 3)
        turn.usage.cost_usd = options.price.cost(turn.usage) if options.price is not None else 0.0
        turn.latency_s = round(time.monotonic() - started, 3)
        turn.retries = retries
        return turn


class OpenAIProvider:
    def __init__(self, base_url: str, model: str, options: ModelOptions | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.options = options or ModelOptions()
        self.endpoint = f"{self.base_url}/chat/completions"
        # `-M api_key_env` when given (its default names Claude's key), else OPENAI_API_KEY
        self._key_env = self.options.api_key_env if "api_key_env" in self.options.model_fields_set else API_KEY_ENV
        key = os.environ.get(self._key_env, "").strip()
        self._http = httpx2.Client(
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=httpx2.Timeout(self.options.timeout_s, connect=min(CONNECT_TIMEOUT_S, self.options.timeout_s)),
        )

    @property
    def context_window(self) -> None:
        """Not known here: the scaffold's own setting stands."""
        return None

    @property
    def name(self) -> str:
        """The model without its address: a server may come back on another port (see `spec`)."""
        return f"openai:{self.model}"

    @property
    def spec(self) -> str:
        """Where the model is served, as `--model` names it."""
        return f"openai:{self.base_url}/{self.model}"

    def for_instance(self, instance_id: str, *, variant: str = "", sampling: Sampling | None = None) -> OpenAIModel:
        """`sampling` overrides `-M temperature` / `max_output_tokens`."""
        return OpenAIModel(self, self.options.with_sampling(sampling))

    def check(self) -> None:
        """`GET {base}/models`, tried twice: a server that cannot be reached or refuses the key fails in one
        line. Any other answer, or one slower than the check waits, is a server that is there."""
        url = f"{self.base_url}/models"
        for attempt in range(1, CHECK_ATTEMPTS + 1):
            try:
                response = self._http.get(url, timeout=httpx2.Timeout(CHECK_TIMEOUT_S))
                break
            except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
                if attempt == CHECK_ATTEMPTS:
                    cause = _one_line(str(exc)) or type(exc).__name__
                    raise ModelError(
                        f"model {self.spec}: cannot reach {self.base_url} ({cause}): start the server, or fix the "
                        "address in --model"
                    ) from None
                time.sleep(CHECK_RETRY_WAIT_S)
            except httpx2.TransportError:
                return  # it accepted the connection: busy, or slow to list its models
        if response.status_code in (401, 403):
            message, _code = error_message(response)
            raise ModelError(
                f"model {self.spec}: the server refused the API key (HTTP {response.status_code}: {message}): "
                f"set {self._key_env} to a key it accepts"
            )

    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """One attempt: the reply and how long the server took; failures sorted into retry or not."""
        started = time.monotonic()
        try:
            response = self._http.post(self.endpoint, json=body)
        except httpx2.TimeoutException as exc:
            raise Retryable(f"no reply within the timeout ({type(exc).__name__})") from exc
        except httpx2.TransportError as exc:
            raise Retryable(f"cannot reach {self.base_url}: {_one_line(str(exc)) or type(exc).__name__}") from exc
        served_s = time.monotonic() - started
        if response.status_code >= 400:
            raise self._failure(response)
        try:
            reply = response.json()
        except ValueError as exc:
            raise ModelError(f"{self.endpoint} answered with something that is not JSON: {exc}") from exc
        if isinstance(reply, dict) and "error" in reply and "choices" not in reply:
            raise ModelError(f"{self.endpoint} answered with an error: {_one_line(json.dumps(reply['error']))}")
        return reply, served_s

    def _failure(self, response: httpx2.Response) -> Exception:
        status = response.status_code
        message, code = error_message(response)
        # some servers answer an oversized prompt with a 5xx; another attempt would fail the same way
        if status != 429 and _CONTEXT_EXCEEDED.search(f"{message} {code}"):
            return ContextOverflow(f"{self.model}: the prompt does not fit the context window: {message}")
        if status in RETRY_STATUSES:
            return Retryable(f"HTTP {status}: {message}", retry_after(response.headers))
        hint = f" (check {self._key_env})" if status in (401, 403) else ""
        return ModelError(f"{self.endpoint} refused the request (HTTP {status}): {message}{hint}")


def open_openai(spec: str, options: ModelOptions | None = None) -> OpenAIProvider:
    """`BASE_URL/MODEL` (what follows `openai:` in `--model`) → a provider."""
    base_url, model = split_spec(spec)
    return OpenAIProvider(base_url, model, options)
