"""`--model exl2:DIR` / `--model exl3:DIR`: agents' conversations with a GPU runtime in this process.

The provider loads (or finds) the process's runtime for the directory and the run's speculation;
each instance's model is a conversation that renders its messages with the model's template, keeps
its reply within the context window and the run's timeout, and reads tool calls from the text.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from atlas_agent.models.base import Turn
from atlas_agent.models.engine import Finish
from atlas_agent.models.gguf import reply_budget
from atlas_agent.models.gpu_runtime import GpuRuntime
from atlas_agent.models.options import GPU_SPECULATION, ModelOptions
from atlas_agent.models.toolcall_parser import read_text_turn
from atlas_agent.vocabulary import Message, Sampling, ToolSpec, Usage


def runtime_settings(options: ModelOptions) -> dict[str, Any]:
    """What a run's options ask of the runtime it loads: its speculation and draft model."""
    draft = Path(options.draft_model).expanduser() if options.draft_model else None
    return {"speculation": options.speculation_or(GPU_SPECULATION), "draft_model": draft}


class GpuModel:
    """One agent's conversation with the shared runtime."""

    def __init__(self, runtime: GpuRuntime, options: ModelOptions) -> None:
        self._runtime = runtime
        self._options = options  # the run's, under this conversation's own sampling
        self._turns = 0

    @property
    def sampling(self) -> Sampling:
        return self._options.greedy_sampling

    def complete(self, messages: list[Message], tools: list[ToolSpec]) -> Turn:
        started = time.monotonic()
        runtime = self._runtime
        prompt = runtime.chat.render(messages, tools)
        prompt_tokens = runtime.count_tokens(prompt)
        max_tokens = reply_budget(prompt_tokens, runtime.context, self._options.max_output_tokens)
        deadline = started + self._options.timeout_s
        pieces: list[str] = []
        stream = runtime.generate(prompt, max_tokens=max_tokens, temperature=self._options.temperature, stop=[])
        finish: Finish | None = None
        try:
            while time.monotonic() < deadline:
                pieces.append(next(stream))
        except StopIteration as done:
            finish = done.value
        finally:
            stream.close()  # cancels the job when the deadline cut it short
        self._turns += 1
        elapsed = time.monotonic() - started
        turn = Turn(
            text="".join(pieces),
            stop_reason=finish.reason if finish else "timeout",
            usage=Usage(
                input_tokens=prompt_tokens,
                output_tokens=finish.completion_tokens if finish else len(pieces),
                cache_read_tokens=(finish.cached_tokens or 0) if finish else 0,
                gpu_seconds=round(elapsed * self._options.gpu_count, 3),
            ),
            latency_s=round(elapsed, 3),
        )
        return read_text_turn(turn, {t.name for t in tools}, id_prefix=f"call_{self._turns}_")


class GpuProvider(ABC):
    """`KIND:MODEL_DIR`: the model loads when the provider is made; a subclass names the kind and
    loads its library's runtime in `_load`."""

    kind: ClassVar[str]

    def __init__(self, model_dir: Path, options: ModelOptions | None = None) -> None:
        self.options = options or ModelOptions()
        self.runtime = self._load(model_dir.expanduser(), **runtime_settings(self.options))
        self._name = f"{self.kind}:{model_dir.name}"

    @abstractmethod
    def _load(self, model_dir: Path, **settings: Any) -> GpuRuntime:
        """The library's runtime for `model_dir`, through its module's `load_runtime` (one per settings)."""

    @property
    def name(self) -> str:
        return self._name

    @property
    def context_window(self) -> int:
        return int(self.runtime.context)

    def for_instance(self, instance_id: str, *, variant: str = "", sampling: Sampling | None = None) -> GpuModel:
        """`sampling` overrides `-M temperature` / `max_output_tokens`."""
        return GpuModel(self.runtime, self.options.with_sampling(sampling))

    def check(self) -> None:
        """Loaded in this process: nothing to reach."""
        return None  # the model's endpoint check has nothing to do: loading it was the check
