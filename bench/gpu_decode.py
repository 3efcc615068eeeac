"""Decode speed of the ExLlamaV2 runtime that `atlas serve exl2:DIR` and `--model exl2:DIR` use.

    python bench/gpu_decode.py [--model DIR | --format fp16|exl2|exl3 --bits 4.0] [--layers 8] [--out results.json]

Without --model it writes a random-weight model with Qwen2.5-Coder-32B's layer shape
(bench/synthetic_model.py; FP16, so the bytes read per token are known exactly) and measures:

1. single-stream decode tokens/s against the memory-bandwidth roofline: bytes of the weights the GPU
   reads per token ÷ the bandwidth of a device-to-device copy measured in the same run;
2. aggregate tokens/s of 8 agents decoding at once, as a multiple of the single stream (continuous
   batching needs the paged generator, i.e. flash-attn >= 2.5.7; unpaged the jobs take turns);
3. the share of prompt tokens taken from the cache over a replayed 30-turn agent conversation
   (each turn: the previous prompt + a tool call + ~300 tokens of tool output).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing the package
sys.path.insert(0, str(ROOT / "bench"))

from safetensors_shards import gpu_weight_bytes  # noqa: E402
from synthetic_model import make_model  # noqa: E402
from synthetic_quant import make_exl2_model, make_exl3_model  # noqa: E402

from atlas_agent.models.engine import Finish  # noqa: E402
from atlas_agent.models.exl2 import load_runtime  # noqa: E402
from atlas_agent.models.gpu_runtime import GpuRuntime  # noqa: E402
from atlas_agent.vocabulary import Message, ToolCall, ToolSpec  # noqa: E402

TARGETS = {"roofline": 0.75, "aggregate_8": 4.0, "reuse_from_turn_2": 0.90}
BASH = ToolSpec(
    name="bash",
    description="Run a shell command in the repository and return its output.",
    parameters={"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
)


def copy_bandwidth(gib: int = 4, runs: int = 10) -> float:
    """Bytes per second of a device-to-device copy, counting bytes read and written."""
    import torch

    source = torch.empty(gib * 1024**3, dtype=torch.uint8, device="cuda")
    target = torch.empty_like(source)
    for _ in range(3):
        target.copy_(source)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(runs):
        target.copy_(source)
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / runs
    del source, target
    torch.cuda.empty_cache()
    return 2 * gib * 1024**3 / seconds


def timed_generation(runtime: GpuRuntime, prompt: str, max_tokens: int) -> tuple[Finish, float, float]:
    """(finish, seconds from request to first piece, seconds from first piece to the end)."""
    started = time.perf_counter()
    first: float | None = None
    stream = runtime.generate(prompt, max_tokens=max_tokens, temperature=None, stop=[])
    while True:
        try:
            next(stream)
            first = first or time.perf_counter()
        except StopIteration as done:
            end = time.perf_counter()
            return done.value, (first or end) - started, end - (first or end)


def prompt_of(runtime: GpuRuntime, tag: str, words: int = 200) -> str:
    text = " ".join(f"{tag}-{i}" for i in range(words))
    return runtime.chat.render([Message(role="user", content=text)], [])


def single_stream(runtime: GpuRuntime, tokens: int, runs: int = 3) -> float:
    rates = []
    for i in range(runs):
        finish, _, decode_s = timed_generation(runtime, prompt_of(runtime, f"single{i}"), tokens)
        rates.append((finish.completion_tokens - 1) / decode_s)
    return statistics.median(rates)


def aggregate(runtime: GpuRuntime, agents: int, tokens: int) -> float:
    produced: list[int] = []
    lock = threading.Lock()

    def agent(i: int) -> None:
        finish, _, _ = timed_generation(runtime, prompt_of(runtime, f"agent{i}"), tokens)
        with lock:
            produced.append(finish.completion_tokens)

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(agents)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(produced) / (time.perf_counter() - started)


def replayed_conversation(runtime: GpuRuntime, turns: int) -> list[dict[str, Any]]:
    """Prompt tokens, cached tokens and time to first token for each turn of a replayed agent session."""
    files = sorted((ROOT / "atlas_agent").rglob("*.py"))
    system = (ROOT / "scaffolds" / "tools.yaml").read_text()
    messages = [
        Message(role="system", content=f"You are a software engineering agent.\n{system}"),
        Message(role="user", content="The test test_allocate fails: the shares do not add up. Fix the bug."),
    ]
    rows = []
    for turn in range(1, turns + 1):
        prompt = runtime.chat.render(messages, [BASH])
        if runtime.count_tokens(prompt) + 24 > runtime.context:
            break  # the conversation has outgrown the window the model was loaded with
        finish, first_s, _ = timed_generation(runtime, prompt, 24)
        tokens = runtime.count_tokens(prompt)
        rows.append({"turn": turn, "prompt": tokens, "cached": finish.cached_tokens or 0, "ttft_s": first_s})
        path = files[turn % len(files)].relative_to(ROOT)
        call = ToolCall(id=f"call_{turn}", name="bash", arguments={"command": f"sed -n 1,40p {path}"})
        output = "\n".join((ROOT / path).read_text().splitlines()[:40])[:1200]
        messages += [
            Message(role="assistant", content="Let me read more.", tool_calls=[call]),
            Message(role="tool", content=output, tool_call_id=call.id),
        ]
    return rows


def make_random(form: str, layers: int, bits: float) -> Path:
    """A random model of Qwen2.5-Coder-32B's layer shape, FP16 (synthetic_model.py) or quantized."""
    out = Path(tempfile.mkdtemp()) / "bench"
    if form == "fp16":
        return make_model(out, "qwen32b-layers", layers)
    return (make_exl2_model if form == "exl2" else make_exl3_model)(out, "qwen32b", layers, bits)


def load(form: str, model_dir: Path, agents: int) -> Any:
    """The runtime `atlas serve` would load, without speculation: this measures plain decoding."""
    if form == "exl3":
        from atlas_agent.models.exl3 import load_runtime as load_exl3

        return load_exl3(model_dir, agents=agents, context=16384, speculation="none")
    return load_runtime(model_dir, agents=agents, context=16384, speculation="none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model directory (default: a random 32B-shaped one)")
    parser.add_argument("--format", choices=("fp16", "exl2", "exl3"), default="fp16", help="of the random model")
    parser.add_argument("--bits", type=float, default=4.0, help="bits per weight of a quantized random model")
    parser.add_argument("--layers", type=int, default=8, help="layers of the random model")
    parser.add_argument("--tokens", type=int, default=256, help="tokens to decode per measurement")
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import torch

    bandwidth = copy_bandwidth()
    model_dir = args.model or make_random(args.format, args.layers, args.bits)
    runtime = load(args.format, model_dir, args.agents)
    weights = gpu_weight_bytes(model_dir)
    roofline = bandwidth / weights
    single = single_stream(runtime, args.tokens)
    matmul_single = None
    if args.format != "exl3" and not getattr(runtime, "paged", True):
        # baseline in the same run: every step through exllamav2's matmul attention, as before decode
        # went through SDPA (models/exl2_attention.py)
        runtime.model.config.no_sdpa = True
        matmul_single = single_stream(runtime, args.tokens)
        runtime.model.config.no_sdpa = False
    together = aggregate(runtime, args.agents, args.tokens)
    rows = replayed_conversation(runtime, args.turns)
    later = rows[1:]
    reuse = sum(r["cached"] for r in later) / sum(r["prompt"] for r in later)
    results = {
        "gpu": torch.cuda.get_device_name(),
        "model": str(model_dir),
        "paged": runtime.paged,
        "cache_type": str(runtime.cache_type),
        "weight_bytes_on_gpu": weights,
        "copy_bandwidth_gb_s": round(bandwidth / 1e9, 1),
        "roofline_tokens_per_s": round(roofline, 1),
        "single_stream_tokens_per_s": round(single, 1),
        "share_of_roofline": round(single / roofline, 3),
        "single_stream_matmul_attention_tokens_per_s": matmul_single and round(matmul_single, 1),
        f"aggregate_{args.agents}_agents_tokens_per_s": round(together, 1),
        "aggregate_over_single": round(together / single, 2),
        "prefix_reuse_from_turn_2": round(reuse, 4),
        "lowest_turn_reuse": round(min(r["cached"] / r["prompt"] for r in later), 4),
        "turns": rows,
        "load_s": runtime.load_s,
    }
    summary = {k: v for k, v in results.items() if k != "turns"}
    print(json.dumps(summary, indent=2))
    print(f"targets: {TARGETS}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
