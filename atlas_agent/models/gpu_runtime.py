"""The part of the GPU runtimes that does not depend on the library: ExLlamaV2 (exl2.py) and ExLlamaV3
(exl3.py) each load a model, a cache, a tokenizer and a generator with the same queue interface
(`enqueue`, `cancel`, `iterate`, `clear_queue`), and this module drives it.

The generators are not thread-safe, so a single driver thread owns one: callers hand it jobs through a
queue and read their text from a queue of their own. Every agent's turn is a job; jobs whose prompt
starts with tokens already in the cache (the same conversation one turn later) skip their prefill.

Speculative decoding happens inside the generator (n-gram drafting or a draft model); both libraries
count each job's drafted tokens as accepted or rejected. The driver reads those counters after every
`iterate()`: one iteration is one forward pass of the main model over every generating job, so an
iteration that moved a job's counters is one verify step of that job. The pass that ends a job counts
only the drafted tokens the library resolved before the end (ExLlamaV2 none after an end token,
ExLlamaV3 all of them, as rejected).
"""

from __future__ import annotations

import inspect
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

from atlas_agent.errors import ContextOverflow, ModelError
from atlas_agent.modelfiles.vram import CacheType, VramPlan
from atlas_agent.models.chat_template import ChatFormat
from atlas_agent.models.engine import Finish, SpeculationStats, atlas_messages, atlas_tools
from atlas_agent.models.gguf import STOP
from atlas_agent.models.gpu_files import draft_directory, model_chat_format
from atlas_agent.models.options import Speculation

PAGED_BATCH = 8  # concurrent jobs a paged generator decodes together
DRAFT_TOKENS = 4  # tokens drafted per verify step: both libraries' default, and within their max_q_size of 8


@dataclass
class _Request:
    job: Any  # the library's job object
    sink: queue.SimpleQueue[str | Finish | BaseException]
    stats: SpeculationStats | None = None  # None: the runtime does not speculate

    def count_verification(self) -> None:
        """After an iteration: if the job's drafted tokens moved, that pass verified a draft."""
        if self.stats is None:
            return
        accepted = int(getattr(self.job, "accepted_draft_tokens", 0))
        resolved = accepted + int(getattr(self.job, "rejected_draft_tokens", 0))
        if resolved > self.stats.draft_tokens:
            self.stats.verify_steps += 1
            self.stats.draft_tokens, self.stats.accepted_tokens = resolved, accepted


class GpuRuntime(ABC):
    """Weights, cache, tokenizer and generator, driven by one thread; an `Engine` for `atlas serve`.

    A subclass loads its library's objects in `__init__`, setting the attributes below, then calls
    `_loaded`; it builds a job in `_new_job` and may add end-of-sequence ids in `_eos_ids`.
    """

    library: ClassVar[str] = "the GPU library"  # named in generation errors
    speculation: Speculation = "none"
    max_concurrency: int = 1
    model_dir: Path
    context: int  # prompt plus reply tokens of one conversation
    cache_type: CacheType
    plan: VramPlan | None
    tokenizer: Any
    generator: Any
    chat: ChatFormat
    model_name: str  # what clients of `atlas serve` ask for
    context_window: int
    load_s: float
    _stops: list[int | str]

    def _begin_load(
        self, model_dir: Path, speculation: Speculation, draft_model: Path | None
    ) -> tuple[float, Path | None, int]:
        """The first step of loading, once the library imported: (start time, draft model directory, total
        VRAM), or one ModelError line where there is no CUDA device."""
        import torch

        if not torch.cuda.is_available():
            raise ModelError(
                f"{self.library} models need an NVIDIA GPU: CUDA is not available here (CPU: --model local:smollm2)"
            )
        started = time.monotonic()
        self.model_dir, self.speculation = model_dir, speculation
        _, total_vram = torch.cuda.mem_get_info()
        return started, draft_directory(model_dir, speculation, draft_model), int(total_vram)

    def _loaded(self, model_dir: Path, started: float) -> None:
        """The last step of loading: chat format, stop conditions, names, and the driver thread."""
        self.chat = model_chat_format(model_dir)
        self._stops = self._stop_conditions(STOP)
        self.model_name = model_dir.name
        self.context_window = self.context
        self._start_driver()
        self.load_s = round(time.monotonic() - started, 3)

    def count_tokens(self, text: str) -> int:
        return int(self.tokenizer.encode(text, encode_special_tokens=True).shape[-1])

    def render_prompt(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        """`Engine.render_prompt`: OpenAI messages through the model's own template."""
        return self.chat.render(atlas_messages(messages), atlas_tools(tools))

    def _eos_ids(self) -> set[int]:
        return {self.tokenizer.eos_token_id}

    def _stop_conditions(self, stop: list[str]) -> list[int | str]:
        """EOS, each stop string, and the id of each one that is a single (special) token: special tokens
        are not decoded into the text, so only their ids can stop on them."""
        ids = {self.tokenizer.single_id(s) for s in stop} | self._eos_ids()
        return [*sorted(i for i in ids if isinstance(i, int)), *stop]

    @abstractmethod
    def _new_job(
        self, input_ids: Any, max_tokens: int, stops: list[int | str], temperature: float | None, key: int
    ) -> Any:
        """The library's job for one generation; `key` is its identifier in the generator's results."""

    def generate(
        self, prompt: str, *, max_tokens: int, temperature: float | None, stop: list[str]
    ) -> Generator[str, None, Finish]:
        """The completion in pieces, then its Finish; closing the generator early cancels the job."""
        input_ids = self.tokenizer.encode(prompt, encode_special_tokens=True)
        if input_ids.shape[-1] + max_tokens > self.context:
            raise ContextOverflow(
                f"{input_ids.shape[-1]} prompt tokens + {max_tokens} to generate exceed the {self.context}-token "
                "context this model was loaded with"
            )
        request = _Request(job=None, sink=queue.SimpleQueue())
        request.stats = None if self.speculation == "none" else SpeculationStats()
        stops = self._stops + [s for s in stop if s not in STOP]
        request.job = self._new_job(input_ids, max_tokens, stops, temperature, id(request))
        self._inbox.put(("add", request))
        finished = False
        try:
            while True:
                item = request.sink.get()
                if isinstance(item, BaseException):
                    finished = True
                    raise ModelError(f"{self.library} could not generate: {type(item).__name__}: {item}") from item
                if isinstance(item, Finish):
                    finished = True
                    return item
                yield item
        finally:
            if not finished:
                self._inbox.put(("cancel", request))

    def _start_driver(self) -> None:
        self._inbox: queue.SimpleQueue[tuple[str, _Request]] = queue.SimpleQueue()
        self._active: dict[int, _Request] = {}
        self._driver = threading.Thread(target=self._drive, name=f"atlas-{self.library.lower()}", daemon=True)
        self._driver.start()

    def _drive(self) -> None:
        while True:
            idle = not self._active
            try:
                action, request = self._inbox.get(block=idle)
                self._apply(action, request)
                while True:
                    self._apply(*self._inbox.get_nowait())
            except queue.Empty:
                pass
            if self._active:
                self._step()

    def _apply(self, action: str, request: _Request) -> None:
        """Enqueue or cancel; a job the generator refuses fails its own caller, not the driver thread."""
        try:
            if action == "add":
                self.generator.enqueue(request.job)
                self._active[id(request)] = request
            elif self._active.pop(id(request), None) is not None:
                self.generator.cancel(request.job)
        except Exception as exc:
            request.sink.put(exc)

    def _step(self) -> None:
        try:
            results = self.generator.iterate()
        except Exception as exc:  # a CUDA error or a bug: every waiting caller hears of it
            for failed in self._active.values():
                failed.sink.put(exc)
            self._active.clear()
            self.generator.clear_queue()
            return
        for active in self._active.values():
            active.count_verification()
        for result in results:
            # ExLlamaV3 reports a job that failed alone without its identifier, but with the job
            key = result.get("identifier", getattr(result.get("job"), "identifier", None))
            request = self._active.get(key) if isinstance(key, int) else None
            if request is not None:
                self._deliver(key, request, result)

    def _deliver(self, key: int, request: _Request, result: dict[str, Any]) -> None:
        if result["stage"] == "error":
            del self._active[key]
            error = result.get("error")
            request.sink.put(error if isinstance(error, BaseException) else RuntimeError(str(error)))
            return
        if result["stage"] != "streaming":
            return
        if result.get("text"):
            request.sink.put(result["text"])
        if result["eos"]:
            del self._active[key]
            request.sink.put(
                Finish(
                    reason="length" if result.get("eos_reason") == "max_new_tokens" else "stop",
                    completion_tokens=result["new_tokens"],
                    cached_tokens=result["cached_tokens"],
                    speculation=request.stats,
                )
            )


R = TypeVar("R", bound=GpuRuntime)
_RUNTIMES: dict[tuple[Any, ...], GpuRuntime] = {}
_RUNTIMES_LOCK = threading.Lock()


def load_cached(runtime_class: Callable[..., R], model_dir: Path, settings: dict[str, Any]) -> R:
    """Load a model directory once per process and per settings; later calls with the same ones share
    it (and its cache). Settings left out count as their defaults, so they name the same runtime."""
    model_dir = model_dir.expanduser().resolve()
    try:
        bound = inspect.signature(runtime_class).bind(model_dir, **settings)
    except TypeError as exc:
        raise ModelError(f"{getattr(runtime_class, '__name__', 'runtime')}: {exc}") from None
    bound.apply_defaults()
    key = (runtime_class, *((name, _comparable(value)) for name, value in bound.arguments.items()))
    with _RUNTIMES_LOCK:
        if key not in _RUNTIMES:
            if not (model_dir / "config.json").is_file():
                raise ModelError(f"{model_dir} is no model directory (no config.json): see `atlas models prepare`")
            _RUNTIMES[key] = runtime_class(model_dir, **settings)
        return cast(R, _RUNTIMES[key])


def _comparable(value: Any) -> Any:
    return value.expanduser().resolve() if isinstance(value, Path) else value
