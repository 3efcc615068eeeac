"""The ExLlamaV3 backend on a real GPU: an EXL3 model loads and generates greedily (the same reply twice,
the second prompt's pages reused), cancellation, speculative decoding (n-gram and a draft model) that
keeps greedy output (token for token up to a near tie: gpu_support.assert_greedy_output_kept), and a
tool call through `atlas serve exl3:DIR`.
Skipped, with the reason, where there is no CUDA device, no exllamav3, or no EXL3 model maker.

Models: random-weight EXL3 models written by bench/synthetic_quant.py (tokenizer from
bench/synthetic_model.py), and for the real tool-call test an EXL3 instruct model named by
ATLAS_GPU_EXL3_INSTRUCT_MODEL.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="GPU tests need PyTorch with CUDA")
if not torch.cuda.is_available():
    pytest.skip("GPU tests need a CUDA device; none is visible", allow_module_level=True)
pytest.importorskip("exllamav3", reason="EXL3 GPU tests need exllamav3: pip install 'atlas-agent[gpu3]'")

from gpu_support import (  # noqa: E402
    BASH,
    SOURCE,
    TOOL_CALL,
    assert_greedy_output_kept,
    chat,
    complete,
    instruct_model_dir,
    tool_call_request,
)
from serve_harness import Server  # noqa: E402

from atlas_agent.models.exl3 import Exl3Provider, Exl3Runtime, load_runtime  # noqa: E402
from atlas_agent.models.options import ModelOptions  # noqa: E402
from atlas_agent.serve.open import open_engine  # noqa: E402
from atlas_agent.vocabulary import Message  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
try:
    from synthetic_quant import make_exl3_model
except ImportError as exc:
    pytest.skip(f"EXL3 GPU tests need bench/synthetic_quant.py's make_exl3_model: {exc}", allow_module_level=True)

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_exl3_model(tmp_path_factory.mktemp("tiny-exl3"), "tiny")


@pytest.fixture(scope="module")
def runtime(tiny_model: Path) -> Exl3Runtime:
    # through the backend, as `atlas serve exl3:DIR --speculation none --context 4096` opens it
    engine = open_engine(str(tiny_model), context=4096, speculation="none")  # a bare EXL3 directory
    assert isinstance(engine, Exl3Runtime)
    return engine


def test_load_and_greedy_generation_repeats_and_reuses_the_prompt(runtime: Exl3Runtime) -> None:
    prompt = chat(runtime, f"Here is the file:\n{SOURCE.read_text()[:3000]}\nWhere is the bug?")
    first, finish = complete(runtime, prompt, 48)
    again, second = complete(runtime, prompt, 48)
    assert 0 < finish.completion_tokens <= 48 and first
    assert again == first
    assert runtime.context == 4096 and runtime.cache_type is not None and runtime.plan is not None
    # the whole pages of the prompt are in the cache the second time
    assert second.cached_tokens is not None and second.cached_tokens >= runtime.count_tokens(prompt) // 256 * 256 - 256


def test_a_closed_stream_cancels_its_job(runtime: Exl3Runtime) -> None:
    stream = runtime.generate(chat(runtime, "Write a long essay."), max_tokens=3000, temperature=None, stop=[])
    pieces = [next(stream) for _ in range(3)]
    stream.close()
    assert pieces
    started = time.monotonic()
    _, finish = complete(runtime, chat(runtime, "Short answer."), 8)
    assert finish.completion_tokens > 0 and time.monotonic() - started < 30


def fresh_logits(runtime: Exl3Runtime) -> Callable[[Any], Any]:
    """The last position's logits of `ids`, from one forward pass of the runtime's model without a cache."""

    def logits_after(ids: Any) -> Any:
        with torch.no_grad():
            return runtime.model.forward(ids, {"attn_mode": "flash_attn_nc"})[0, -1].float().cpu()

    return logits_after


def test_ngram_speculation_leaves_greedy_output_unchanged(runtime: Exl3Runtime, tiny_model: Path) -> None:
    speculating = load_runtime(tiny_model, context=4096, speculation="ngram")
    finish = assert_greedy_output_kept(runtime, speculating, fresh_logits(runtime))
    assert finish.speculation is not None and finish.speculation.accepted_tokens > 0


def test_a_draft_model_leaves_greedy_output_unchanged(
    runtime: Exl3Runtime, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A second EXL3 model written by the same maker drafts: the same tokenizer (checked when the runtime
    loads), and with the same shape and seed the same random weights, so its drafts are mostly kept and
    acceptance is certain to be non-zero. Greedy output is kept for any draft, however poor."""
    draft = make_exl3_model(tmp_path_factory.mktemp("draft-exl3"), "tiny")
    speculating = load_runtime(tiny_model, context=4096, speculation="draft", draft_model=draft)
    finish = assert_greedy_output_kept(runtime, speculating, fresh_logits(runtime))
    assert finish.speculation is not None and finish.speculation.accepted_tokens > 0


def forcing(runtime: Exl3Runtime, text: str) -> Any:
    """`runtime._new_job`, whose jobs first emit `text`: ExLlamaV3's `Job.constrain_output_now` puts the
    tokens in place of the sampler's choice, once the job is enqueued (it needs the generator)."""
    new_job = runtime._new_job

    def forced_job(*args: Any) -> Any:
        job = new_job(*args)
        prepare = job.prepare_for_queue

        def prepare_and_force(generator: Any, serial: int, rq: bool = False) -> None:
            prepare(generator, serial, rq)
            job.constrain_output_now(text)

        job.prepare_for_queue = prepare_and_force
        return job

    return forced_job


def test_a_tool_call_goes_round_trip_through_atlas_serve(runtime: Exl3Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """A random-weight model cannot write a tool call, and test_gpu_exl2.py's tool-call test needs a real
    instruct model. So the first reply's tokens are forced (ExLlamaV3's own output injection: the tokens
    go through the generator's decoding, streaming and stop conditions, only the sampler's choice is
    replaced), and everything after the model is real: the engine streams the text, `atlas serve` parses
    it into an OpenAI tool call, the client reads it back, and the next turn, with the call and its
    result rendered by the model's template, is generated freely and reuses the first turn's pages.
    What this cannot show, that a model writes such a call, is the instruct-model test below."""
    end = runtime.chat.eos_token or "<|im_end|>"
    with Server(runtime, runtime.model_name) as server:
        model = server.client(timeout_s=120, max_output_tokens=64).for_instance("atlas__tally-1")
        system = f"You are a coding agent. The project's main file:\n{SOURCE.read_text()[:3000]}"
        messages = [Message(role="system", content=system), Message(role="user", content="List the files.")]
        with monkeypatch.context() as patch:
            patch.setattr(runtime, "_new_job", forcing(runtime, TOOL_CALL + end))
            turn = model.complete(messages, [BASH])
        assert turn.format_error is None, turn.format_error
        [call] = turn.tool_calls
        assert (call.name, call.arguments) == ("bash", {"command": "ls"})
        messages += [
            Message(role="assistant", content=turn.text, tool_calls=turn.tool_calls),
            Message(role="tool", content="README.md\nsrc\ntests", tool_call_id=call.id),
        ]
        second = model.complete(messages, [BASH])
        metrics = server.metrics()
    # the client's input_tokens are the prompt tokens that were not read from the cache
    first_prompt = turn.usage.input_tokens + turn.usage.cache_read_tokens
    assert second.usage.output_tokens > 0 and second.usage.input_tokens + second.usage.cache_read_tokens > first_prompt
    assert second.usage.cache_read_tokens >= first_prompt // 256 * 256 - 256, "the first turn's pages are reused"
    assert metrics["atlas_serve_requests_total"] == 2


@pytest.fixture(scope="module")
def instruct_model() -> Path:
    return instruct_model_dir("ATLAS_GPU_EXL3_INSTRUCT_MODEL", "an EXL3")


def test_a_real_model_writes_a_tool_call_that_is_read_back(instruct_model: Path) -> None:
    model = Exl3Provider(instruct_model, ModelOptions(max_output_tokens=128)).for_instance("atlas__tally-1")
    turn = model.complete(tool_call_request(), [BASH])
    assert turn.format_error is None, turn.format_error
    [call] = turn.tool_calls
    assert call.name == "bash" and "ls" in call.arguments.get("command", ""), turn.text
