"""Retries for model calls, shared by every HTTP backend (tenacity underneath).

A backend says which failures are transient (`Retryable`, carrying the server's `retry-after`
when it sent one); everything else fails at once. Waits are jittered exponential backoff, never
shorter than what the server asked for, and every retried attempt is recorded so it shows up in
the trajectory.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, Field
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from atlas_agent.errors import ModelError
from atlas_agent.vocabulary import RetryRecord

T = TypeVar("T")


class Retryable(Exception):
    """A transient failure (429, 5xx, 529 overloaded, connection error) worth another attempt."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryPolicy(BaseModel):
    max_attempts: int = Field(6, ge=1)
    initial_wait_s: float = Field(1.0, ge=0)
    max_wait_s: float = Field(60.0, ge=0)
    # the server's retry-after is honoured up to this long; beyond it the call fails instead
    max_retry_after_s: float = Field(300.0, ge=0)

    def wait_for(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.max_wait_s, self.initial_wait_s * 2 ** (attempt - 1))
        jittered = backoff * random.uniform(0.5, 1.0)  # spread out workers that failed together
        if retry_after is not None:
            return float(min(max(jittered, retry_after), self.max_retry_after_s))
        return float(jittered)


def call_with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str,
    sleep: Callable[[float], None] | None = None,
) -> tuple[T, list[RetryRecord]]:
    """Run `call`, retrying `Retryable` failures; returns the result and the retries it took."""
    records: list[RetryRecord] = []

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        retry_after = error.retry_after if isinstance(error, Retryable) else None
        seconds = round(policy.wait_for(state.attempt_number, retry_after), 3)
        records.append(RetryRecord(attempt=state.attempt_number, wait_s=seconds, error=str(error)))
        return seconds

    retrying = Retrying(
        retry=retry_if_exception_type(Retryable),
        stop=stop_after_attempt(policy.max_attempts),
        wait=wait,
        reraise=True,
        sleep=sleep or time.sleep,
    )
    try:
        return retrying(call), records
    except Retryable as exc:
        raise ModelError(f"{what} failed after {policy.max_attempts} attempts: {exc}") from exc
