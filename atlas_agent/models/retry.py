"""Retries for model calls, shared by every HTTP backend.

A backend says which failures are transient (`Retryable`, carrying the server's `retry-after` when
it sent one); everything else fails at once. A model that keeps failing transiently is having an
outage (an overloaded or restarting server, a rate limit): the call waits it out with capped,
jittered exponential backoff, never shorter than what the server asked for, until the outage
budget (`-M retry.max_outage_s`) is spent, and then fails in one line. Every wait is announced as
one warning line (logged: a command-line run shows it on stderr) and recorded, so it shows up in
the trajectory.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, Field

from atlas_agent.errors import ModelError
from atlas_agent.vocabulary import RetryRecord

T = TypeVar("T")
logger = logging.getLogger(__name__)
# 2**40 initial waits is past any sensible cap: the exponent stops growing there
_MAX_DOUBLINGS = 40


class Retryable(Exception):
    """A transient failure (429, 5xx, 529 overloaded, connection error) worth another attempt."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryPolicy(BaseModel):
    # how long a model may stay unavailable before its call fails; 0 fails at the first transient error
    max_outage_s: float = Field(600.0, ge=0)
    # a cap on attempts besides the outage budget (1: never retry); None: as many as the budget allows
    max_attempts: int | None = Field(None, ge=1)
    initial_wait_s: float = Field(1.0, ge=0)
    max_wait_s: float = Field(60.0, ge=0)

    def wait_for(self, attempt: int, retry_after: float | None) -> float:
        """The backoff after failed attempt number `attempt`, never shorter than the server's retry-after."""
        backoff = min(self.max_wait_s, self.initial_wait_s * 2 ** min(attempt - 1, _MAX_DOUBLINGS))
        jittered = backoff * random.uniform(0.5, 1.0)  # spread out workers that failed together
        return float(jittered if retry_after is None else max(jittered, retry_after))

    def next_wait(self, attempt: int, retry_after: float | None, outage_s: float) -> float | None:
        """How long to wait before the next attempt; None when the attempts or the outage budget are spent.
        The last wait is cut to what the budget has left, so the final attempt comes as the budget ends."""
        left = self.max_outage_s - outage_s
        if left <= 0 or (self.max_attempts is not None and attempt >= self.max_attempts):
            return None
        return round(min(self.wait_for(attempt, retry_after), left), 3)

    def limits(self) -> str:
        """What a call gives up after, as the notices say it."""
        attempts = f" or {self.max_attempts} attempts" if self.max_attempts is not None else ""
        return f"{seconds(self.max_outage_s)} s{attempts}"


def seconds(value: float) -> str:
    """A duration for a person: whole seconds from 10 s on, two significant digits below."""
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def call_with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str,
    sleep: Callable[[float], None] | None = None,
) -> tuple[T, list[RetryRecord]]:
    """Run `call`, retrying `Retryable` failures while the outage lasts no longer than the policy allows;
    returns the result and the retries it took. `what` names the model in the notices and the error."""
    records: list[RetryRecord] = []
    outage_began: float | None = None  # when the first attempt failed: a slow reply is no outage until then
    attempt = 0
    while True:
        attempt += 1
        try:
            return call(), records
        except Retryable as exc:
            failure = exc
        now = time.monotonic()
        outage_began = now if outage_began is None else outage_began
        outage_s = now - outage_began
        wait = policy.next_wait(attempt, failure.retry_after, outage_s)
        if wait is None:
            raise ModelError(gave_up(what, policy, attempt, outage_s, failure)) from failure
        records.append(RetryRecord(attempt=attempt, wait_s=wait, error=str(failure)))
        logger.warning(
            "%s unavailable (%s): retrying in %s s (outage %s s so far, gives up after %s)",
            what, failure, seconds(wait), seconds(outage_s), policy.limits(),
        )  # fmt: skip
        (sleep or time.sleep)(wait)


def gave_up(what: str, policy: RetryPolicy, attempts: int, outage_s: float, failure: Retryable) -> str:
    if policy.max_attempts is not None and attempts >= policy.max_attempts:
        return f"{what} failed after {attempts} attempts: {failure}"
    return (
        f"{what} still unavailable after {seconds(outage_s)} s, past the {seconds(policy.max_outage_s)} s outage "
        f"budget (-M retry.max_outage_s=SECONDS waits longer): {failure}"
    )
