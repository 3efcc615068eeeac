"""Where a decode step's time goes: one-token forward passes of a random EXL2 or EXL3 model, profiled.

    python bench/gpu_profile.py --format exl2 [--shape tiny | --shape qwen32b --layers 8] [--steps 40]

Writes the model (bench/synthetic_quant.py), loads it with its library's plain API (the classes of
bench/check_synthetic_quant.py), runs --warmup one-token steps through the cache (past ExLlamaV2's
kernel tuning), then profiles --steps more twice: with PyTorch's profiler (CPU and CUDA time per
operator, so host time that leaves the GPU idle shows beside kernel time) and with cProfile (the
Python functions the host spends that time in). Prints the wall time per step, the GPU time per
step, and both tables.

--engine profiles the served path instead: the model loaded through `atlas serve`'s engine
(`open_engine`, with --speculation), a generation of --steps tokens timed from its request, and
cProfile enabled on the engine's driver thread, where the library's generator runs.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from check_synthetic_quant import PROMPT, Exl2, Exl3
from gpu_decode import timed_generation
from synthetic_model import SHAPES
from synthetic_quant import make_exl2_model, make_exl3_model


def steps(runtime: Exl2 | Exl3, token: int, past: int, count: int) -> tuple[int, int, list[float]]:
    """`count` greedy one-token steps from `past`; (last token, new past, seconds of each step)."""
    import torch

    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        logits = runtime.step(torch.tensor([[token]], dtype=torch.long), past)
        token = int(logits[0, -1].float().argmax())  # waits for the step
        seconds.append(time.perf_counter() - started)
        past += 1
    return token, past, seconds


def print_profile(prof: Any, wall_s: float, steps: int) -> None:
    """Wall and GPU-busy time per step, then the operators by host time and by GPU time."""
    events = prof.key_averages()
    gpu_us = sum(e.self_device_time_total for e in events) / steps
    print(f"profiled: wall {wall_s * 1e3:.2f} ms/step, GPU busy {gpu_us / 1e3:.2f} ms/step")
    print(events.table(sort_by="self_cpu_time_total", row_limit=20))
    print(events.table(sort_by="self_device_time_total", row_limit=15))


def print_python(python: cProfile.Profile, wall_s: float) -> None:
    print(f"cProfile: wall {wall_s * 1e3:.2f} ms/step")
    report = io.StringIO()
    pstats.Stats(python, stream=report).sort_stats("tottime").print_stats(25)
    print(report.getvalue())


def profile_plain(args: argparse.Namespace, model_dir: Path) -> None:
    """One-token steps through the library's own API, in this thread."""
    from torch.profiler import ProfilerActivity, profile

    runtime: Any = (Exl2 if args.format == "exl2" else Exl3)(model_dir)
    ids = runtime.encode(PROMPT)
    runtime.reset()
    token = int(runtime.step(ids, 0)[0, -1].float().argmax())
    token, past, warm = steps(runtime, token, ids.shape[1], args.warmup)
    print(f"warm-up: first 10 steps median {statistics.median(warm[:10]) * 1e3:.2f} ms, "
          f"last 50 median {statistics.median(warm[-50:]) * 1e3:.2f} ms")  # fmt: skip
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        token, past, timed = steps(runtime, token, past, args.steps)
    print_profile(prof, statistics.median(timed), args.steps)
    python = cProfile.Profile()
    python.enable()
    token, past, timed = steps(runtime, token, past, args.steps)
    python.disable()
    print_python(python, statistics.median(timed))


def generation(engine: Any, prompt: str, tokens: int) -> tuple[int, float]:
    """(tokens generated, seconds from request to end): a random model's text may be held back to its
    end (incomplete characters), so time from its first piece can be nothing."""
    finish, first_s, decode_s = timed_generation(engine, prompt, tokens)
    return finish.completion_tokens, first_s + decode_s


def profile_engine(args: argparse.Namespace, model_dir: Path) -> None:
    """A generation through the served engine; the generator runs on the engine's driver thread."""
    from torch.profiler import ProfilerActivity, profile

    from atlas_agent.serve.open import open_engine

    engine: Any = open_engine(f"{args.format}:{model_dir}", agents=1, context=4096, speculation=args.speculation)
    engine._stops = []  # a random model writes an end token at any step: decode a fixed length
    prompt = engine.render_prompt([{"role": "user", "content": PROMPT}], None)
    count, seconds = generation(engine, prompt, args.warmup)
    print(f"warm-up: {seconds / count * 1e3:.2f} ms/token over {count} tokens")
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        count, seconds = generation(engine, prompt, args.steps)
    print_profile(prof, seconds / count, count)
    python = cProfile.Profile()
    step = engine._step

    def profiled_step() -> None:  # cProfile sees only the thread that enables it: the driver's
        python.enable()
        try:
            step()
        finally:
            python.disable()

    engine._step = profiled_step
    count, seconds = generation(engine, prompt, args.steps)
    print_python(python, seconds / count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=("exl2", "exl3"), default="exl2")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--layers", type=int)
    parser.add_argument("--bits", type=float, default=4.0)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--atlas-attention", action="store_true", help="EXL2: the attention routing Atlas installs")
    parser.add_argument("--engine", action="store_true", help="profile the served engine, not the plain API")
    parser.add_argument("--speculation", choices=("none", "ngram"), default="none", help="with --engine")
    args = parser.parse_args()
    if args.atlas_attention:
        from atlas_agent.models.exl2_attention import route_decode_through_sdpa

        route_decode_through_sdpa()

    import torch

    make = make_exl2_model if args.format == "exl2" else make_exl3_model
    model_dir = make(Path(tempfile.mkdtemp()) / "model", args.shape, args.layers, args.bits)
    path = f"engine, speculation {args.speculation}" if args.engine else "plain API"
    routing = ", Atlas's attention routing" if args.atlas_attention or args.engine else ""
    print(f"{args.format} {args.shape} layers={args.layers} ({path}{routing}) on {torch.cuda.get_device_name()}")
    (profile_engine if args.engine else profile_plain)(args, model_dir)


if __name__ == "__main__":
    main()
