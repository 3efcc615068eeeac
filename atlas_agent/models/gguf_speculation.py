"""Prompt-lookup (n-gram) speculation for the CPU engine, on llama-cpp-python's own draft mechanism.

`Llama.generate` asks its `draft_model` for a continuation before every forward pass and evaluates
it together with the token just chosen, keeping the drafted tokens the model would have chosen
anyway. The draft here is llama-cpp-python's prompt lookup (the continuation of the longest recent
n-gram's earlier occurrence), instrumented to count what it proposed and what was kept.

The draft is an attribute read on every call, so one loaded model serves conversations with and
without speculation: each generation sets its own (or None) under the engine's lock.

Greedy output is the same with and without speculation only if a token's logits do not depend on
how many tokens its forward pass holds. In llama.cpp's CPU kernels that holds with flash attention
over a quantized KV cache (an F16 cache switches attention kernels by batch size and, past 512
cached tokens, by thread count); load_engine configures exactly that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from llama_cpp import Llama
from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

from atlas_agent.models.engine import SpeculationStats

# The n-gram looked up. llama-cpp-python falls back to shorter ones when it has no earlier match; those
# drafts are mostly rejected, and on the CPU a rejected token costs half a forward pass: no draft then.
NGRAM_SIZE = 3
# Tokens proposed per forward pass: on the CPU each drafted token costs about half a token's pass, so
# the length follows acceptance (Hugging Face's assisted-generation schedule): +2 after a proposal
# kept whole, -1 after one cut short, between 1 and MAX_DRAFT_TOKENS.
FIRST_DRAFT_TOKENS = 3
MAX_DRAFT_TOKENS = 10


def _seen_before(ids: npt.NDArray[np.intc], size: int) -> bool:
    """Whether the last `size` tokens occurred earlier in `ids`."""
    if len(ids) <= size:
        return False
    windows = np.lib.stride_tricks.sliding_window_view(ids[:-1], size)
    return bool(np.all(windows == ids[-size:], axis=1).any())


class PromptLookup(LlamaPromptLookupDecoding):
    """Prompt lookup that scores its own proposals: each call sees the history the previous
    proposal's forward pass left, i.e. the drafted tokens the model kept and then the token it chose
    itself. A generation's last proposal is never scored (nothing follows it)."""

    def __init__(self, n_ctx: int) -> None:
        super().__init__(max_ngram_size=NGRAM_SIZE, num_pred_tokens=FIRST_DRAFT_TOKENS)
        self.stats = SpeculationStats()
        self._room = n_ctx
        self._pending: tuple[int, npt.NDArray[np.intc]] | None = None  # (history length, proposal)

    def __call__(self, input_ids: npt.NDArray[np.intc], /, **kwargs: Any) -> npt.NDArray[np.intc]:
        self._score(input_ids)
        self._pending = None
        if not _seen_before(input_ids, NGRAM_SIZE):
            return np.array([], dtype=np.intc)
        # cut to the window here, as generate() would, so that only evaluated tokens are scored
        proposal: npt.NDArray[np.intc] = super().__call__(input_ids, **kwargs)[: self._room - len(input_ids)]
        self._pending = (len(input_ids), proposal) if len(proposal) else None
        return proposal

    def _score(self, history: npt.NDArray[np.intc]) -> None:
        if self._pending is None:
            return
        start, proposal = self._pending
        following = history[start : start + len(proposal)]
        mismatches = np.flatnonzero(following != proposal[: len(following)])
        self.stats.verify_steps += 1
        self.stats.draft_tokens += len(proposal)
        accepted = int(mismatches[0]) if len(mismatches) else len(following)
        self.stats.accepted_tokens += accepted
        grown = self.num_pred_tokens + 2 if accepted == len(proposal) else self.num_pred_tokens - 1
        self.num_pred_tokens = min(max(grown, 1), MAX_DRAFT_TOKENS)


class SpeculativeLlama(Llama):
    """`Llama` whose draft model may change between generations, and which counts forward passes.

    Llama asks for the logits of every row of every batch whenever a draft model is set and copies
    them into `scores`, an n_ctx x n_vocab array (1.6 GB for SmolLM2) that it sizes only with
    `logits_all=True`; without that the copy overruns it past n_batch tokens. Only a verify batch
    needs every row, and the sampler reads them from llama.cpp's context, so `eval` asks for them
    there and copies nothing: a prompt costs one row of logits, as without speculation.
    """

    forward_passes = 0  # llama.cpp decode calls, prompt batches included

    def eval(self, tokens: Sequence[int]) -> None:
        draft = self.draft_model
        verify = isinstance(draft, PromptLookup) and len(tokens) <= 1 + MAX_DRAFT_TOKENS
        self._ctx.kv_cache_seq_rm(-1, self.n_tokens, -1)
        for start in range(0, len(tokens), self.n_batch):
            batch = list(tokens[start : start + self.n_batch])
            self._batch.set_batch(batch=batch, n_past=self.n_tokens, logits_all=verify)
            self._ctx.decode(self._batch)
            self.forward_passes += 1
            self.input_ids[self.n_tokens : self.n_tokens + len(batch)] = batch
            self.n_tokens += len(batch)
            self._requires_eval = False
