"""Speculative decoding on agent turns: none / ngram / draft on a GPU, single stream and 8 agents at once.

    python bench/gpu_speculation.py --format exl2 [--layers 16] [--turns 30] [--out FILE]
    python bench/gpu_speculation.py --spec exl2:DIR [--draft DIR] | --spec local:smollm2 --agents 1

The conversation is bench/agent_conversation.py's replayed 30-turn session: real file views, searches
and edits on atlas-mini, the model asked for its next message at every turn (mid-edit before each
edit). Each setting is its own engine (`open_engine`, as `atlas serve --speculation` builds it), all
loaded in one process, and every turn runs under each setting in turn (the order rotates with the
turn), so clocks and load fall on all alike. Reported per setting: decode tokens/s over all turns and
over edit turns, the replies' identity with the no-speculation ones (greedy decoding), and the
acceptance the engine counted. Then --agents conversations at once, each setting, for aggregate
tokens/s.

Without --model it writes a random-weight model of Qwen2.5-Coder-32B's layer shape with --layers layers
(bench/synthetic_quant.py), and a random "tiny" draft model of the same tokenizer. A random model's
greedy text is not an agent's, so its acceptance says nothing about real turns: what such a run
measures is what a verify step costs at this scale against a plain decode step. Pass a real model
(and a real draft) for acceptance that means something.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from agent_conversation import AgentTurn, agent_turns, turn_prompt  # noqa: E402
from gpu_decode import copy_bandwidth  # noqa: E402
from safetensors_shards import gpu_weight_bytes  # noqa: E402

from atlas_agent.serve.open import open_engine  # noqa: E402

SETTINGS = ("none", "ngram", "draft")


def run_turn(engine: Any, prompt: str, tokens: int) -> dict[str, Any]:
    """One reply: its text, decoded tokens, seconds from first piece to end, and speculation counts."""
    started = time.perf_counter()
    first: float | None = None
    pieces: list[str] = []
    stream = engine.generate(prompt, max_tokens=tokens, temperature=None, stop=[])
    while True:
        try:
            pieces.append(next(stream))
            first = first or time.perf_counter()
        except StopIteration as done:
            end = time.perf_counter()
            finish = done.value
            break
    stats = finish.speculation
    return {
        "text": "".join(pieces),
        "tokens": finish.completion_tokens,
        "decode_s": end - (first or end),
        "total_s": end - started,
        "verify_steps": stats.verify_steps if stats else 0,
        "drafted": stats.draft_tokens if stats else 0,
        "accepted": stats.accepted_tokens if stats else 0,
    }


def single_stream(
    engines: dict[str, Any], turns: list[AgentTurn], tokens: int, save: Callable[[dict[str, Any]], None]
) -> None:
    """Every turn under every setting, the order rotating with the turn; `save` gets the rows so far after each."""
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in engines}
    names = list(engines)
    for turn in turns:
        shift = turn.number % len(names)
        for name in names[shift:] + names[:shift]:
            engine = engines[name]
            prompt = turn_prompt(engine.render_prompt, turn)
            if engine.count_tokens(prompt) + tokens > engine.context_window:
                continue  # the conversation has outgrown the window: the turn is left out for every setting
            row = run_turn(engine, prompt, tokens) | {"turn": turn.number, "kind": turn.kind}
            rows[name].append(row)
        save({"single_stream": summarize(rows), "rows": rows})


def rate(rows: list[dict[str, Any]]) -> float:
    """Decode tokens/s over the rows: tokens after each reply's first piece over their seconds."""
    seconds = sum(r["decode_s"] for r in rows)
    return sum(r["tokens"] - 1 for r in rows) / seconds if seconds else 0.0


def summarize(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    plain = {r["turn"]: r["text"] for r in rows.get("none", [])}
    summary: dict[str, Any] = {}
    for name, taken in rows.items():
        edits = [r for r in taken if r["kind"] == "edit"]
        drafted, accepted, steps = (sum(r[k] for r in taken) for k in ("drafted", "accepted", "verify_steps"))
        summary[name] = {
            "turns": len(taken),
            "tokens_per_s": round(rate(taken), 1),
            "edit_turns_tokens_per_s": round(rate(edits), 1),
            "identical_to_none": sum(plain.get(r["turn"]) == r["text"] for r in taken),
            "acceptance_rate": round(accepted / drafted, 3) if drafted else None,
            "accepted_per_verify_step": round(accepted / steps, 2) if steps else None,
        }
    base = summary.get("none", {})
    for entry in summary.values():
        if base.get("tokens_per_s"):
            entry["speedup"] = round(entry["tokens_per_s"] / base["tokens_per_s"], 3)
        if base.get("edit_turns_tokens_per_s"):  # none before the first edit turn
            entry["edit_speedup"] = round(entry["edit_turns_tokens_per_s"] / base["edit_turns_tokens_per_s"], 3)
    return summary


def together(engine: Any, turns: list[AgentTurn], agents: int, tokens: int) -> float:
    """Aggregate decode tokens/s of `agents` conversations at once, each at a different turn."""
    picked = [turns[(i * 7 + 2) % len(turns)] for i in range(agents)]
    prompts = [turn_prompt(engine.render_prompt, t) for t in picked]
    produced: list[int] = []
    lock = threading.Lock()

    def agent(prompt: str) -> None:
        row = run_turn(engine, prompt, tokens)
        with lock:
            produced.append(row["tokens"])

    threads = [threading.Thread(target=agent, args=(p,)) for p in prompts]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(produced) / (time.perf_counter() - started)


def make_models(args: argparse.Namespace) -> tuple[str, Path]:
    from synthetic_quant import make_exl2_model, make_exl3_model, scratch_dir

    maker = make_exl2_model if args.format == "exl2" else make_exl3_model
    root = scratch_dir()
    model = maker(root / "main", "qwen32b", args.layers, args.bits)
    return f"{args.format}:{model}", maker(root / "draft", "tiny", None, args.bits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", help="exl2:DIR, exl3:DIR or local:smollm2 (default: random models of --format)")
    parser.add_argument("--draft", type=Path, help="draft model directory (default with random models: a tiny one)")
    parser.add_argument("--format", choices=("exl2", "exl3"), default="exl2")
    parser.add_argument("--layers", type=int, default=16, help="layers of the random main model")
    parser.add_argument("--bits", type=float, default=4.0)
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--tokens", type=int, default=128, help="tokens per reply")
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--context", type=int, default=16384)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    spec, draft = (args.spec, args.draft) if args.spec else make_models(args)
    engines = {}
    for name in args.settings.split(","):
        if name == "draft" and draft is None:
            continue
        engines[name] = open_engine(
            spec,
            agents=args.agents,
            context=args.context,
            speculation=name,
            draft_model=str(draft) if name == "draft" else None,
        )
    results: dict[str, Any] = {"spec": spec, "draft": str(draft)}

    def save(more: dict[str, Any]) -> None:
        """Results so far to --out, so a run stopped part-way still leaves its finished turns."""
        results.update(more)
        if args.out:
            args.out.write_text(json.dumps(results, indent=2))

    turns = agent_turns(args.turns)
    single_stream(engines, turns, args.tokens, save)
    kind, _, target = spec.partition(":")
    if kind in ("exl2", "exl3"):
        import torch

        results["gpu"] = torch.cuda.get_device_name()
        results["roofline_tokens_per_s"] = round(copy_bandwidth() / gpu_weight_bytes(Path(target)), 1)
    if args.agents > 1:
        # A first batch of a new shape can stall for seconds (the single-stream turns showed 1.5-3.8 s
        # before a first token), longer than a whole round: round 0 warms every engine up and is kept
        # apart; the timed rounds alternate the settings' order
        aggregate: dict[str, list[float]] = {name: [] for name in engines}
        for round_ in range(3):
            for name in list(engines)[:: 1 if round_ % 2 == 0 else -1]:
                aggregate[name].append(round(together(engines[name], turns, args.agents, args.tokens), 1))
        results[f"aggregate_{args.agents}_agents"] = {n: round(statistics.mean(r[1:]), 1) for n, r in aggregate.items()}
        results[f"aggregate_{args.agents}_agents_rounds"] = aggregate
    print(json.dumps({k: v for k, v in results.items() if k != "rows"}, indent=2))
    save({})


if __name__ == "__main__":
    main()
