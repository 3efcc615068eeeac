"""What the GPU runtime tests share: a greedy completion read to its end, and a chat prompt with a bash tool."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from atlas_agent.models.engine import Finish
from atlas_agent.vocabulary import Message, ToolSpec

BASH = ToolSpec(
    name="bash",
    description="Run a shell command and return its output.",
    parameters={"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
)
TOOL_CALL = '<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>'
SOURCE = Path(__file__).resolve().parent.parent / "atlas_agent" / "runner.py"  # a long real file to quote
# How far apart two tokens' logits may lie, as a share of the largest |logit|, where greedy replies with
# and without speculation part: the rounding test_logits_match_transformers allows between two
# implementations of the same weights
NEAR_TIE = 0.05


def complete(runtime: Any, prompt: str, max_tokens: int) -> tuple[str, Finish]:
    """A greedy reply's text and its Finish, through the runtime's streaming `generate`."""
    stream = runtime.generate(prompt, max_tokens=max_tokens, temperature=None, stop=[])
    pieces: list[str] = []
    while True:
        try:
            pieces.append(next(stream))
        except StopIteration as done:
            return "".join(pieces), done.value


def chat(runtime: Any, *contents: str) -> str:
    """The prompt for a conversation of alternating user and assistant `contents`, with the bash tool."""
    turns = [Message(role="user" if i % 2 == 0 else "assistant", content=c) for i, c in enumerate(contents)]
    return runtime.chat.render([Message(role="system", content="You fix bugs."), *turns], [BASH])


def instruct_model_dir(variable: str, what: str) -> Path:
    """The real instruct model the environment `variable` names, else the test is skipped."""
    value = os.environ.get(variable)
    if not value:
        pytest.skip(f"set {variable} to {what} instruct model directory for the tool-call test")
    return Path(value)


def tool_call_request() -> list[Message]:
    """A conversation asking for exactly TOOL_CALL."""
    return [
        Message(role="system", content="You are a coding agent. Always answer with exactly one tool call."),
        Message(role="user", content=f"List the files. Answer with exactly this and nothing else:\n{TOOL_CALL}"),
    ]


def repeated_code(runtime: Any) -> str:
    """A prompt in which a code file appears twice: n-grams of the file find their continuation."""
    code = SOURCE.read_text()[:2500]
    return chat(runtime, f"Here is the file:\n{code}\nAnd here it is again:\n{code}\nRepeat it once more.")


@contextmanager
def streamed_token_ids(runtime: Any) -> Iterator[list[int]]:
    """The ids of the tokens the runtime's generator streams while the block runs. Both libraries put a
    chunk's ids beside its text in the results of `iterate`; this reads them on their way to the runtime
    and changes nothing."""
    ids: list[int] = []
    iterate = runtime.generator.iterate

    def reading() -> Any:
        results = iterate()
        for result in results:
            if result.get("stage") == "streaming" and result.get("token_ids") is not None:
                ids.extend(result["token_ids"].flatten().tolist())
        return results

    runtime.generator.iterate = reading
    try:
        yield ids
    finally:
        del runtime.generator.iterate


def assert_greedy_output_kept(
    plain: Any, speculating: Any, logits_after: Callable[[Any], Any], tokens: int = 256
) -> Finish:
    """Greedy output with speculation is the output without it, token for token, up to one near tie.

    A verify pass computes a kept token together with the drafts after it, in other kernels than a
    one-token step, so its logits differ in their last bits. Where the plain model rates its top two
    tokens that close, the replies may part: random weights rate many pairs that close (on EXL2 with a
    draft model the replies parted after 251 characters). A wrong acceptance or an off-by-one parts at a
    token the plain model does not rate near its choice. So the replies must agree up to their first
    differing token, and there the two tokens' logits, from a fresh forward pass of the plain model over
    the prompt and the tokens both replies share (`logits_after(ids)`), lie within NEAR_TIE."""
    import torch

    prompt = repeated_code(plain)
    with streamed_token_ids(plain) as expected:
        _, without = complete(plain, prompt, tokens)
    with streamed_token_ids(speculating) as ids:
        _, finish = complete(speculating, prompt, tokens)
    assert without.speculation is None and finish.speculation is not None
    assert finish.completion_tokens == without.completion_tokens >= 200, "a reply long enough to compare"
    parted = next((i for i, (a, b) in enumerate(zip(expected, ids, strict=False)) if a != b), None)
    if parted is None:
        assert len(ids) == len(expected) > 0
        print(f"speculation kept all {len(ids)} greedy tokens")
    else:
        prompt_ids = plain.tokenizer.encode(prompt, encode_special_tokens=True)
        shared = torch.tensor([expected[:parted]], dtype=prompt_ids.dtype)
        logits = logits_after(torch.cat([prompt_ids, shared], dim=-1))
        gap = abs(float(logits[expected[parted]] - logits[ids[parted]])) / float(logits.abs().max())
        print(f"parted from greedy at token {parted} of {len(expected)}, {gap:.4f} of the largest logit apart")
        assert gap <= NEAR_TIE, (
            f"parted at token {parted} of {len(expected)}: {expected[parted]} without speculation, {ids[parted]} "
            f"with it, {gap:.3f} of the largest logit apart, more than a near tie ({NEAR_TIE})"
        )
    stats = finish.speculation
    assert stats.verify_steps > 0 and stats.draft_tokens >= stats.accepted_tokens, stats
    assert stats.verify_steps <= finish.completion_tokens
    return finish
