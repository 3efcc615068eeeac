"""Model options, prices and the shared retry policy (pure: no server, no sleeps)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from atlas_agent.errors import ModelError
from atlas_agent.models import open_provider
from atlas_agent.models.options import ModelOptions, Price, parse_model_options, price_for
from atlas_agent.models.retry import Retryable, RetryPolicy, call_with_retries
from atlas_agent.vocabulary import Sampling, Usage


def test_the_nearest_sampling_wins_and_unset_values_fall_through() -> None:
    run = parse_model_options(["temperature=0.2", "max_output_tokens=900", "timeout_s=5"])
    scaffold = Sampling(max_output_tokens=321)
    attempt = Sampling(temperature=0.7).over(scaffold)
    assert attempt == Sampling(temperature=0.7, max_output_tokens=321)
    resolved = run.with_sampling(attempt)
    assert isinstance(resolved, ModelOptions) and resolved.timeout_s == 5, "the rest of the options stay"
    assert resolved.sampling == attempt
    assert run.with_sampling(Sampling()).sampling == Sampling(temperature=0.2, max_output_tokens=900)
    assert run.with_sampling(None) is run
    assert ModelOptions().sampling == Sampling(temperature=None, max_output_tokens=4096), "the default is unchanged"


def test_replay_keeps_the_sampling_a_real_backend_would_use(tmp_path: Path) -> None:
    script = tmp_path / "script.yaml"
    script.write_text("default: [submit]\n")
    provider = open_provider(f"replay:{script}", parse_model_options(["max_output_tokens=900"]))
    model = provider.for_instance("x", variant="attempt-2", sampling=Sampling(temperature=0.7))
    assert model.sampling == Sampling(temperature=0.7, max_output_tokens=900)


def test_model_options_from_the_command_line() -> None:
    options = parse_model_options(
        [
            "temperature=0.2",
            "retry.max_attempts=3",
            "retry.max_outage_s=120",
            "threads=2",
            "price.input=1",
            "price.output=2",
            "price.cache_write=0",
            "price.cache_read=0",
            "thinking_budget=2048",
        ]
    )
    assert options.temperature == 0.2 and options.retry.max_attempts == 3 and options.thinking_budget == 2048
    assert options.retry.max_outage_s == 120 and options.threads == 2
    assert ModelOptions().retry.max_outage_s == 600 and ModelOptions().retry.max_attempts is None, "outages, not counts"
    assert options.price == Price(input=1, output=2, cache_write=0, cache_read=0)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["temprature=1"], "-M temprature: unknown model option"),
        (["temperature=hot"], "-M temperature:"),
        (["temperature"], "not KEY=VALUE"),
    ],
)
def test_bad_model_options_are_one_line(items: list[str], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        parse_model_options(items)


def test_prices_match_dated_ids_and_can_be_overridden() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000, cache_read_tokens=2_000_000, cache_write_tokens=0)
    sonnet = price_for("claude-sonnet-4-5-20250929")
    assert sonnet is not None and sonnet.cost(usage) == pytest.approx(3.0 + 1.5 + 0.6)
    assert price_for("claude-sonnet-4-20250514") == price_for("claude-sonnet-4")
    assert price_for("my-local-model") is None
    mine = Price(input=1, output=1, cache_write=1, cache_read=1)
    assert price_for("claude-sonnet-4-5", mine) is mine


def test_retries_honour_retry_after_and_are_recorded() -> None:
    failures = [Retryable("429 rate_limit_error", retry_after=2.5), Retryable("529 overloaded_error")]
    slept: list[float] = []

    def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "ok"

    result, records = call_with_retries(flaky, RetryPolicy(initial_wait_s=0.1), what="call", sleep=slept.append)
    assert result == "ok"
    assert [r.attempt for r in records] == [1, 2]
    assert records[0].wait_s >= 2.5 and "429" in records[0].error
    assert 0.05 <= records[1].wait_s <= 0.2
    assert slept == [r.wait_s for r in records]


def test_retries_last_as_long_as_the_outage_budget() -> None:
    attempts: list[float] = []

    def down() -> str:
        attempts.append(time.monotonic())
        raise Retryable("529 overloaded")

    policy = RetryPolicy(max_outage_s=0.3, initial_wait_s=0.05, max_wait_s=0.05)
    with pytest.raises(ModelError, match=r"still unavailable after 0\.3\d* s, past the 0\.3 s outage budget"):
        call_with_retries(down, policy, what="model m")
    assert attempts[-1] - attempts[0] == pytest.approx(0.3, abs=0.1) and len(attempts) >= 5
    before = len(attempts)
    with pytest.raises(ModelError, match="outage budget"):
        call_with_retries(down, RetryPolicy(max_outage_s=0), what="model m")
    assert len(attempts) == before + 1, "a budget of 0: the first transient error fails"


def test_retries_are_bounded_and_other_errors_pass_through() -> None:
    def always() -> str:
        raise Retryable("503 unavailable")

    with pytest.raises(ModelError, match="failed after 3 attempts: 503 unavailable"):
        call_with_retries(always, RetryPolicy(max_attempts=3), what="call", sleep=lambda _s: None)

    def broken() -> str:
        raise ValueError("not transient")

    with pytest.raises(ValueError):
        call_with_retries(broken, RetryPolicy(), what="call", sleep=lambda _s: None)
