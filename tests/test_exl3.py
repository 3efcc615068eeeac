"""The EXL3 backend's CPU-side parts and what the GPU runtimes share: `exl3:` specs, one-line errors
without a directory or without exllamav3, which library a bare directory is for, the settings that
reach a runtime's constructor (speculation, draft model) and key the per-process runtimes, the EXL3
context plan, draft-model checks, and the driver's speculation counting. No GPU needed: runtime classes
are replaced by recording ones, generators by scripted ones."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from atlas_agent.errors import ModelError
from atlas_agent.modelfiles.vram import PAGE_SIZE, CacheType
from atlas_agent.models import exl2, exl3, open_provider
from atlas_agent.models.backends import Exl3Backend, backend_for
from atlas_agent.models.engine import SpeculationStats
from atlas_agent.models.gpu_files import directory_kind, draft_directory, plan_cache
from atlas_agent.models.gpu_runtime import GpuRuntime
from atlas_agent.models.options import parse_model_options
from atlas_agent.serve.open import open_engine
from helpers import atlas, one_line_error

QWEN_CONFIG = Path(__file__).parent / "data" / "vram" / "qwen2.5-coder-32b-config.json"
SMOLLM2_CONFIG = Path(__file__).parent / "data" / "vram" / "smollm2-135m-config.json"
GiB = 1024**3


def model_dir(
    path: Path, method: str | None = "exl3", config: Path = QWEN_CONFIG, vocab: dict[str, int] | None = None
) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    data = json.loads(config.read_text())
    if method is not None:
        data["quantization_config"] = {"quant_method": method, "bits": 4.0, "head_bits": 6}
    (path / "config.json").write_text(json.dumps(data))
    if vocab is not None:
        (path / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE", "vocab": vocab}}))
    return path


def test_exl3_specs_parse_and_validate() -> None:
    backend = backend_for("exl3:/models/qwen-exl3")
    assert isinstance(backend, Exl3Backend) and backend.target == "/models/qwen-exl3"
    assert backend.without_address() == "exl3:/models/qwen-exl3" and backend.address() is None
    backend.check_speculation("draft")  # in-process: every speculation applies
    with pytest.raises(ModelError, match=r"unknown model 'exl3:': .*exl3:MODEL_DIR"):
        backend_for("exl3:")


def test_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(atlas("serve", "exl3:missing", cwd=tmp_path))
    assert "is no model directory (no config.json): see `atlas models prepare`" in line
    with pytest.raises(ModelError, match="is no model directory"):
        open_provider(f"exl3:{tmp_path / 'missing'}")


def test_exl3_without_exllamav3_or_cuda_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(atlas("serve", f"exl3:{model_dir(tmp_path / 'm')}", cwd=tmp_path))
    assert "atlas-agent[gpu3]" in line or "CUDA" in line, line
    assert "EXL3" in line, line


def test_a_bare_directory_is_exl3_when_its_config_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert directory_kind(model_dir(tmp_path / "three", "exl3")) == "exl3"
    assert directory_kind(model_dir(tmp_path / "two", "exl2")) == "exl2"
    assert directory_kind(model_dir(tmp_path / "fp16", None)) == "exl2"
    assert directory_kind(tmp_path / "nothing") == "exl2"
    opened: list[tuple[str, Path]] = []
    for module in (exl2, exl3):
        kind = module.__name__.rsplit(".", 1)[-1]
        monkeypatch.setattr(module, "load_runtime", lambda path, _kind=kind, **_settings: opened.append((_kind, path)))
    for name in ("three", "two", "fp16"):
        open_engine(str(tmp_path / name))
    assert [kind for kind, _ in opened] == ["exl3", "exl2", "exl2"]
    assert opened[0][1] == tmp_path / "three"


class RecordingRuntime:
    """A runtime class's constructor, as load_cached calls it, without a GPU."""

    made: ClassVar[list[dict[str, Any]]] = []

    def __init__(
        self,
        model_dir: Path,
        *,
        agents: int = 1,
        context: int | None = None,
        cache: str | None = None,
        speculation: str = "ngram",
        draft_model: Path | None = None,
    ) -> None:
        self.settings = {"agents": agents, "context": context, "cache": cache, "speculation": speculation}
        self.settings["draft_model"] = draft_model
        self.context = 4096
        RecordingRuntime.made.append({"model_dir": model_dir, **self.settings})


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    monkeypatch.setattr(RecordingRuntime, "made", [])
    monkeypatch.setattr(exl2, "Exl2Runtime", RecordingRuntime)
    monkeypatch.setattr(exl3, "Exl3Runtime", RecordingRuntime)
    return RecordingRuntime.made


@pytest.mark.parametrize("kind", ["exl2", "exl3"])
def test_speculation_options_reach_the_runtime(kind: str, tmp_path: Path, recording: list[dict[str, Any]]) -> None:
    main, draft = model_dir(tmp_path / "main", kind), model_dir(tmp_path / "draft", kind)
    options = parse_model_options(["speculation=draft", f"draft_model={draft}"])
    provider = open_provider(f"{kind}:{main}", options)
    assert provider.name == f"{kind}:main" and provider.context_window == 4096
    assert recording[-1]["speculation"] == "draft" and recording[-1]["draft_model"] == draft
    open_provider(f"{kind}:{main}")  # the GPU default: ngram, another runtime
    assert recording[-1]["speculation"] == "ngram" and recording[-1]["draft_model"] is None
    open_provider(f"{kind}:{main}", parse_model_options(["speculation=ngram", "temperature=0.3"]))
    assert len(recording) == 2, "the same settings, defaults spelled out or not: the same runtime"
    open_engine(f"{kind}:{main}", agents=4, context=8192, cache="Q8", speculation="none")
    assert recording[-1] == {
        "model_dir": main.resolve(), "agents": 4, "context": 8192, "cache": "Q8", "speculation": "none",
        "draft_model": None,
    }  # fmt: skip
    open_engine(f"{kind}:{main}", agents=4, context=8192, cache="Q8", speculation="draft", draft_model=str(draft))
    assert recording[-1]["speculation"] == "draft" and recording[-1]["draft_model"] == draft
    assert len(recording) == 4


def test_draft_flags_go_together(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="--speculation draft needs --draft-model DIR"):
        open_engine(str(tmp_path), speculation="draft")
    with pytest.raises(ModelError, match="--draft-model needs --speculation draft"):
        open_engine(str(tmp_path), draft_model=str(tmp_path))
    line = one_line_error(atlas("serve", "exl3:x", "--draft-model", "d", cwd=tmp_path))
    assert "--draft-model needs --speculation draft" in line, line


def test_a_draft_model_must_exist_and_share_the_vocabulary(tmp_path: Path) -> None:
    vocab = {"a": 0, "b": 1, "<|im_end|>": 2}
    main = model_dir(tmp_path / "main", vocab=vocab)
    same = model_dir(tmp_path / "same", vocab=dict(vocab))
    other = model_dir(tmp_path / "other", vocab={**vocab, "c": 3})
    assert draft_directory(main, "draft", same) == same.resolve()
    assert draft_directory(main, "ngram", None) is None
    with pytest.raises(ModelError, match=r"^draft model other has another vocabulary than main"):
        draft_directory(main, "draft", other)
    with pytest.raises(ModelError, match="is no model directory"):
        draft_directory(main, "draft", tmp_path / "absent")
    with pytest.raises(ModelError, match="needs a draft model directory"):
        draft_directory(main, "draft", None)
    with pytest.raises(ModelError, match="needs speculation=draft, not ngram"):
        draft_directory(main, "ngram", same)


def test_a_draft_model_is_planned_on_top_of_the_model(tmp_path: Path) -> None:
    main = model_dir(tmp_path / "main")
    quantized, fp16 = model_dir(tmp_path / "d", "exl3", SMOLLM2_CONFIG), model_dir(tmp_path / "f", None, SMOLLM2_CONFIG)
    alone = plan_cache(main, 48 * GiB, agents=1, paged=True, context=8192)
    with_draft = plan_cache(main, 48 * GiB, agents=1, paged=True, context=8192, draft=quantized)
    with_fp16 = plan_cache(main, 48 * GiB, agents=1, paged=True, context=8192, draft=fp16)
    assert alone.draft_weights == 0 < with_draft.draft_weights < with_fp16.draft_weights, "FP16 counts at 16 bits"
    assert with_draft.quant_format == "exl3"
    assert with_draft.option(CacheType.Q4).context <= alone.option(CacheType.Q4).context


def test_the_exl3_context_comes_from_the_planner_or_the_models_window(tmp_path: Path) -> None:
    runtime = exl3.Exl3Runtime.__new__(exl3.Exl3Runtime)
    assert runtime._plan(model_dir(tmp_path / "q"), 80 * GiB, 4, 16384, None, None) == 4
    assert runtime.plan is not None and runtime.context == 16384 and runtime.cache_type is runtime.plan.chosen
    moe = json.loads(QWEN_CONFIG.read_text()) | {"num_experts": 64, "max_position_embeddings": 40000}
    (tmp_path / "moe").mkdir()
    (tmp_path / "moe" / "config.json").write_text(json.dumps(moe))
    assert runtime._plan(tmp_path / "moe", 80 * GiB, 2, None, None, None) == 2
    assert runtime.plan is None and runtime.cache_type is CacheType.Q8
    assert runtime.context == 32768 and runtime.context % PAGE_SIZE == 0
    runtime._plan(tmp_path / "moe", 80 * GiB, 2, 5000, "fp16", None)
    assert (runtime.context, runtime.cache_type) == (4864, CacheType.FP16)


class CountingJob:
    """A job as both libraries keep its draft counters."""

    def __init__(self, words: list[str], identifier: int, rounds: list[tuple[int, int]]) -> None:
        self.words, self.identifier, self.rounds = words, identifier, rounds
        self.accepted_draft_tokens = self.rejected_draft_tokens = 0


class DraftingGenerator:
    """Each iterate() verifies one round of each job's script (accepted, rejected), then streams a word."""

    def __init__(self) -> None:
        self.jobs: list[CountingJob] = []

    def enqueue(self, job: CountingJob) -> None:
        self.jobs.append(job)

    def cancel(self, job: CountingJob) -> None:
        self.jobs.remove(job)

    def clear_queue(self) -> None:
        self.jobs.clear()

    def iterate(self) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for job in list(self.jobs):
            if job.words == ["fail"]:  # ExLlamaV3 reaps a job that failed alone: no identifier, the job
                self.jobs.remove(job)
                results.append({"job": job, "stage": "error", "eos": True, "error": ValueError("page fault")})
                continue
            accepted, rejected = job.rounds.pop(0) if job.rounds else (0, 0)
            job.accepted_draft_tokens += accepted
            job.rejected_draft_tokens += rejected
            word = job.words.pop(0)
            result = {"identifier": job.identifier, "stage": "streaming", "eos": not job.words, "text": word}
            if not job.words:
                self.jobs.remove(job)
                result |= {"new_tokens": 3, "cached_tokens": 7, "eos_reason": "stop_token"}
            results.append(result)
        time.sleep(0.001)
        return results


def drafting_runtime(runtime_class: type[GpuRuntime], speculation: str) -> GpuRuntime:
    runtime = runtime_class.__new__(runtime_class)
    runtime.context, runtime._stops, runtime.speculation = 4096, [], speculation  # type: ignore[assignment]
    runtime.tokenizer = type("Tokenizer", (), {"encode": lambda _self, text, **_: _Ids(text)})()
    runtime.generator = DraftingGenerator()
    script = {"a b c": [(4, 0), (1, 3)], "x y z": [(0, 0), (0, 4), (2, 2)], "fail": []}

    def new_job(input_ids: _Ids, max_tokens: int, stops: Any, temperature: Any, key: int) -> CountingJob:
        return CountingJob(input_ids.text.split(), key, list(script[input_ids.text]))

    runtime._new_job = new_job  # type: ignore[method-assign]
    runtime._start_driver()
    return runtime


class _Ids:
    def __init__(self, text: str) -> None:
        self.text, self.shape = text, (1, len(text.split()))


def finish_of(runtime: GpuRuntime, prompt: str) -> Any:
    stream = runtime.generate(prompt, max_tokens=10, temperature=None, stop=[])
    while True:
        try:
            next(stream)
        except StopIteration as done:
            return done.value


@pytest.mark.parametrize("runtime_class", [exl2.Exl2Runtime, exl3.Exl3Runtime])
def test_the_driver_counts_verify_steps_per_job(runtime_class: type[GpuRuntime]) -> None:
    runtime = drafting_runtime(runtime_class, "ngram")
    assert finish_of(runtime, "a b c").speculation == SpeculationStats(
        verify_steps=2, draft_tokens=8, accepted_tokens=5
    )
    # an iteration that moved no counter (a job without a draft that step) is no verify step
    assert finish_of(runtime, "x y z").speculation == SpeculationStats(
        verify_steps=2, draft_tokens=8, accepted_tokens=2
    )
    finish = finish_of(drafting_runtime(runtime_class, "none"), "a b c")
    assert finish.speculation is None and finish.cached_tokens == 7 and finish.reason == "stop"
    with pytest.raises(ModelError, match=rf"{runtime.library} could not generate: ValueError: page fault"):
        finish_of(runtime, "fail")
    assert finish_of(runtime, "a b c").completion_tokens == 3, "a failed job leaves the driver serving"
