"""A local stand-in for the Anthropic Messages API: real HTTP on loopback, the real JSON shapes.

It plays a script, one entry per request in order:

    - text: Find where conversion happens.        # optional visible text
      thinking: The rate must divide.             # optional thinking block (signed)
      tool_use: {name: search, input: {pattern: "def convert"}}   # or a list of them
    - error: {status: 429, type: rate_limit_error, retry_after: 0.2}   # served in place of a reply
    - outage: {seconds: 3, status: 529, type: overloaded_error, retry_after: 0.5}   # this error to every
                                                  # request for 3 s (from the first), then the next entry
    - {text: Done., stop_reason: max_tokens}      # any API stop reason; `content: [...]` sends raw blocks
    - {delay_s: 0.5, text: late}                  # answer slowly (client timeouts)

An error entry answers one request; the next request gets the entry after it. Requests the real
API would reject (more than four cache breakpoints, empty text blocks, orphan tool results,
thinking blocks not passed back unchanged, a temperature for a model that takes none) get the
API's 400 without using up an entry, and every request is recorded with its headers. Usage is
simulated: about four characters per token, and cache reads and writes from the cache_control
breakpoints (a prefix seen before is read, a new one is written), with no minimum cacheable length.

As a process, for end-to-end runs of the CLI:
    python -m tests.servers.anthropic_server --script FILE --port-file PATH [--requests-log FILE]

`GET /v1/models` lists one model, outside the script and unrecorded. Given `api_key`, the stand-in
accepts that key only (401 for any other, as the API answers a wrong one).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .common import BackgroundServer, RequestHandler, ServedError, serve_from_command_line, tokens
from .common import Recorded as Recorded  # re-exported: the names this module has always had
from .common import load_script as load_script

MAX_CACHE_BREAKPOINTS = 4
# Models that refuse sampling parameters (Opus 4.7 onwards).
NO_SAMPLING_MODELS = ("claude-opus-4-7", "claude-opus-4-8")
DEFAULT_MESSAGES = {
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "overloaded_error": "Overloaded",
    "api_error": "Internal server error",
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
}


class ApiError(ServedError):
    def __init__(self, status: int, kind: str, message: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(message or DEFAULT_MESSAGES.get(kind, kind))
        self.status, self.kind, self.headers = status, kind, headers or {}

    def payload(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.kind, "message": str(self)}}


def api_key(headers: dict[str, str]) -> str | None:
    """The key a request carries: `x-api-key`, or `Authorization: Bearer` (what recent SDKs send)."""
    bearer = headers.get("authorization", "")
    return headers.get("x-api-key") or (bearer.removeprefix("Bearer ") if bearer.startswith("Bearer ") else None)


def sign(thinking: str) -> str:
    return "sig-" + hashlib.sha256(thinking.encode()).hexdigest()[:24]


def _canonical(block: Any) -> str:
    """A block as the cache sees it: where the breakpoint sits is not part of the content."""
    if isinstance(block, dict):
        block = {k: v for k, v in block.items() if k != "cache_control"}
    return json.dumps(block, sort_keys=True)


def prompt_blocks(body: dict[str, Any]) -> list[tuple[str, bool]]:
    """The prompt in cache order (tools, system, messages): each block and whether it is a breakpoint."""
    system = body.get("system") or []
    blocks: list[tuple[str, Any]] = [("tool", t) for t in body.get("tools") or []]
    blocks += [("system", b) for b in ([{"type": "text", "text": system}] if isinstance(system, str) else system)]
    for message in body.get("messages") or []:
        content = message.get("content")
        content = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        blocks += [(message.get("role", "?"), block) for block in content]
    return [(f"{where}:{_canonical(b)}", isinstance(b, dict) and "cache_control" in b) for where, b in blocks]


def validate(body: dict[str, Any]) -> None:
    """The checks of the real API that a client bug would trip; raises the API's 400."""
    for field in ("model", "max_tokens", "messages"):
        if field not in body:
            raise ApiError(400, "invalid_request_error", f"{field}: Field required")
    marks = sum(marked for _, marked in prompt_blocks(body))
    if marks > MAX_CACHE_BREAKPOINTS:
        raise ApiError(
            400, "invalid_request_error", f"A maximum of 4 blocks with cache_control may be provided. Found {marks}."
        )
    if "temperature" in body and body["model"].startswith(NO_SAMPLING_MODELS):
        raise ApiError(400, "invalid_request_error", "`temperature` is deprecated for this model.")
    thinking = (body.get("thinking") or {}).get("type") == "enabled"
    if thinking and body["max_tokens"] <= body["thinking"].get("budget_tokens", 0):
        raise ApiError(400, "invalid_request_error", "`max_tokens` must be greater than `thinking.budget_tokens`")
    if thinking and body.get("temperature", 1) != 1:
        raise ApiError(400, "invalid_request_error", "`temperature` may only be set to 1 when thinking is enabled")
    pending: set[str] = set()  # tool_use ids that the next message must answer
    messages = body["messages"]
    final_assistant = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    for i, message in enumerate(messages):
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        answered = set()
        for j, block in enumerate(blocks):
            where = f"messages.{i}.content.{j}"
            if block.get("type") == "text" and not block.get("text"):
                raise ApiError(400, "invalid_request_error", f"{where}: text content blocks must be non-empty")
            if block.get("type") == "thinking" and block.get("signature") != sign(block.get("thinking", "")):
                raise ApiError(400, "invalid_request_error", f"{where}: Invalid `signature` in `thinking` block")
            if block.get("type") == "tool_result":
                if block.get("tool_use_id") not in pending:
                    raise ApiError(
                        400,
                        "invalid_request_error",
                        f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: {block.get('tool_use_id')}. "
                        "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
                    )
                answered.add(block["tool_use_id"])
        if pending - answered:
            raise ApiError(
                400,
                "invalid_request_error",
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{', '.join(sorted(pending - answered))}",
            )
        uses = [b for b in blocks if b.get("type") == "tool_use"]
        pending = {b["id"] for b in uses} if message.get("role") == "assistant" else set()
        if (
            thinking
            and i == final_assistant
            and uses
            and blocks[0].get("type") not in ("thinking", "redacted_thinking")
        ):
            raise ApiError(
                400,
                "invalid_request_error",
                f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                f"`{blocks[0].get('type')}`. When `thinking` is enabled, a final `assistant` message must start "
                "with a thinking block.",
            )


class _Handler(RequestHandler):
    app: AnthropicServer

    def do_GET(self) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            if self.path.partition("?")[0] != "/v1/models":
                raise ApiError(404, "not_found_error", f"Not found: {self.path}")
            self.app.authenticate(headers)
        except ApiError as error:
            self._send_error(error)
            return
        model = {"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5"}
        self._send(200, {"data": [model], "has_more": False, "first_id": model["id"], "last_id": model["id"]})


class AnthropicServer(BackgroundServer):
    """Serves `POST /v1/messages` on 127.0.0.1 from a background thread; a context manager."""

    handler_class = _Handler

    def __init__(
        self, script: list[dict[str, Any]] | None = None, requests_log: Path | None = None, api_key: str | None = None
    ) -> None:
        super().__init__(script, requests_log)
        self.api_key = api_key
        self._cache: set[str] = set()

    def authenticate(self, headers: dict[str, str]) -> None:
        sent = api_key(headers)
        if not sent:
            raise ApiError(401, "authentication_error", "x-api-key header is required")
        if self.api_key is not None and sent != self.api_key:
            raise ApiError(401, "authentication_error", "invalid x-api-key")

    def check(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> None:
        if path != "/v1/messages":
            raise ApiError(404, "not_found_error", f"Not found: {path}")
        self.authenticate(headers)
        if not headers.get("anthropic-version"):
            raise ApiError(400, "invalid_request_error", "anthropic-version: header is required")
        validate(body)

    def entry_error(self, spec: dict[str, Any]) -> ApiError:
        return scripted_error(spec)

    def bad_request(self, message: str) -> ApiError:
        return ApiError(400, "invalid_request_error", message)

    def reply_headers(self) -> dict[str, str]:
        return {"request-id": f"req_test_{len(self.requests):04d}"}

    def reply(self, entry: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        content = entry.get("content")
        if content is None:
            content = []
            if entry.get("thinking"):
                content.append(
                    {"type": "thinking", "thinking": entry["thinking"], "signature": sign(entry["thinking"])}
                )
            if entry.get("text"):
                content.append({"type": "text", "text": entry["text"]})
            uses = entry.get("tool_use") or []
            for use in [uses] if isinstance(uses, dict) else uses:
                self._ids += 1
                content.append(
                    {
                        "type": "tool_use",
                        "id": f"toolu_{self._ids:04d}",
                        "name": use["name"],
                        "input": use.get("input", {}),
                    }
                )
        has_tool_use = any(block["type"] == "tool_use" for block in content)
        return {
            "id": f"msg_{len(self.requests):04d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": entry.get("stop_reason", "tool_use" if has_tool_use else "end_turn"),
            "stop_sequence": None,
            "usage": self._usage(body, content),
        }

    def _usage(self, body: dict[str, Any], content: list[dict[str, Any]]) -> dict[str, int]:
        """Breakpoint prefixes seen before are read from the cache; the longest new one is written."""
        digest = hashlib.sha256(body["model"].encode())
        prefixes: list[tuple[str, int]] = []  # (digest, characters) at each breakpoint
        chars = 0
        for text, marked in prompt_blocks(body):
            digest.update(text.encode())
            chars += len(text)
            if marked:
                prefixes.append((digest.hexdigest(), chars))
        read_chars = max((size for key, size in prefixes if key in self._cache), default=0)
        write_chars = prefixes[-1][1] - read_chars if prefixes and prefixes[-1][0] not in self._cache else 0
        self._cache.update(key for key, _ in prefixes)
        total = tokens(len(json.dumps(body)))
        read = tokens(read_chars) if read_chars else 0
        write = tokens(write_chars) if write_chars else 0
        return {
            "input_tokens": max(1, total - read - write),
            "output_tokens": tokens(len(json.dumps(content))),
            "cache_creation_input_tokens": write,
            "cache_read_input_tokens": read,
        }


def scripted_error(spec: dict[str, Any]) -> ApiError:
    headers = {}
    if "retry_after" in spec:
        headers["retry-after"] = str(spec["retry_after"])
    if "retry_after_ms" in spec:
        headers["retry-after-ms"] = str(spec["retry_after_ms"])
    return ApiError(int(spec["status"]), spec["type"], spec.get("message", ""), headers)


def main() -> None:
    serve_from_command_line(
        __doc__, lambda args, script: AnthropicServer(script, args.requests_log), leave_with_parent=True
    )


if __name__ == "__main__":
    main()
