"""Prompt-lookup speculation on the CPU path: reply tokens/s with `-M speculation=none` and `=ngram`.

    python bench/cpu_speculation.py [--rounds 3] [--threads 2] [--max-tokens 300]

Loads the bundled SmolLM2-135M once and asks it, greedily, to repeat or edit code it is shown (the
files of atlas-mini's repositories): the turns where prompt lookup has something to copy. The two
settings share one loaded model and alternate within each round (the order flips every round), so
load on the machine falls on both alike. Prints per-setting tokens/s (prompt evaluation included,
the same in both), whether every reply was identical, and the acceptance of drafted tokens.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout

from atlas_agent.models import open_provider
from atlas_agent.models.gguf import LocalProvider
from atlas_agent.models.options import parse_model_options
from atlas_agent.tasks import MINI_SUITE_DIR
from atlas_agent.vocabulary import Message

REPOS = MINI_SUITE_DIR / "repos"
FILES = ("tally/tally/money.py", "semverkit/semverkit/version.py", "hoard/hoard/backends/memory.py")
ASKS = (
    "Repeat this file exactly.",
    "Show this file again with a one-line docstring added to every function that lacks one.",
)
SETTINGS = ("none", "ngram")


def conversations() -> list[list[Message]]:
    system = Message(role="system", content="You are a careful programmer.")
    return [
        [system, Message(role="user", content=f"```python\n{(REPOS / name).read_text()[:2400]}```\n{ask}")]
        for name in FILES
        for ask in ASKS
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=300)
    args = parser.parse_args()
    providers: dict[str, LocalProvider] = {}
    for setting in SETTINGS:
        items = [f"speculation={setting}", f"threads={args.threads}", f"max_output_tokens={args.max_tokens}"]
        provider = open_provider("local:smollm2", parse_model_options(items))
        assert isinstance(provider, LocalProvider)
        providers[setting] = provider
    engine = providers["ngram"].engine
    tokens = dict.fromkeys(SETTINGS, 0)
    seconds: dict[str, list[float]] = {s: [] for s in SETTINGS}
    replies: dict[str, list[str]] = {s: [] for s in SETTINGS}
    for round_ in range(args.rounds):
        order = SETTINGS if round_ % 2 == 0 else SETTINGS[::-1]
        for messages in conversations():
            for setting in order:
                started = time.perf_counter()
                turn = providers[setting].for_instance("bench").complete(messages, [])
                seconds[setting].append(time.perf_counter() - started)
                tokens[setting] += turn.usage.output_tokens
                replies[setting].append(turn.text)
    identical = sorted(replies["none"]) == sorted(replies["ngram"]) and replies["none"][0] == replies["ngram"][0]
    for setting in SETTINGS:
        total = sum(seconds[setting])
        print(
            f"{setting:>6}: {tokens[setting]} tokens in {total:.1f} s = {tokens[setting] / total:.1f} tokens/s"
            f" (median turn {statistics.median(seconds[setting]):.2f} s)"
        )
    stats = engine.speculation
    print(f"speedup {sum(seconds['none']) / sum(seconds['ngram']):.2f}x; identical replies: {identical}")
    print(
        f"drafted {stats.draft_tokens} tokens in {stats.verify_steps} verify steps, accepted {stats.accepted_tokens}"
        f" ({stats.accepted_tokens / max(stats.draft_tokens, 1):.0%}, "
        f"{stats.accepted_tokens / max(stats.verify_steps, 1):.2f} per step)"
    )


if __name__ == "__main__":
    main()
