"""Claude through the Anthropic Messages API (`--model claude-sonnet-4-5`, or `anthropic:MODEL`).

Retries are Atlas's, not the SDK's (`max_retries=0`), so every retried call is recorded in the
trajectory with its wait. Usage is reported as billed (uncached input, output, cache writes, cache
reads) and priced from `-M price.*` or the built-in table; a model in neither costs 0.0.

The API key is read from the environment (`-M api_key_env=NAME`, default ANTHROPIC_API_KEY) and
lives only in the SDK client: nothing Atlas records, the provider's name included, contains it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from typing import Any

import anthropic
from anthropic.types import Message as ApiMessage

from atlas_agent.errors import ContextOverflow, ModelError
from atlas_agent.models.base import Turn
from atlas_agent.models.claude_format import parse_reply, reply_usage, request_body
from atlas_agent.models.options import ModelOptions, price_for
from atlas_agent.models.retry import Retryable, call_with_retries
from atlas_agent.vocabulary import Message, RetryRecord, Sampling, ToolSpec

# The API's wordings for a prompt past the window: "prompt is too long: 215000 tokens > 200000 maximum",
# and "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000, ...".
_TOO_LONG = re.compile(r"prompt is too long|exceed context limit", re.IGNORECASE)
# Models from Opus 4.7 on refuse sampling parameters: "`temperature` is deprecated for this model."
_NO_TEMPERATURE = re.compile(r"`?temperature`? is deprecated", re.IGNORECASE)
# Extended thinking needs room for the answer after the thinking budget.
ANSWER_ROOM_TOKENS = 1024
# the endpoint check before a run: how long each of its two tries waits
CHECK_TIMEOUT_S = 5.0


def _one_line(text: str) -> str:
    return " ".join(text.split())


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms` (more precise) or `retry-after`."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return max(0.0, float(raw) / scale)
        except ValueError:
            continue  # an HTTP date, which the Messages API does not send: fall back to backoff
    return None


def translate_error(model_id: str, error: anthropic.APIError) -> Exception:
    """Transient failures become `Retryable`; a prompt past the window `ContextOverflow`; the rest one line."""
    if isinstance(error, anthropic.APIConnectionError):  # timeouts included
        cause = f" ({_one_line(str(error.__cause__))})" if error.__cause__ else ""
        return Retryable(f"{type(error).__name__}: {_one_line(error.message)}{cause}")
    if not isinstance(error, anthropic.APIStatusError):
        return ModelError(f"{model_id}: {_one_line(error.message)}")
    status = error.status_code
    message = _one_line(error.api_message or error.message)
    described = f"{status} {error.type or 'error'}: {message}"
    # 429 rate limits, 5xx server trouble and 529 overloaded pass; everything else would fail again
    if status == 429 or status >= 500:
        return Retryable(described, retry_after(error.response.headers))
    # 413: the request is over the API's size limit, which in practice is an oversized prompt too
    if status == 413 or (status == 400 and _TOO_LONG.search(message)):
        return ContextOverflow(f"{model_id}: {message}")
    return ModelError(f"{model_id}: {described}")


class ClaudeModel:
    """One conversation; the HTTP client is shared by every instance of the run (it is thread-safe)."""

    def __init__(self, client: anthropic.Anthropic, model_id: str, options: ModelOptions) -> None:
        self._client = client
        self._model_id = model_id
        self._options = options  # the run's, under this conversation's own sampling

    def settings(self) -> dict[str, Any]:
        """create() arguments besides the prompt. Thinking needs max_tokens above its budget and forbids a
        temperature. The SDK no longer takes `temperature` (newer models reject it), so it travels as an
        extra body field, and only when one was asked for."""
        budget = self._options.thinking_budget
        if budget is not None:
            max_tokens = max(self._options.max_output_tokens, budget + ANSWER_ROOM_TOKENS)
            return {"max_tokens": max_tokens, "thinking": {"type": "enabled", "budget_tokens": budget}}
        settings: dict[str, Any] = {"max_tokens": self._options.max_output_tokens}
        if self._options.temperature is not None:
            settings["extra_body"] = {"temperature": self._options.temperature}
        return settings

    @property
    def sampling(self) -> Sampling:
        """What is sent: with extended thinking, no temperature and max_tokens above the budget."""
        settings = self.settings()
        temperature = settings.get("extra_body", {}).get("temperature")
        return Sampling(temperature=temperature, max_output_tokens=settings["max_tokens"])

    def _create(self, messages: list[Message], tools: list[ToolSpec]) -> tuple[ApiMessage, list[RetryRecord]]:
        arguments = {"model": self._model_id, **self.settings(), **request_body(messages, tools)}

        def call() -> ApiMessage:
            try:
                reply: ApiMessage = self._client.messages.create(**arguments)
                return reply
            except anthropic.APIError as exc:
                raise translate_error(self._model_id, exc) from exc

        return call_with_retries(call, self._options.retry, what=f"model claude:{self._model_id}")

    def complete(self, messages: list[Message], tools: list[ToolSpec]) -> Turn:
        started = time.monotonic()
        try:
            reply, retries = self._create(messages, tools)
        except ModelError as exc:
            if self._options.temperature is None or not _NO_TEMPERATURE.search(str(exc)):
                raise
            # A model without sampling parameters: the rest of the conversation runs at its default
            # temperature, and the refusal stays on record as the first attempt.
            self._options = self._options.model_copy(update={"temperature": None})
            reply, later = self._create(messages, tools)
            refused = RetryRecord(attempt=1, wait_s=0.0, error=f"{exc} (asked again without temperature)")
            retries = [refused, *(r.model_copy(update={"attempt": r.attempt + 1}) for r in later)]
        text, calls, passed_back = parse_reply(reply)
        usage = reply_usage(reply)
        price = price_for(self._model_id, self._options.price)
        usage.cost_usd = price.cost(usage) if price is not None else 0.0
        return Turn(
            text=text,
            tool_calls=calls,
            usage=usage,
            # what the agent waited for this turn, backoff included (the waits are in `retries`)
            latency_s=round(time.monotonic() - started, 3),
            stop_reason=reply.stop_reason or "",
            retries=retries,
            provider_blocks=passed_back,
        )


class ClaudeProvider:
    def __init__(self, model_id: str, options: ModelOptions | None = None) -> None:
        self.model_id = model_id
        self.options = options or ModelOptions()
        key = os.environ.get(self.options.api_key_env, "").strip()
        if not key:
            raise ModelError(
                f"set {self.options.api_key_env} to an Anthropic API key to use {model_id} "
                "(or -M api_key_env=NAME to read it from another variable)"
            )
        self._client = anthropic.Anthropic(
            api_key=key,
            base_url=self.options.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None,
            max_retries=0,  # call_with_retries retries, and records each attempt
            timeout=self.options.timeout_s,
        )

    @property
    def context_window(self) -> None:
        """Not known here: the scaffold's own setting stands."""
        return None

    @property
    def name(self) -> str:
        return f"claude:{self.model_id}"

    def check(self) -> None:
        """Lists one model (free, and it needs the key), with one retry: an API that cannot be reached or
        refuses the key fails in one line; any other answer is an API that is there."""
        client = self._client.with_options(timeout=CHECK_TIMEOUT_S, max_retries=1)
        try:
            client.models.list(limit=1)
        except anthropic.APIConnectionError as exc:  # timeouts included
            cause = _one_line(str(exc.__cause__ or exc.message))
            raise ModelError(
                f"model claude:{self.model_id}: cannot reach {client.base_url} ({cause}): check the network, "
                "or -M base_url / ANTHROPIC_BASE_URL"
            ) from None
        except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as exc:
            described = f"{exc.status_code} {exc.type or 'error'}: {_one_line(exc.api_message or exc.message)}"
            raise ModelError(
                f"model claude:{self.model_id}: the API refused the key in {self.options.api_key_env} ({described}): "
                "set it to a valid Anthropic API key"
            ) from None
        except anthropic.APIStatusError:
            return  # overloaded, rate-limited, or a gateway without the models list: the run's retries take it

    def for_instance(self, instance_id: str, *, variant: str = "", sampling: Sampling | None = None) -> ClaudeModel:
        """`sampling` overrides `-M temperature` / `max_output_tokens`; extended thinking ignores temperature."""
        return ClaudeModel(self._client, self.model_id, self.options.with_sampling(sampling))
