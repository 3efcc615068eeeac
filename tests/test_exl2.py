"""The EXL2 backend's CPU-side parts: chat templates from model directories, the paged/unpaged choice,
the cache plan it loads with, and the one-line errors a machine without a GPU gives."""

from __future__ import annotations

import importlib.metadata
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from atlas_agent.errors import ContextOverflow, ModelError
from atlas_agent.modelfiles.convert import exllama_config, quantized_bits, resolve_source
from atlas_agent.modelfiles.vram import CacheType, PlanDoesNotFit
from atlas_agent.models import exl2
from atlas_agent.models.chat_template import CHATML_TEMPLATE
from atlas_agent.models.exl2 import (
    Exl2Provider,
    Exl2Runtime,
    flash_attn_version,
    model_chat_format,
    paged_supported,
    plan_cache,
)
from atlas_agent.models.options import ModelOptions
from atlas_agent.vocabulary import Message, Sampling, ToolSpec
from helpers import atlas, one_line_error

QWEN_CONFIG = Path(__file__).parent / "data" / "vram" / "qwen2.5-coder-32b-config.json"
GiB = 1024**3


def _model_dir(tmp_path: Path, bits: float | None = 4.65, **files: object) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = json.loads(QWEN_CONFIG.read_text())
    if bits is not None:
        config["quantization_config"] = {"quant_method": "exl2", "bits": bits, "head_bits": 6}
    (tmp_path / "config.json").write_text(json.dumps(config))
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (tmp_path / name.replace("__", ".")).write_text(text)
    return tmp_path


def test_template_from_tokenizer_config_with_added_token_dicts(tmp_path: Path) -> None:
    template = "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"
    config = {"chat_template": template, "bos_token": {"content": "<s>", "lstrip": False}, "eos_token": "</s>"}
    chat = model_chat_format(_model_dir(tmp_path, tokenizer_config__json=config))
    assert (chat.bos_token, chat.eos_token) == ("<s>", "</s>")
    assert chat.render([Message(role="user", content="hi")], []) == "<s>[user]hi"


def test_template_file_wins_and_named_templates_pick_default(tmp_path: Path) -> None:
    listed = [{"name": "tool_use", "template": "TOOLS"}, {"name": "default", "template": "DEFAULT"}]
    model_dir = _model_dir(tmp_path, tokenizer_config__json={"chat_template": listed})
    assert model_chat_format(model_dir).template == "DEFAULT"
    (model_dir / "chat_template.jinja").write_text("JINJA")
    assert model_chat_format(model_dir).template == "JINJA"


def test_chatml_when_the_model_ships_no_template(tmp_path: Path) -> None:
    chat = model_chat_format(_model_dir(tmp_path, tokenizer_config__json={"eos_token": "<|im_end|>"}))
    assert chat.template == CHATML_TEMPLATE
    tool = ToolSpec(name="bash", description="run", parameters={"type": "object"})
    prompt = chat.render([Message(role="system", content="sys"), Message(role="user", content="fix")], [tool])
    assert prompt.startswith("<|im_start|>system\nsys\n\n# Tools")
    assert prompt.endswith("<|im_start|>user\nfix<|im_end|>\n<|im_start|>assistant\n")


def test_unreadable_tokenizer_config_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"cannot read .*tokenizer_config\.json"):
        model_chat_format(_model_dir(tmp_path, tokenizer_config__json="{not json"))


@pytest.mark.parametrize(
    ("installed", "paged"),
    [(None, False), ("2.5.6", False), ("2.5.7", True), ("2.7.4.post1", True), ("2.6.3+cu124torch2.4", True)],
)
def test_paged_mode_needs_flash_attn_2_5_7(monkeypatch: pytest.MonkeyPatch, installed: str | None, paged: bool) -> None:
    def version(name: str) -> str:
        if installed is None or name != "flash-attn":
            raise importlib.metadata.PackageNotFoundError(name)
        return installed

    monkeypatch.setattr(importlib.metadata, "version", version)
    assert paged_supported() is paged
    assert (flash_attn_version() is None) is (installed is None)


def test_unpaged_generators_plan_one_conversation(tmp_path: Path) -> None:
    model_dir = _model_dir(tmp_path)
    paged = plan_cache(model_dir, 24 * GiB, agents=4, paged=True, context=8192)
    unpaged = plan_cache(model_dir, 24 * GiB, agents=4, paged=False, context=8192)
    assert (paged.agents, unpaged.agents) == (4, 1)
    # four agents share the cache: a coarser cache type than one agent needs
    assert paged.chosen is not None and unpaged.chosen is CacheType.FP16
    assert paged.option(paged.chosen).context >= 8192


def test_fp16_checkpoints_are_planned_at_16_bits(tmp_path: Path) -> None:
    with pytest.raises(PlanDoesNotFit, match=r"at 16\.0 bpw needs"):
        plan_cache(_model_dir(tmp_path, bits=None), 24 * GiB, agents=1, paged=False)


def test_prepare_sources_and_outputs(tmp_path: Path) -> None:
    hf = _model_dir(tmp_path / "hf", bits=None)
    with pytest.raises(ModelError, match=r"no \*\.safetensors weights"):
        resolve_source(str(hf))
    (hf / "model.safetensors").write_bytes(b"")
    assert resolve_source(str(hf)) == hf
    assert resolve_source("local:smollm2").suffix == ".gguf"
    assert quantized_bits(hf) is None
    exl2 = _model_dir(tmp_path / "exl2", bits=4.0)
    assert quantized_bits(exl2) is None  # a config alone is no model
    (exl2 / "output.safetensors").write_bytes(b"")
    assert quantized_bits(exl2) == 4.0


def test_a_dequantized_gguf_config_is_made_readable_for_exllamav2() -> None:
    # what transformers 5 reports for SmolLM2 loaded from its GGUF
    loaded = {
        "architectures": None,
        "model_type": "llama",
        "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"},
        "quantization_config": {"quant_method": "gguf"},
        "dtype": "float16",
    }
    config = exllama_config(loaded, "LlamaForCausalLM")
    assert config["architectures"] == ["LlamaForCausalLM"] and config["rope_theta"] == 100000.0
    assert "quantization_config" not in config and config["torch_dtype"] == "float16"
    assert "quantization_config" in loaded  # the caller's dict is left alone
    kept = exllama_config({"architectures": ["Qwen2ForCausalLM"], "rope_theta": 1e6}, "X")
    assert kept["architectures"] == ["Qwen2ForCausalLM"] and kept["rope_theta"] == 1e6


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["models", "prepare", "local:smollm2", "OUT", "--bpw", "9"], "--bpw 9.0: EXL2 quantizes to 2.0-8.0"),
        (["models", "prepare", "local:smollm2", "OUT", "--head-bits", "7"], "--head-bits 7: choose one of"),
        (["models", "prepare", "nowhere", "OUT"], "nowhere is neither local:NAME, a .gguf file, nor a model"),
        (["models", "prepare", "local:tiny", "OUT"], "unknown local model 'tiny'"),
        (["serve", "exl2:missing"], "is no model directory (no config.json): see `atlas models prepare`"),
        (
            ["serve", "nothing-here"],
            "cannot serve 'nothing-here': use local:smollm2, gguf:PATH, exl2:MODEL_DIR or exl3:",
        ),
    ],
)
def test_cli_errors_are_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    assert expected in one_line_error(atlas(*args, cwd=tmp_path))


def test_exl2_without_a_gpu_build_is_one_line(tmp_path: Path) -> None:
    model_dir = _model_dir(tmp_path / "m")
    line = one_line_error(atlas("serve", f"exl2:{model_dir}", cwd=tmp_path))
    assert "exllamav2" in line or "CUDA" in line, line
    line = one_line_error(atlas("models", "prepare", "local:smollm2", "out", cwd=tmp_path))
    assert "atlas-agent[gpu]" in line or "CUDA" in line, line


class FakeTensor:
    def __init__(self, ids: list[int]) -> None:
        self.shape = (1, len(ids))


class FakeTokenizer:
    def encode(self, text: str, encode_special_tokens: bool = True) -> FakeTensor:
        return FakeTensor(list(range(len(text.split()))))


class ScriptedGenerator:
    """ExLlamaV2DynamicGenerator's queue interface: each job streams its words, one per iterate()."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.cancelled: list[int] = []

    def enqueue(self, job: dict[str, Any]) -> None:
        if job["max_new_tokens"] == 13:
            raise AssertionError("Job requires 2 pages (only 1 available)")
        self.jobs.append(job)

    def cancel(self, job: dict[str, Any]) -> None:
        self.cancelled.append(job["identifier"])
        self.jobs.remove(job)

    def clear_queue(self) -> None:
        self.jobs.clear()

    def iterate(self) -> list[dict[str, Any]]:
        results = []
        for job in list(self.jobs):
            if job["words"] == ["boom"]:
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
            word = job["words"].pop(0)
            done = not job["words"] or job["produced"] + 1 == job["max_new_tokens"]
            job["produced"] += 1
            result = {"identifier": job["identifier"], "stage": "streaming", "eos": done, "text": word}
            if done:
                self.jobs.remove(job)
                result |= {"new_tokens": job["produced"], "cached_tokens": 0, "eos_reason": "stop_token"}
            results.append(result)
        time.sleep(0.001)
        return results


def scripted_runtime() -> tuple[Exl2Runtime, ScriptedGenerator]:
    runtime = Exl2Runtime.__new__(Exl2Runtime)
    runtime.context, runtime.tokenizer, runtime._stops = 4096, FakeTokenizer(), []
    generator = ScriptedGenerator()
    runtime.generator = generator

    def new_job(input_ids: Any, max_tokens: int, stops: list[Any], temperature: float | None, key: int) -> Any:
        words = ["boom"] if input_ids.shape[1] == 1 else [f"w{i} " for i in range(input_ids.shape[1])]
        return {"words": words, "max_new_tokens": max_tokens, "identifier": key, "produced": 0}

    runtime._new_job = new_job  # type: ignore[method-assign]
    runtime._start_driver()
    return runtime, generator


def test_the_driver_serves_concurrent_jobs_and_survives_refusals_and_failures() -> None:
    runtime, generator = scripted_runtime()
    with ThreadPoolExecutor(8) as pool:

        def ask(n: int) -> str:
            return "".join(runtime.generate("x " * n, max_tokens=100, temperature=None, stop=[]))

        texts = list(pool.map(ask, range(2, 10)))
    assert texts == ["".join(f"w{i} " for i in range(n)) for n in range(2, 10)]
    # a job the generator refuses fails its caller only
    with pytest.raises(ModelError, match="Job requires 2 pages"):
        list(runtime.generate("a b c", max_tokens=13, temperature=None, stop=[]))
    # a failing iteration reaches the caller; the next job runs
    with pytest.raises(ModelError, match="illegal memory access"):
        list(runtime.generate("boom", max_tokens=5, temperature=None, stop=[]))
    assert "".join(runtime.generate("a b", max_tokens=5, temperature=None, stop=[])) == "w0 w1 "
    # a prompt that cannot fit is refused before it reaches the generator
    with pytest.raises(ContextOverflow, match="exceed the 4096-token context"):
        list(runtime.generate("a b", max_tokens=4095, temperature=None, stop=[]))
    # closing a stream early cancels its job
    stream = runtime.generate("x " * 500, max_tokens=1000, temperature=None, stop=[])
    assert next(stream) == "w0 "
    stream.close()
    deadline = time.monotonic() + 5
    while not generator.cancelled and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(generator.cancelled) == 1 and not generator.jobs


def test_a_conversations_sampling_reaches_the_generator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, _generator = scripted_runtime()
    runtime.chat = model_chat_format(_model_dir(tmp_path, tokenizer_config__json={"eos_token": "<|im_end|>"}))
    asked: list[tuple[float | None, int]] = []
    scripted_job = runtime._new_job

    def recording_job(input_ids: Any, max_tokens: int, stops: list[Any], temperature: float | None, key: int) -> Any:
        asked.append((temperature, max_tokens))
        return scripted_job(input_ids, max_tokens, stops, temperature, key)

    runtime._new_job = recording_job  # type: ignore[method-assign]
    monkeypatch.setattr(exl2, "load_runtime", lambda _model_dir, **_settings: runtime)
    provider = Exl2Provider(tmp_path, ModelOptions(temperature=0.2, max_output_tokens=900))
    for sampling in (None, Sampling(temperature=0.9, max_output_tokens=321), Sampling(max_output_tokens=5)):
        model = provider.for_instance("x", sampling=sampling)
        model.complete([Message(role="user", content="fix the bug")], [])
    assert asked == [(0.2, 900), (0.9, 321), (0.2, 5)]
    assert model.sampling == Sampling(temperature=0.2, max_output_tokens=5)
