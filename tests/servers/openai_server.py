"""A local stand-in for an OpenAI-compatible server (vLLM, llama.cpp): real HTTP on loopback, the
real JSON shapes of `POST /v1/chat/completions` and `GET /v1/models`.

It plays a script, one entry per request in order:

    - content: Find where conversion happens.          # optional visible text
      tool_call: {name: search, arguments: {pattern: "def convert"}}   # native tool_calls (or a list);
                                                       # a string `arguments` is sent as is (malformed JSON)
    - text_tool_call: {name: symbols, arguments: {name: convert}}  # the call written into the content
                                                       # as <tool_call> markup (a server without a tool parser)
    - content: '<tool_call>{"name": "edit" ...'        # plain content, verbatim
    - error: {status: 429, retry_after: 0.05}          # served in place of a reply (message/type/code optional)
    - error: {status: 400, context: vllm}              # context exceeded, in vllm, llama.cpp or openai wording
    - outage: {seconds: 3, status: 529, retry_after: 0.5}   # every request gets this error for 3 s
                                                       # (from the first it answers), then the next entry
    - {delay_s: 0.5, content: late, finish_reason: length}

An error entry answers one request; the next request gets the entry after it. Requests a real
server would reject (an unknown model, tool results that answer no call, calls left unanswered,
arguments that are not a JSON string) get its 400/404 without using up an entry, and every
request is recorded with its headers. Usage is simulated at about four characters per token.

As a process, for end-to-end runs of the CLI:
    python -m tests.servers.openai_server --script FILE --port-file PATH [--requests-log FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from .common import BackgroundServer, RequestHandler, ServedError, serve_from_command_line, tokens
from .common import Recorded as Recorded  # re-exported, as in the Anthropic server
from .common import load_script as load_script

MODEL = "test-model"
CONTEXT_ERRORS = {
    "vllm": (
        "This model's maximum context length is 32768 tokens. However, you requested 36864 tokens "
        "(32768 in the messages, 4096 in the completion). Please reduce the length of the messages or completion.",
        "BadRequestError",
        400,
    ),
    "llama.cpp": (
        "the request exceeds the available context size, try increasing it",
        "exceed_context_size_error",
        400,
    ),
    "openai": (
        "This model's maximum context length is 128000 tokens. However, your messages resulted in 131072 tokens. "
        "Please reduce the length of the messages.",
        "invalid_request_error",
        "context_length_exceeded",
    ),
}
DEFAULT_ERRORS: dict[int, tuple[str, str, Any]] = {
    400: ("Invalid request", "BadRequestError", 400),
    404: ("Not Found", "NotFoundError", 404),
    429: (
        "Rate limit reached for requests per min (RPM). Please try again shortly.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: ("Internal server error", "InternalServerError", 500),
    503: ("Loading model", "unavailable_error", 503),
    529: ("Overloaded", "overloaded_error", 529),
}


class ApiError(ServedError):
    def __init__(
        self, status: int, message: str = "", kind: str = "", code: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        default_message, default_kind, default_code = DEFAULT_ERRORS.get(status, ("error", "error", status))
        super().__init__(message or default_message)
        self.status, self.kind, self.code = status, kind or default_kind, default_code if code is None else code
        self.headers = headers or {}

    def payload(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.kind, "param": None, "code": self.code}}


def scripted_error(spec: dict[str, Any]) -> ApiError:
    headers = {"retry-after": str(spec["retry_after"])} if "retry_after" in spec else {}
    if "context" in spec:
        message, kind, code = CONTEXT_ERRORS[spec["context"]]
        return ApiError(int(spec.get("status", 400)), message, kind, code, headers)
    return ApiError(int(spec["status"]), spec.get("message", ""), spec.get("type", ""), spec.get("code"), headers)


def validate(body: dict[str, Any], model: str) -> None:
    """The checks of a real server that a client bug would trip; raises its error."""
    for field in ("model", "messages"):
        if not body.get(field):
            raise ApiError(400, f"[{{'type': 'missing', 'loc': ('body', '{field}'), 'msg': 'Field required'}}]")
    if body["model"] != model:
        raise ApiError(404, f"The model `{body['model']}` does not exist.")
    pending: set[str] = set()  # tool_call ids that tool messages must answer next
    for i, message in enumerate(body["messages"]):
        if message.get("role") == "tool":
            if message.get("tool_call_id") not in pending:
                raise ApiError(
                    400,
                    f"messages.[{i}]: messages with role 'tool' must be a response to a preceding message with "
                    f"'tool_calls' (tool_call_id {message.get('tool_call_id')!r})",
                )
            pending.discard(message["tool_call_id"])
            continue
        if pending:
            raise ApiError(
                400,
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                "'tool_call_id'. The following tool_call_ids did not have response messages: "
                + ", ".join(sorted(pending)),
            )
        for call in message.get("tool_calls") or []:
            if not isinstance(call.get("function", {}).get("arguments"), str):
                raise ApiError(400, f"messages.[{i}].tool_calls: function.arguments must be a JSON string")
            pending.add(call["id"])


def _arguments(call: dict[str, Any]) -> str:
    arguments = call.get("arguments", {})
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


class _Handler(RequestHandler):
    app: OpenAIServer

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._send(200, self.app.models())
        else:
            self._send_error(ApiError(404, f"Not Found: {self.path}"))


class OpenAIServer(BackgroundServer):
    """Serves the Chat Completions API on 127.0.0.1 from a background thread; a context manager."""

    handler_class = _Handler

    def __init__(
        self, script: list[dict[str, Any]] | None = None, requests_log: Path | None = None, model: str = MODEL
    ) -> None:
        super().__init__(script, requests_log)
        self.model = model

    @property
    def url(self) -> str:
        """The base URL a client is given: `.../v1`."""
        return f"{super().url}/v1"

    def models(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "atlas-tests"}],
        }

    def check(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> None:
        if path != "/v1/chat/completions":
            raise ApiError(404, f"Not Found: {path}")
        validate(body, self.model)

    def entry_error(self, spec: dict[str, Any]) -> ApiError:
        return scripted_error(spec)

    def bad_request(self, message: str) -> ApiError:
        return ApiError(400, message)

    def reply(self, entry: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        content = entry.get("content") or ""
        if text_call := entry.get("text_tool_call"):
            markup = json.dumps({"name": text_call["name"], "arguments": text_call.get("arguments", {})})
            content = f"{content}\n<tool_call>\n{markup}\n</tool_call>".lstrip()
        native = entry.get("tool_call") or []
        calls = []
        for call in [native] if isinstance(native, dict) else native:
            self._ids += 1
            calls.append(
                {
                    "id": f"chatcmpl-tool-{self._ids:04d}",
                    "type": "function",
                    "function": {"name": call["name"], "arguments": _arguments(call)},
                }
            )
        message: dict[str, Any] = {"role": "assistant", "content": content or None, "tool_calls": calls}
        prompt = tokens(len(json.dumps(body.get("messages"))) + len(json.dumps(body.get("tools") or [])))
        completion = tokens(len(content) + len(json.dumps(calls)))
        return {
            "id": f"chatcmpl-{len(self.requests):04d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": entry.get("finish_reason", "tool_calls" if calls else "stop"),
                }
            ],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }


def main() -> None:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--model", default=MODEL, help="the one model name the server accepts")

    serve_from_command_line(
        __doc__, lambda args, script: OpenAIServer(script, args.requests_log, args.model), add_arguments
    )


if __name__ == "__main__":
    main()
