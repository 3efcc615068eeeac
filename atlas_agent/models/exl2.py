"""EXL2 models on an NVIDIA GPU with ExLlamaV2: `--model exl2:MODEL_DIR` in-process, and the engine behind
`atlas serve exl2:MODEL_DIR`.

One `Exl2Runtime` per process owns the weights, one KV cache and ExLlamaV2's dynamic generator. The
generator is not thread-safe, so a single driver thread owns it: callers hand it jobs through a
queue and read their text from a queue of their own. Every agent's turn is a job; jobs whose
prompt starts with tokens already in the cache (the same conversation one turn later) skip their
prefill, which is what makes an agent's 30th turn as cheap as its first.

Paged mode (continuous batching, many agents decoding together) needs flash-attn >= 2.5.7; without
it the generator runs unpaged: one job at a time, the others queued, prefix reuse still on.
"""

from __future__ import annotations

import importlib.metadata
import json
import queue
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlas_agent.errors import ContextOverflow, ModelError
from atlas_agent.modelfiles.bundled import GPU_HINT
from atlas_agent.modelfiles.vram import PAGE_SIZE, CacheType, VramPlan, choose_plan, load_model_shape, plan_request
from atlas_agent.models.base import Turn
from atlas_agent.models.chat_template import CHATML_TEMPLATE, ChatFormat
from atlas_agent.models.engine import Finish, atlas_messages, atlas_tools
from atlas_agent.models.exl2_attention import route_decode_through_sdpa
from atlas_agent.models.gguf import STOP, reply_budget
from atlas_agent.models.options import ModelOptions
from atlas_agent.models.toolcall_parser import read_text_turn
from atlas_agent.vocabulary import Message, Sampling, ToolSpec, Usage

PAGED_FLASH_ATTN = (2, 5, 7)  # the first flash-attn with the block tables the paged generator needs
MAX_CONTEXT = 32768  # per conversation, unless the plan or the model allows less
PAGED_BATCH = 8  # concurrent jobs a paged generator decodes together


def flash_attn_version() -> tuple[int, ...] | None:
    """The installed flash-attn's version, read from its metadata (importing it costs seconds)."""
    try:
        raw = importlib.metadata.version("flash-attn")
    except importlib.metadata.PackageNotFoundError:
        return None
    return tuple(int(part) for part in raw.split("+")[0].split(".")[:3] if part.isdigit())


def paged_supported() -> bool:
    version = flash_attn_version()
    return version is not None and version >= PAGED_FLASH_ATTN


def _token_text(value: Any) -> str:
    """tokenizer_config.json writes special tokens as strings or as AddedToken dicts."""
    if isinstance(value, dict):
        return str(value.get("content", ""))
    return value if isinstance(value, str) else ""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def model_chat_format(model_dir: Path) -> ChatFormat:
    """The chat template a Hugging Face model directory ships: `chat_template.jinja` (how transformers
    saves it now), `chat_template.json`, or `tokenizer_config.json`'s `chat_template` (a string, or a list
    of named templates of which "default" is used). ChatML when there is none, as Qwen2.5 uses."""
    config = _read_json(model_dir / "tokenizer_config.json")
    template: Any = None
    if (model_dir / "chat_template.jinja").is_file():
        template = (model_dir / "chat_template.jinja").read_text(encoding="utf-8")
    else:
        template = _read_json(model_dir / "chat_template.json").get("chat_template") or config.get("chat_template")
    if isinstance(template, list):
        named = {str(t.get("name")): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    return ChatFormat(
        template=template if isinstance(template, str) and template.strip() else CHATML_TEMPLATE,
        bos_token=_token_text(config.get("bos_token")),
        eos_token=_token_text(config.get("eos_token")),
    )


def plan_cache(
    model_dir: Path, vram: int, agents: int, paged: bool, context: int | None = None, cache: str | None = None
) -> VramPlan:
    """The VRAM plan for this GPU: unpaged generators hold one conversation at a time, so they plan one."""
    shape = load_model_shape(model_dir)
    unquantized = shape.bpw is None  # plain FP16 safetensors load too
    request = plan_request(
        vram=vram,
        agents=agents if paged else 1,
        bpw=16.0 if unquantized else None,
        head_bits=16 if unquantized else None,
        cache_type=cache,
        min_context=context,
    )
    return choose_plan(shape, request)


@dataclass
class _Request:
    job: Any  # ExLlamaV2DynamicJob
    sink: queue.SimpleQueue[str | Finish | BaseException]


class Exl2Runtime:
    """Weights, cache, tokenizer and the dynamic generator, driven by one thread."""

    def __init__(
        self, model_dir: Path, *, agents: int = 1, context: int | None = None, cache: str | None = None
    ) -> None:
        try:
            import torch
            from exllamav2 import ExLlamaV2, ExLlamaV2Config, ExLlamaV2Tokenizer
            from exllamav2.generator import ExLlamaV2DynamicGenerator
        except ImportError as exc:
            raise ModelError(f"EXL2 models need exllamav2 and CUDA: {GPU_HINT}") from exc
        if not torch.cuda.is_available():
            raise ModelError("EXL2 models need an NVIDIA GPU: CUDA is not available here (CPU: --model local:smollm2)")
        started = time.monotonic()
        self.model_dir = model_dir
        self.paged = paged_supported()
        _, total_vram = torch.cuda.mem_get_info()
        self.plan = plan_cache(model_dir, total_vram, agents, self.paged, context, cache)
        chosen = self.plan.option(self.plan.chosen or CacheType.Q4)
        config = ExLlamaV2Config(str(model_dir))
        self.context = min(chosen.context, MAX_CONTEXT if context is None else context, config.max_seq_len)
        self.context -= self.context % PAGE_SIZE
        config.max_seq_len = self.context
        config.arch_compat_overrides(quiet=True)
        config.no_flash_attn = config.no_flash_attn or not self.paged
        if config.no_flash_attn:
            # exllamav2 0.3.2's SDPA path builds no causal mask for a prompt: prompts go through its
            # matmul attention, single decoded tokens through SDPA (exl2_attention.py)
            route_decode_through_sdpa()
        self.model = ExLlamaV2(config)
        cache_tokens = self.context * (self.plan.agents if self.paged else 1)
        self.cache = _cache_class(chosen.cache_type)(self.model, max_seq_len=cache_tokens, lazy=True)
        self.model.load_autosplit(self.cache, progress=False)
        self.tokenizer = ExLlamaV2Tokenizer(config)
        self.max_concurrency = PAGED_BATCH if self.paged else 1
        self.generator = ExLlamaV2DynamicGenerator(
            model=self.model,
            cache=self.cache,
            tokenizer=self.tokenizer,
            max_batch_size=self.max_concurrency,
            paged=self.paged,
        )
        self.chat = model_chat_format(model_dir)
        self.cache_type = chosen.cache_type
        self._stops = self._stop_conditions(STOP)
        self._start_driver()
        self.model_name = model_dir.name  # what clients of `atlas serve` ask for
        self.context_window = self.context
        self.load_s = round(time.monotonic() - started, 3)

    def count_tokens(self, text: str) -> int:
        return int(self.tokenizer.encode(text, encode_special_tokens=True).shape[-1])

    def render_prompt(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        """`Engine.render_prompt`: OpenAI messages through the model's own template."""
        return self.chat.render(atlas_messages(messages), atlas_tools(tools))

    def _stop_conditions(self, stop: list[str]) -> list[int | str]:
        """EOS, each stop string, and the id of each one that is a single (special) token: special tokens
        are not decoded into the text, so only their ids can stop on them."""
        ids = {self.tokenizer.single_id(s) for s in stop} | {self.tokenizer.eos_token_id}
        return [*sorted(i for i in ids if isinstance(i, int)), *stop]

    def _sampling(self, temperature: float | None) -> Any:
        from exllamav2.generator import ExLlamaV2Sampler

        if not temperature:  # greedy, as the in-process CPU model is by default
            return ExLlamaV2Sampler.Settings.greedy()
        return ExLlamaV2Sampler.Settings(temperature=temperature, top_p=0.95, top_k=0, min_p=0.0)

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
        stops = self._stops + [s for s in stop if s not in STOP]
        request.job = self._new_job(input_ids, max_tokens, stops, temperature, id(request))
        self._inbox.put(("add", request))
        finished = False
        try:
            while True:
                item = request.sink.get()
                if isinstance(item, BaseException):
                    finished = True
                    raise ModelError(f"ExLlamaV2 could not generate: {type(item).__name__}: {item}") from item
                if isinstance(item, Finish):
                    finished = True
                    return item
                yield item
        finally:
            if not finished:
                self._inbox.put(("cancel", request))

    def _new_job(
        self, input_ids: Any, max_tokens: int, stops: list[int | str], temperature: float | None, key: int
    ) -> Any:
        from exllamav2.generator import ExLlamaV2DynamicJob

        return ExLlamaV2DynamicJob(
            input_ids=input_ids,
            max_new_tokens=max_tokens,
            stop_conditions=stops,
            gen_settings=self._sampling(temperature),
            identifier=key,
        )

    def _start_driver(self) -> None:
        self._inbox: queue.SimpleQueue[tuple[str, _Request]] = queue.SimpleQueue()
        self._active: dict[int, _Request] = {}
        self._driver = threading.Thread(target=self._drive, name="atlas-exl2", daemon=True)
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
        for result in results:
            request = self._active.get(result.get("identifier", -1))
            if request is None or result["stage"] != "streaming":
                continue
            if result.get("text"):
                request.sink.put(result["text"])
            if result["eos"]:
                del self._active[result["identifier"]]
                request.sink.put(
                    Finish(
                        reason="length" if result.get("eos_reason") == "max_new_tokens" else "stop",
                        completion_tokens=result["new_tokens"],
                        cached_tokens=result["cached_tokens"],
                    )
                )


def _cache_class(cache_type: CacheType) -> Any:
    from exllamav2 import ExLlamaV2Cache, ExLlamaV2Cache_Q4, ExLlamaV2Cache_Q6, ExLlamaV2Cache_Q8

    classes = {CacheType.FP16: ExLlamaV2Cache, CacheType.Q8: ExLlamaV2Cache_Q8, CacheType.Q6: ExLlamaV2Cache_Q6}
    return classes.get(cache_type, ExLlamaV2Cache_Q4)


_RUNTIMES: dict[Path, Exl2Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def load_runtime(model_dir: Path, **settings: Any) -> Exl2Runtime:
    """Load a model directory once per process; later calls share it (and its cache)."""
    model_dir = model_dir.expanduser().resolve()
    with _RUNTIMES_LOCK:
        if model_dir not in _RUNTIMES:
            if not (model_dir / "config.json").is_file():
                raise ModelError(f"{model_dir} is no model directory (no config.json): see `atlas models prepare`")
            _RUNTIMES[model_dir] = Exl2Runtime(model_dir, **settings)
        return _RUNTIMES[model_dir]


class Exl2Model:
    """One agent's conversation with the shared runtime."""

    def __init__(self, runtime: Exl2Runtime, options: ModelOptions) -> None:
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


class Exl2Provider:
    """`exl2:MODEL_DIR`: the model loads when the provider is made."""

    def __init__(self, model_dir: Path, options: ModelOptions | None = None) -> None:
        self.options = options or ModelOptions()
        self.runtime = load_runtime(model_dir)
        self._name = f"exl2:{model_dir.name}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def context_window(self) -> int:
        return int(self.runtime.context)

    def for_instance(self, instance_id: str, *, variant: str = "", sampling: Sampling | None = None) -> Exl2Model:
        """`sampling` overrides `-M temperature` / `max_output_tokens`."""
        return Exl2Model(self.runtime, self.options.with_sampling(sampling))

    def check(self) -> None:
        """Loaded in this process: nothing to reach."""
