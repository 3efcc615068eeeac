"""ExLlamaV2's n-gram speculation, drafting only where an n-gram matches.

exllamav2 0.3.2's dynamic generator drafts on every step: where the job's trie holds no earlier
occurrence of the last tokens it proposes the last token again, so every step becomes a pass over
1 + num_draft_tokens positions. On an H100, at 16 layers of a 32B's shape, that pass took 2.0x a
one-token step, and text that repeats nothing decoded at half speed. This generator keeps the
library's trie and drafts, but runs a plain step unless some decoding job's last max_ngram - 1
tokens occurred earlier, together. exllamav2 is pinned to 0.3.2, its last release, so the method
it overrides is fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def has_ngram_match(trie: Any, tail: Sequence[int]) -> bool:
    """Whether all of `tail` (the job's last max_ngram - 1 tokens) occurred earlier: a path in the
    job's n-gram trie, whose nodes map each next token to a node in `children`. The library also
    drafts from a match of the last token alone, which nearly any text has; like ExLlamaV3's
    `ngram_match_min` (3 in exl3.py), this asks for the whole tail."""
    node = trie
    for token in tail:
        node = node.children.get(token)
        if node is None:
            return False
    return bool(node.children)


def sparing_generator_class() -> type:
    """ExLlamaV2's dynamic generator with `iterate_ngram_gen` drafting only on a match."""
    from exllamav2.generator import ExLlamaV2DynamicGenerator

    class SparingNgramGenerator(ExLlamaV2DynamicGenerator):  # type: ignore[misc]
        def iterate_ngram_gen(self, results: list[Any]) -> Any:
            drafts = super().iterate_ngram_gen(results)  # also brings each job's trie up to date
            decoding = [job for job in self.active_jobs if job.is_prefill_done()]
            width = self.max_ngram - 1
            for job in decoding:
                tail = job.sequences[0].sequence_ids.torch()[0, -width:].tolist()
                if has_ngram_match(job.ngrams, tail):
                    return drafts
            return None  # no job repeats anything: a one-token step for all

    return SparingNgramGenerator
