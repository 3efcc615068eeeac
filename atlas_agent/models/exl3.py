"""EXL3 models on an NVIDIA GPU with ExLlamaV3: `--model exl3:MODEL_DIR` in-process, and the engine behind
`atlas serve exl3:MODEL_DIR` (or a bare directory whose config.json says `quant_method: exl3`).

ExLlamaV3 is ExLlamaV2's maintained successor. Its generator is always paged (its own Triton attention,
no flash-attn needed), so jobs decode together and share prompt pages: a conversation's next turn finds
its earlier pages in the cache and skips their prefill. The driver thread and job queue are
gpu_runtime.py's, as for EXL2.

Context: the VRAM planner's (modelfiles/vram.py knows EXL3 weights), for `agents` conversations. For a
model the planner cannot read (a mixture of experts, a config.json without the usual keys) the context is
min(max_position_embeddings, MAX_CONTEXT) in whole pages, with the asked cache type (default Q8).

Speculation: `ngram` drafts DRAFT_TOKENS tokens from the longest earlier occurrence (at least
NGRAM_MATCH tokens long) of the job's latest tokens, `draft` from a small model of the same tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atlas_agent.errors import ModelError
from atlas_agent.modelfiles.vram import PAGE_SIZE, CacheType, PlanDoesNotFit, VramError
from atlas_agent.models.gpu_files import MAX_CONTEXT, fit_context, plan_cache, read_json
from atlas_agent.models.gpu_provider import GpuProvider
from atlas_agent.models.gpu_runtime import DRAFT_TOKENS, PAGED_BATCH, GpuRuntime, load_cached
from atlas_agent.models.options import GPU_SPECULATION, Speculation

GPU3_HINT = "pip install 'atlas-agent[gpu3]' (exllamav3 1.6.5; its CUDA extension compiles on first use, minutes)"
NGRAM_MATCH = 3  # the shortest earlier occurrence worth drafting from (ExLlamaV3's ngram_match_min)
FALLBACK_CACHE = CacheType.Q8
_CACHE_BITS = {CacheType.Q8: 8, CacheType.Q6: 6, CacheType.Q4: 4}  # ExLlamaV3's quantized cache: k and v bits


class Exl3Runtime(GpuRuntime):
    """Weights, cache, tokenizer and ExLlamaV3's generator, driven by one thread.

    Speculating, a generation step runs the main model over each job's token and its drafted ones and
    keeps the drafted tokens it would have chosen itself; in a batch a step drafts for every job or for
    none (ExLlamaV3 cuts the drafts to the batch's shortest, and a job without an n-gram match has
    none). Without drafts a step costs what a plain one does (1 % more on an H100); with many
    concurrent jobs drafts multiply the rows of an already full step, and rejected ones are compute
    spent for nothing (8 agents lost 54 % with a draft model whose drafts were all rejected). It stays
    on (one setting per runtime); `/metrics` shows the acceptance to decide by, `speculation=none`
    turns it off.
    Greedy output is that of plain decoding up to the kernels' last bits: ExLlamaV3 computes a verify
    step and a one-token step with different kernels, so at a near tie the two may choose differently.
    """

    library = "ExLlamaV3"

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
            from exllamav3 import Generator, Tokenizer
        except ImportError as exc:
            raise ModelError(f"EXL3 models need exllamav3 and CUDA: {GPU3_HINT}") from exc
        started, draft_dir, total_vram = self._begin_load(model_dir, speculation, draft_model)
        planned_agents = self._plan(model_dir, total_vram, agents, context, cache, draft_dir)
        cache_tokens = self.context * planned_agents
        draft = None if draft_dir is None else self._load(draft_dir, cache_tokens)
        self.model, self.cache, self.config = self._load(model_dir, cache_tokens, draft[0] if draft else None)
        self.tokenizer = Tokenizer.from_config(self.config)
        self.max_concurrency = PAGED_BATCH
        self.generator = Generator(
            model=self.model,
            cache=self.cache,
            tokenizer=self.tokenizer,
            max_batch_size=self.max_concurrency,
            **self._speculative(draft),
        )
        self._loaded(model_dir, started)

    def _plan(
        self, model_dir: Path, vram: int, agents: int, context: int | None, cache: str | None, draft: Path | None
    ) -> int:
        """Sets the context and cache type; returns the conversations the cache holds."""
        try:
            self.plan = plan_cache(model_dir, vram, agents, True, context, cache, draft)
        except PlanDoesNotFit:
            raise
        except VramError:  # a shape the planner does not know: the model's own window
            self.plan = None
            trained = read_json(model_dir / "config.json").get("max_position_embeddings")
            self.cache_type = CacheType(cache.upper()) if cache else FALLBACK_CACHE
            self.context = fit_context(MAX_CONTEXT, context, trained if isinstance(trained, int) else None)
            if self.context < PAGE_SIZE:
                raise ModelError(f"{model_dir.name}: a context of {self.context} tokens is less than a page") from None
            return agents
        chosen = self.plan.option(self.plan.chosen or CacheType.Q4)
        self.cache_type = chosen.cache_type
        self.context = fit_context(chosen.context, context)
        return self.plan.agents

    def _load(self, model_dir: Path, cache_tokens: int, draft_model: Any = None) -> tuple[Any, Any, Any]:
        """Model, cache and config: the cache is made before the model loads (loading allocates it)."""
        from exllamav3 import Cache, CacheLayer_fp16, CacheLayer_quant, Config, Model

        try:
            config = Config.from_directory(str(model_dir))
            model = Model.from_config(config)
            bits = _CACHE_BITS.get(self.cache_type)
            layers: dict[str, Any] = (
                {"layer_type": CacheLayer_fp16}
                if bits is None
                else {"layer_type": CacheLayer_quant, "k_bits": bits, "v_bits": bits}
            )
            # max_history matters only to recurrent layers: the longest draft window they roll back
            history = 0 if self.speculation == "none" else DRAFT_TOKENS
            cache = Cache(model, max_num_tokens=cache_tokens, max_history=history, **layers)
            model.load(progressbar=False, draft_model=draft_model)
        except (AssertionError, ValueError, KeyError) as exc:  # ExLlamaV3 asserts what it cannot load
            raise ModelError(f"ExLlamaV3 cannot load {model_dir}: {type(exc).__name__}: {exc}") from exc
        return model, cache, config

    def _speculative(self, draft: tuple[Any, Any, Any] | None) -> dict[str, Any]:
        """The generator's speculation arguments; the draft model's cache is as large as the main one."""
        if self.speculation == "ngram":
            return {"ngram_match_min": NGRAM_MATCH, "num_draft_tokens": DRAFT_TOKENS}
        if draft is None:
            return {}
        self.draft_model, self.draft_cache, _ = draft
        return {"draft_model": self.draft_model, "draft_cache": self.draft_cache, "num_draft_tokens": DRAFT_TOKENS}

    def _eos_ids(self) -> set[int]:
        """The tokenizer's EOS and every one config.json and generation_config.json list."""
        return {self.tokenizer.eos_token_id, *self.config.eos_token_id_list}

    def _new_job(
        self, input_ids: Any, max_tokens: int, stops: list[int | str], temperature: float | None, key: int
    ) -> Any:
        from exllamav3 import Job

        return Job(
            input_ids=input_ids,
            max_new_tokens=max_tokens,  # exact, drafting or not; the generator caps it to the cache's room
            stop_conditions=stops,
            sampler=_sampler(temperature),
            identifier=key,
        )


def _sampler(temperature: float | None) -> Any:
    from exllamav3.generator.sampler import ArgmaxSampler, ComboSampler

    if not temperature:  # greedy, as the in-process CPU model is by default
        return ArgmaxSampler()
    return ComboSampler(temperature=temperature, top_p=0.95)


def load_runtime(model_dir: Path, **settings: Any) -> Exl3Runtime:
    """Load a model directory once per process and settings (agents, context, cache, speculation,
    draft_model); later calls with the same settings share it (and its cache)."""
    return load_cached(Exl3Runtime, model_dir, settings)


class Exl3Provider(GpuProvider):
    """`exl3:MODEL_DIR`: the model loads when the provider is made."""

    kind = "exl3"
    runtime: Exl3Runtime

    def _load(self, model_dir: Path, **settings: Any) -> Exl3Runtime:
        return load_runtime(model_dir, **settings)
