"""ExLlamaV2's n-gram drafting is spared where the job's last tokens never occurred before.

The trie here is built the way exllamav2 0.3.2's generator builds a job's: every window of max_ngram
(4) tokens of the sequence so far, except the last ones, is a path from the root.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from atlas_agent.models.exl2_ngram import has_ngram_match

MAX_NGRAM = 4


@dataclass
class Node:
    children: dict[int, Node] = field(default_factory=dict)


def trie_of(sequence: list[int]) -> Node:
    """The trie of a job whose sequence is `sequence`: n-grams that end before its last max_ngram tokens."""
    root = Node()
    for start in range(len(sequence) - MAX_NGRAM):
        node = root
        for token in sequence[start : start + MAX_NGRAM]:
            node = node.children.setdefault(token, Node())
    return root


def tail_of(sequence: list[int]) -> list[int]:
    return sequence[-(MAX_NGRAM - 1) :]


def test_a_repeated_line_is_drafted_from() -> None:
    line = [11, 12, 13, 14, 15]
    sequence = [1, 2, *line, 3, 4, *line[:3]]  # the job is writing the line again
    assert has_ngram_match(trie_of(sequence), tail_of(sequence))


def test_text_that_repeats_nothing_gets_a_plain_step() -> None:
    sequence = list(range(100, 140))
    assert not has_ngram_match(trie_of(sequence), tail_of(sequence))


def test_one_repeated_token_is_not_a_match() -> None:
    # the library would draft from the last token alone (7 occurred before); that is no evidence
    sequence = [7, 20, 21, 22, 23, 24, 25, 26, 30, 31, 7]
    assert not has_ngram_match(trie_of(sequence), tail_of(sequence))


def test_the_whole_tail_must_have_occurred_together() -> None:
    # 31, 32 and 33 all occurred, but never in a row
    sequence = [31, 40, 32, 41, 33, 42, 43, 44, 45, 46, 31, 32, 33]
    assert not has_ngram_match(trie_of(sequence), tail_of(sequence))
    sequence = [31, 32, 33, 50, 51, 52, 53, 54, 31, 32, 33]
    assert has_ngram_match(trie_of(sequence), tail_of(sequence))


def test_the_current_occurrence_does_not_count() -> None:
    sequence = [60, 61, 62, 63, 64, 65, 66]  # the tail 64 65 66 appears once, at the end
    assert not has_ngram_match(trie_of(sequence), tail_of(sequence))
