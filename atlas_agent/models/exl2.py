"""EXL2 models on an NVIDIA GPU with ExLlamaV2: `--model exl2:MODEL_DIR` in-process, and the engine behind
`atlas serve exl2:MODEL_DIR`.

One `Exl2Runtime` per process and settings owns the weights, one KV cache and ExLlamaV2's dynamic
generator, driven by one thread (gpu_runtime.py). Paged mode (continuous batching, many agents decoding
together) needs flash-attn >= 2.5.7; without it the generator runs unpaged: one job at a time, the
others queued, prefix reuse still on.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from atlas_agent.errors import ModelError
from atlas_agent.modelfiles.bundled import GPU_HINT
from atlas_agent.modelfiles.vram import CacheType
from atlas_agent.models.exl2_attention import route_decode_through_sdpa
from atlas_agent.models.exl2_ngram import sparing_generator_class
from atlas_agent.models.gpu_files import MAX_CONTEXT as MAX_CONTEXT
from atlas_agent.models.gpu_files import fit_context
from atlas_agent.models.gpu_files import model_chat_format as model_chat_format
from atlas_agent.models.gpu_files import plan_cache as plan_cache
from atlas_agent.models.gpu_provider import GpuModel, GpuProvider
from atlas_agent.models.gpu_runtime import DRAFT_TOKENS, PAGED_BATCH, GpuRuntime, load_cached
from atlas_agent.models.options import GPU_SPECULATION, Speculation

PAGED_FLASH_ATTN = (2, 5, 7)  # the first flash-attn with the block tables the paged generator needs
NGRAM_SIZE = 4  # the dynamic generator's max_ngram: drafts continue the last 3 tokens' earlier occurrence
Exl2Model = GpuModel  # one agent's conversation (the name this module gave it first)


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


class Exl2Runtime(GpuRuntime):
    """Weights, cache, tokenizer and ExLlamaV2's dynamic generator, driven by one thread.

    Speculation (`speculation`): `ngram` drafts DRAFT_TOKENS tokens from the job's own history (the
    generator's n-gram trie) on steps where the last tokens occurred before (exl2_ngram.py), `draft`
    on every step from a small model of the same tokenizer, with a cache of the main one's length.
    A drafting step runs the main model over 1 + DRAFT_TOKENS positions per job and keeps the
    drafted tokens it would have chosen itself. Such a step is not free: on an H100, at 16 layers
    of a 32B's shape, it took 2.0x a one-token step, so it pays only where it keeps more than about
    one drafted token (`speculation_accepted_tokens_per_step` in `/metrics`). With many concurrent
    jobs (paged mode) the drafted positions also multiply the rows of an already full batch. It stays
    on (one setting per runtime); `speculation=none` turns it off.
    """

    library = "ExLlamaV2"

    def __init__(
        self,
        model_dir: Path,
        *,
        agents: int = 1,
        context: int | None = None,
        cache: str | None = None,
        speculation: Speculation = GPU_SPECULATION,
        draft_model: Path | None = None,
    ) -> None:
        try:
            from exllamav2 import ExLlamaV2Config, ExLlamaV2Tokenizer
            from exllamav2.generator import ExLlamaV2DynamicGenerator
        except ImportError as exc:
            raise ModelError(f"EXL2 models need exllamav2 and CUDA: {GPU_HINT}") from exc
        started, draft_dir, total_vram = self._begin_load(model_dir, speculation, draft_model)
        self.paged = paged_supported()
        self.plan = plan_cache(model_dir, total_vram, agents, self.paged, context, cache, draft_dir)
        chosen = self.plan.option(self.plan.chosen or CacheType.Q4)
        self.cache_type = chosen.cache_type
        config = ExLlamaV2Config(str(model_dir))
        self.context = fit_context(chosen.context, context, config.max_seq_len)
        cache_tokens = self.context * (self.plan.agents if self.paged else 1)
        self.model, self.cache = self._load(config, cache_tokens)
        self.tokenizer = ExLlamaV2Tokenizer(config)
        self.max_concurrency = PAGED_BATCH if self.paged else 1
        generator_class = sparing_generator_class() if speculation == "ngram" else ExLlamaV2DynamicGenerator
        self.generator = generator_class(
            model=self.model,
            cache=self.cache,
            tokenizer=self.tokenizer,
            max_batch_size=self.max_concurrency,
            paged=self.paged,
            **self._speculative(draft_dir, cache_tokens),
        )
        self._loaded(model_dir, started)

    def _load(self, config: Any, cache_tokens: int) -> tuple[Any, Any]:
        """A model for this runtime's context, with its cache of `cache_tokens` tokens."""
        from exllamav2 import ExLlamaV2

        config.max_seq_len = self.context  # a draft model's must be at least the main model's
        config.arch_compat_overrides(quiet=True)
        config.no_flash_attn = config.no_flash_attn or not self.paged
        if config.no_flash_attn:
            # exllamav2 0.3.2's SDPA path builds no causal mask for a prompt: prompts (and verify steps,
            # which hold several positions) go through its matmul attention, single tokens through SDPA
            route_decode_through_sdpa()
        model = ExLlamaV2(config)
        cache = _cache_class(self.cache_type)(model, max_seq_len=cache_tokens, lazy=True)
        model.load_autosplit(cache, progress=False)
        return model, cache

    def _speculative(self, draft_dir: Path | None, cache_tokens: int) -> dict[str, Any]:
        """The generator's speculation arguments; the draft model's cache has the main one's dimensions."""
        if self.speculation == "ngram":
            return {"use_ngram_draft": True, "max_ngram": NGRAM_SIZE, "num_draft_tokens": DRAFT_TOKENS}
        if draft_dir is None:
            return {}
        from exllamav2 import ExLlamaV2Config

        self.draft_model, self.draft_cache = self._load(ExLlamaV2Config(str(draft_dir)), cache_tokens)
        return {"draft_model": self.draft_model, "draft_cache": self.draft_cache, "num_draft_tokens": DRAFT_TOKENS}

    def _sampling(self, temperature: float | None) -> Any:
        from exllamav2.generator import ExLlamaV2Sampler

        if not temperature:  # greedy, as the in-process CPU model is by default
            return ExLlamaV2Sampler.Settings.greedy()
        return ExLlamaV2Sampler.Settings(temperature=temperature, top_p=0.95, top_k=0, min_p=0.0)

    def _new_job(
        self, input_ids: Any, max_tokens: int, stops: list[int | str], temperature: float | None, key: int
    ) -> Any:
        from exllamav2.generator import ExLlamaV2DynamicJob

        # A speculating generator ends a job num_draft_tokens before its max_new_tokens (room for the
        # last drafted window), so it is asked for that many more, as far as the window has room: a
        # reply running to the very end of the context may stop up to DRAFT_TOKENS tokens early.
        room = self.context - int(input_ids.shape[-1])
        return ExLlamaV2DynamicJob(
            input_ids=input_ids,
            max_new_tokens=min(max_tokens + self.generator.num_draft_tokens, room),
            stop_conditions=stops,
            gen_settings=self._sampling(temperature),
            identifier=key,
        )


def _cache_class(cache_type: CacheType) -> Any:
    from exllamav2 import ExLlamaV2Cache, ExLlamaV2Cache_Q4, ExLlamaV2Cache_Q6, ExLlamaV2Cache_Q8

    classes = {CacheType.FP16: ExLlamaV2Cache, CacheType.Q8: ExLlamaV2Cache_Q8, CacheType.Q6: ExLlamaV2Cache_Q6}
    return classes.get(cache_type, ExLlamaV2Cache_Q4)


def load_runtime(model_dir: Path, **settings: Any) -> Exl2Runtime:
    """Load a model directory once per process and settings (agents, context, cache, speculation,
    draft_model); later calls with the same settings share it (and its cache)."""
    return load_cached(Exl2Runtime, model_dir, settings)


class Exl2Provider(GpuProvider):
    """`exl2:MODEL_DIR`: the model loads when the provider is made."""

    kind = "exl2"
    runtime: Exl2Runtime

    def _load(self, model_dir: Path, **settings: Any) -> Exl2Runtime:
        return load_runtime(model_dir, **settings)
