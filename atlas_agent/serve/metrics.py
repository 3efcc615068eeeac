"""Server counters and gauges, rendered in the Prometheus text exposition format for `GET /metrics`.

Only the event loop updates and reads them, so they need no lock.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from atlas_agent.models.engine import Finish, SpeculationStats

# decode speed is averaged over this many recent requests: recent enough to show a slowdown
# (a longer context, more concurrent agents), long enough not to jump with every request
DECODE_WINDOW = 32
PREFIX = "atlas_serve"


def _number(value: float) -> str:
    # counters stay exact integers: "%g" would round a large token count
    return str(value) if isinstance(value, int) or not value.is_integer() else str(int(value))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass
class Metrics:
    slots: int  # generations that may run at once (the engine's max_concurrency)
    model_name: str
    requests: int = 0
    errors: Counter[int] = field(default_factory=Counter)  # by HTTP status
    waiting: int = 0
    running: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prefill_tokens: int = 0
    # reuse ratios only count requests whose engine reported reuse: an unknown is not a zero
    reported_prompt_tokens: int = 0
    reused_prompt_tokens: int = 0
    speculation: SpeculationStats | None = None  # None until a request reports speculation
    _decode: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=DECODE_WINDOW))

    def record(self, prompt_tokens: int, finish: Finish, decode_s: float) -> None:
        """One finished generation; `decode_s` runs from its first piece of text to its end."""
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += finish.completion_tokens
        cached = min(finish.cached_tokens or 0, prompt_tokens)
        self.prefill_tokens += prompt_tokens - cached
        if finish.cached_tokens is not None:
            self.reported_prompt_tokens += prompt_tokens
            self.reused_prompt_tokens += cached
        if finish.speculation is not None:
            self.speculation = self.speculation or SpeculationStats()
            self.speculation.add(finish.speculation)
        # the first piece came with the prefill; the tokens after it are pure decoding
        if finish.completion_tokens > 1 and decode_s > 0:
            self._decode.append((finish.completion_tokens - 1, decode_s))

    def decode_tokens_per_s(self) -> float:
        seconds = sum(s for _, s in self._decode)
        return sum(n for n, _ in self._decode) / seconds if seconds > 0 else 0.0

    def render(self) -> str:
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: dict[str, float]) -> None:
            lines.extend([f"# HELP {PREFIX}_{name} {help_text}", f"# TYPE {PREFIX}_{name} {kind}"])
            lines.extend(f"{PREFIX}_{name}{labels} {_number(value)}" for labels, value in samples.items())

        metric("info", "gauge", "The served model.", {f'{{model="{_label(self.model_name)}"}}': 1})
        metric("slots", "gauge", "Generations the engine runs at once.", {"": self.slots})
        metric("requests_total", "counter", "Chat completion requests received.", {"": self.requests})
        errors: dict[str, float] = {f'{{status="{status}"}}': n for status, n in sorted(self.errors.items())}
        metric(
            "request_errors_total",
            "counter",
            "Chat completion requests answered with an error, by HTTP status (499: the client left).",
            errors,
        )
        metric("requests_in_flight", "gauge", "Requests being generated.", {"": self.running})
        metric("queue_depth", "gauge", "Requests waiting for a free generation slot.", {"": self.waiting})
        metric("prompt_tokens_total", "counter", "Prompt tokens of finished requests.", {"": self.prompt_tokens})
        metric("completion_tokens_total", "counter", "Generated tokens.", {"": self.completion_tokens})
        metric(
            "prefill_tokens_total",
            "counter",
            "Prompt tokens computed, not taken from the prefix cache.",
            {"": self.prefill_tokens},
        )
        metric(
            "reused_prompt_tokens_total",
            "counter",
            "Prompt tokens taken from the prefix cache.",
            {"": self.reused_prompt_tokens},
        )
        if self.reported_prompt_tokens:
            ratio = self.reused_prompt_tokens / self.reported_prompt_tokens
            metric("prefix_reuse_ratio", "gauge", "Reused / prompt tokens where the engine reports reuse.", {"": ratio})
        if self.speculation is not None:
            self._render_speculation(metric, self.speculation)
        metric(
            "decode_tokens_per_second",
            "gauge",
            f"Decode speed per request, over the last {DECODE_WINDOW} requests.",
            {"": self.decode_tokens_per_s()},
        )
        return "\n".join(lines) + "\n"

    @staticmethod
    def _render_speculation(metric: Callable[[str, str, str, dict[str, float]], None], stats: SpeculationStats) -> None:
        metric(
            "speculation_verify_steps_total",
            "counter",
            "Forward passes of the model that checked drafted tokens.",
            {"": stats.verify_steps},
        )
        metric("speculation_draft_tokens_total", "counter", "Tokens drafted and checked.", {"": stats.draft_tokens})
        metric(
            "speculation_accepted_tokens_total",
            "counter",
            "Drafted tokens the model kept.",
            {"": stats.accepted_tokens},
        )
        if stats.draft_tokens:
            rate = stats.accepted_tokens / stats.draft_tokens
            metric("speculation_acceptance_rate", "gauge", "Accepted / drafted tokens.", {"": rate})
        if stats.verify_steps:
            per_step = stats.accepted_tokens / stats.verify_steps
            metric(
                "speculation_accepted_tokens_per_step",
                "gauge",
                "Drafted tokens kept per verify step (the model's own next token not counted).",
                {"": per_step},
            )
