"""The ExLlamaV2 backend on a real GPU: logits equal to transformers', load and generate, prefix
reuse across an agent's turns, cancellation, a tool call written by a real instruct model and read
back, `atlas serve` with 8 concurrent clients, and speculative decoding (n-gram and draft model:
greedy output unchanged token for token up to a near tie (gpu_support.assert_greedy_output_kept),
acceptance counted, and shown in `/metrics`). Skipped, with
the reason, where there is no CUDA device or no exllamav2.

Models: random-weight models made here (bench/synthetic_model.py, tokenizer included), and for the
tool-call test a real instruct model named by ATLAS_GPU_INSTRUCT_MODEL: an EXL2 directory, or the FP16
one `atlas models prepare local:smollm2 DIR` writes on its way (it passed on an H100 with the latter).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="GPU tests need PyTorch with CUDA")
if not torch.cuda.is_available():
    pytest.skip("GPU tests need a CUDA device; none is visible", allow_module_level=True)
pytest.importorskip("exllamav2", reason="GPU tests need exllamav2: pip install 'atlas-agent[gpu]'")

from gpu_support import (  # noqa: E402
    BASH,
    SOURCE,
    assert_greedy_output_kept,
    chat,
    complete,
    instruct_model_dir,
    tool_call_request,
)
from serve_harness import Server  # noqa: E402

from atlas_agent.models.exl2 import Exl2Provider, Exl2Runtime, load_runtime  # noqa: E402
from atlas_agent.models.options import ModelOptions  # noqa: E402
from atlas_agent.serve.open import open_engine  # noqa: E402
from atlas_agent.vocabulary import Message  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from synthetic_model import make_model  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model(tmp_path_factory.mktemp("tiny"), "tiny")


@pytest.fixture(scope="module")
def runtime(tiny_model: Path) -> Exl2Runtime:
    return load_runtime(tiny_model, context=4096, speculation="none")


def test_load_and_greedy_generation_repeats(runtime: Exl2Runtime) -> None:
    prompt = chat(runtime, "The test fails. Find the bug.")
    first, finish = complete(runtime, prompt, 48)
    again, _ = complete(runtime, prompt, 48)
    assert 0 < finish.completion_tokens <= 48 and first
    assert again == first
    assert runtime.context == 4096 and runtime.cache_type is not None


def test_the_previous_turn_is_not_prefilled_again(runtime: Exl2Runtime) -> None:
    code = SOURCE.read_text()[:6000]
    turn_1 = chat(runtime, f"Here is the file:\n{code}\nWhat does it do?")
    _, first = complete(runtime, turn_1, 8)
    turn_2 = chat(runtime, f"Here is the file:\n{code}\nWhat does it do?", "It runs the agent.", "Where is the loop?")
    _, second = complete(runtime, turn_2, 8)
    shared = runtime.count_tokens(turn_1) - 8  # the reply and the end of turn are new text
    assert second.cached_tokens is not None and second.cached_tokens >= shared
    assert second.cached_tokens / runtime.count_tokens(turn_2) > 0.9
    assert first.cached_tokens is not None


def test_a_closed_stream_cancels_its_job(runtime: Exl2Runtime) -> None:
    stream = runtime.generate(chat(runtime, "Write a long essay."), max_tokens=3000, temperature=None, stop=[])
    pieces = [next(stream) for _ in range(3)]
    stream.close()
    assert pieces
    started = time.monotonic()
    _, finish = complete(runtime, chat(runtime, "Short answer."), 8)
    assert finish.completion_tokens > 0 and time.monotonic() - started < 30


def test_sampled_replies_differ_and_respect_stop_strings(runtime: Exl2Runtime) -> None:
    prompt = chat(runtime, "Say anything.")
    texts = set()
    for _ in range(3):
        stream = runtime.generate(prompt, max_tokens=32, temperature=1.5, stop=["e"])
        text = "".join(stream)
        assert "e" not in text
        texts.add(text)
    assert len(texts) > 1 or all(t == "" for t in texts)


def test_serve_answers_8_concurrent_clients(runtime: Exl2Runtime) -> None:
    with Server(runtime, runtime.model_name) as server, ThreadPoolExecutor(8) as pool:
        # unpaged (no flash-attn) the jobs take turns: short replies keep the last one within its timeout
        provider = server.client(timeout_s=120, max_output_tokens=64)
        questions = [f"Agent {i}: the test_{i} fails, where is the bug?" for i in range(8)]
        turns = [
            pool.submit(provider.for_instance(f"a{i}").complete, [Message(role="user", content=q)], [BASH])
            for i, q in enumerate(questions)
        ]
        results = [t.result(timeout=300) for t in turns]
        metrics = server.metrics()
    assert all(r.usage.output_tokens > 0 for r in results)
    assert metrics["atlas_serve_requests_total"] == 8
    assert metrics["atlas_serve_queue_depth"] == 0 and metrics["atlas_serve_requests_in_flight"] == 0
    assert metrics["atlas_serve_decode_tokens_per_second"] > 0


@pytest.fixture(scope="module")
def instruct_model() -> Path:
    return instruct_model_dir("ATLAS_GPU_INSTRUCT_MODEL", "an EXL2")


def test_a_real_model_writes_a_tool_call_that_is_read_back(instruct_model: Path) -> None:
    provider = Exl2Provider(instruct_model, ModelOptions(max_output_tokens=128))
    model = provider.for_instance("atlas__tally-1")
    messages = tool_call_request()
    turn = model.complete(messages, [BASH])
    assert turn.format_error is None, turn.format_error
    # a model tuned on agent trajectories may list files its own way (`git ls-files`): any bash call
    [call] = turn.tool_calls
    assert call.name == "bash" and "ls" in call.arguments.get("command", ""), turn.text
    assert turn.usage.input_tokens > 50 and turn.usage.output_tokens > 0
    # the call and its result go back through the model's template; the next turn reuses the prefix
    messages += [
        Message(role="assistant", content=turn.text, tool_calls=turn.tool_calls),
        Message(role="tool", content="README.md\nsrc\ntests", tool_call_id=turn.tool_calls[0].id),
    ]
    second = model.complete(messages, [BASH])
    assert second.usage.output_tokens > 0
    assert second.usage.cache_read_tokens > turn.usage.input_tokens * 0.8


def test_logits_match_transformers(runtime: Exl2Runtime) -> None:
    """ExLlamaV2's forward pass agrees with the reference implementation on the same FP16 weights: at
    every prompt position (prompts take the masked attention) and for one token decoded against a
    cache (decode takes SDPA when flash-attn is missing)."""
    from exllamav2 import ExLlamaV2Cache

    transformers = pytest.importorskip("transformers", reason="the reference forward pass needs transformers")
    ids = runtime.tokenizer.encode(chat(runtime, "Where is the bug?"), encode_special_tokens=True)
    reference = transformers.AutoModelForCausalLM.from_pretrained(runtime.model_dir, dtype=torch.float16).cuda()
    with torch.no_grad():
        expected = reference(ids.cuda()).logits[0].float().cpu()
        vocab = expected.shape[-1]
        prompt = runtime.model.forward(ids, cache=None)[0, :, :vocab].float().cpu()
        cache = ExLlamaV2Cache(runtime.model, max_seq_len=256)
        runtime.model.forward(ids[:, :-1], cache=cache, preprocess_only=True)
        decoded = runtime.model.forward(ids[:, -1:], cache=cache)[0, -1, :vocab].float().cpu()
    scale = expected.abs().max().item()
    assert (expected - prompt).abs().max().item() < 0.05 * scale, "prompt positions differ"
    assert (expected[-1] - decoded).abs().max().item() < 0.05 * scale, "the decoded token differs"
    assert decoded.topk(5).indices.tolist() == expected[-1].topk(5).indices.tolist()


def fresh_logits(runtime: Exl2Runtime) -> Callable[[Any], Any]:
    """The last position's logits of `ids`, prefilled by the runtime's model into a cache of their own."""
    from exllamav2 import ExLlamaV2Cache

    def logits_after(ids: Any) -> Any:
        cache = ExLlamaV2Cache(runtime.model, max_seq_len=runtime.context)
        with torch.no_grad():
            return runtime.model.forward(ids, cache=cache, last_id_only=True)[0, -1].float().cpu()

    return logits_after


def test_ngram_speculation_leaves_greedy_output_unchanged(runtime: Exl2Runtime, tiny_model: Path) -> None:
    speculating = load_runtime(tiny_model, context=4096, speculation="ngram")
    assert speculating is not runtime and speculating.speculation == "ngram"
    assert load_runtime(tiny_model, context=4096, speculation="ngram") is speculating, "one per settings"
    finish = assert_greedy_output_kept(runtime, speculating, fresh_logits(runtime))
    assert finish.speculation is not None and finish.speculation.accepted_tokens > 0


def test_ngram_drafts_nothing_where_the_last_tokens_never_occurred(tiny_model: Path) -> None:
    """exllamav2 alone drafts on every step (the last token again where its trie has no match); Atlas's
    generator steps plainly unless the last 3 tokens occurred before. The first tokens of a reply end in
    the assistant header, which the prompt holds once, so none of them is a drafting step."""
    speculating = load_runtime(tiny_model, context=4096, speculation="ngram")
    prompt = chat(speculating, "Name the capital of every country you know, one per line.")
    _, finish = complete(speculating, prompt, 4)
    assert finish.speculation is not None and finish.speculation.verify_steps == 0, finish.speculation


def test_a_draft_model_leaves_greedy_output_unchanged(
    runtime: Exl2Runtime, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The draft is a second model written by the same maker: its tokenizer is trained deterministically on
    the same sources (the vocabularies are compared here, and again when the runtime loads), and with the
    same shape its random weights come from the same seed, so its drafts are mostly kept: acceptance is
    then certain to be non-zero. Greedy output is kept for any draft, however poor."""
    draft = make_model(tmp_path_factory.mktemp("draft"), "tiny")
    vocabulary = [json.loads((d / "tokenizer.json").read_text())["model"]["vocab"] for d in (tiny_model, draft)]
    assert vocabulary[0] == vocabulary[1]
    speculating = load_runtime(tiny_model, context=4096, speculation="draft", draft_model=draft)
    finish = assert_greedy_output_kept(runtime, speculating, fresh_logits(runtime))
    assert finish.speculation is not None and finish.speculation.accepted_tokens > finish.completion_tokens / 4


def test_metrics_report_speculation(tiny_model: Path) -> None:
    engine = open_engine(f"exl2:{tiny_model}", context=4096)  # `atlas serve exl2:DIR`: ngram by default
    assert isinstance(engine, Exl2Runtime) and engine.speculation == "ngram"
    with Server(engine, engine.model_name) as server:
        provider = server.client(timeout_s=120, max_output_tokens=200)
        code = SOURCE.read_text()[:2500]
        ask = Message(role="user", content=f"{code}\n{code}\nRepeat the file.")
        turn = provider.for_instance("spec").complete([ask], [])
        metrics = server.metrics()
    assert turn.usage.output_tokens > 0
    assert metrics["atlas_serve_speculation_verify_steps_total"] > 0
    assert (
        metrics["atlas_serve_speculation_draft_tokens_total"]
        >= metrics["atlas_serve_speculation_accepted_tokens_total"]
        > 0
    )
    assert 0 < metrics["atlas_serve_speculation_acceptance_rate"] <= 1
