"""Single-stream decode of a 32B-scale quantized model against the bandwidth roofline, in several processes.

    python bench/gpu_roofline.py --format exl2 [--model DIR | --bits 4.0 --layers 64] [--processes 3]

Without --model it writes a random-weight model of Qwen2.5-Coder-32B's shape directly in EXL2 or EXL3
(bench/synthetic_quant.py), so a decode step reads the bytes and runs the kernels a real 4-bit 32B
does. Each process loads the model through `atlas serve`'s engine (`open_engine`), measures the
bandwidth of a device-to-device copy, warms up (--warmup-tokens steps and --warmup-s seconds), then
times --runs generations of --tokens tokens. Alongside every timed generation it records what could
make one process slower than another: the GPU's SM and memory clocks, power and temperature (NVML), the CPU the engine's
driver thread ran on, the process's CPU affinity, and the CUDA allocator's reserved bytes.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gpu_decode import copy_bandwidth, timed_generation  # noqa: E402
from safetensors_shards import gpu_weight_bytes  # noqa: E402

from atlas_agent.serve.open import open_engine  # noqa: E402


@functools.cache
def nvml_gpu() -> Any:
    """NVML, initialised once, and GPU 0's handle."""
    import pynvml

    pynvml.nvmlInit()
    return pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)


def gpu_state() -> dict[str, float]:
    """Clocks (MHz), power (W) and temperature (C) of GPU 0 as NVML reads them now."""
    pynvml, handle = nvml_gpu()
    return {
        "sm_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
        "mem_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM),
        "power_w": pynvml.nvmlDeviceGetPowerUsage(handle) / 1000,
        "temp_c": pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
    }


class ClockSampler:
    """Samples the SM clock every 50 ms while a generation runs: its median is what the decode saw."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.samples.append(gpu_state()["sm_mhz"])

    def __enter__(self) -> ClockSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def driver_cpu() -> int | None:
    """The CPU the engine's driver thread last ran on (field 39 of its /proc stat line)."""
    for thread in threading.enumerate():
        if thread.name.startswith("atlas-") and thread.native_id:
            stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
            return int(stat.rsplit(")", 1)[1].split()[36])
    return None


def decode(engine: Any, prompt: str, tokens: int) -> tuple[int, float]:
    """(tokens decoded after the first, seconds they took)."""
    finish, _, decode_s = timed_generation(engine, prompt, tokens)
    return finish.completion_tokens - 1, decode_s


def child(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if args.pin is not None:
        os.sched_setaffinity(0, {args.pin})
    bandwidth = copy_bandwidth()
    started = time.perf_counter()
    engine: Any = open_engine(f"{args.format}:{args.model}", agents=1, context=4096, speculation="none")
    load_s = time.perf_counter() - started
    # a random model writes an end token at any step: every timed generation decodes --tokens tokens
    engine._stops = []
    prompt = engine.render_prompt([{"role": "user", "content": "Count: " + " ".join(map(str, range(200)))}], None)
    cold_tokens, cold_s = decode(engine, prompt, args.tokens)
    # ExLlamaV2 tunes each matrix shape over its first 200 calls, and an idle GPU starts at low clocks:
    # warm up for at least --warmup-tokens steps and --warmup-s seconds
    warm_until, warmed = time.perf_counter() + args.warmup_s, 0
    while time.perf_counter() < warm_until or warmed < args.warmup_tokens:
        warmed += decode(engine, prompt, 128)[0] + 1
    runs = []
    for _ in range(args.runs):
        before = gpu_state()
        with ClockSampler() as clocks:
            count, seconds = decode(engine, prompt, args.tokens)
        runs.append(
            {
                "tokens": count + 1,
                "tokens_per_s": round(count / seconds, 2),
                "sm_mhz_median": statistics.median(clocks.samples) if clocks.samples else before["sm_mhz"],
                "mem_mhz": before["mem_mhz"],
                "power_w": round(gpu_state()["power_w"], 1),
                "temp_c": before["temp_c"],
                "driver_cpu": driver_cpu(),
            }
        )
    return {
        "copy_bandwidth_gb_s": round(bandwidth / 1e9, 1),
        "load_s": round(load_s, 1),
        "cold_tokens_per_s": round(cold_tokens / cold_s, 2),
        "runs": runs,
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in runs),
        "affinity": sorted(os.sched_getaffinity(0)),
        "reserved_gib": round(torch.cuda.memory_reserved() / 2**30, 2),
    }


def make(args: argparse.Namespace) -> Path:
    from synthetic_quant import make_exl2_model, make_exl3_model, scratch_dir

    maker = make_exl2_model if args.format == "exl2" else make_exl3_model
    out = scratch_dir() / f"qwen32b-{args.format}"
    return maker(out, "qwen32b", args.layers, args.bits)


def parent(args: argparse.Namespace) -> dict[str, Any]:
    model = args.model or make(args)
    weights = gpu_weight_bytes(model)
    processes = []
    for number in range(args.processes):
        command = [sys.executable, __file__, "--child", "--format", args.format, "--model", str(model)]
        command += ["--tokens", str(args.tokens), "--runs", str(args.runs), "--warmup-s", str(args.warmup_s)]
        command += ["--warmup-tokens", str(args.warmup_tokens)]
        if args.pin is not None:
            command += ["--pin", str(args.pin)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode or not lines:
            print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"process {number + 1} failed with exit status {done.returncode}")
        result = json.loads(lines[-1])
        result["roofline_tokens_per_s"] = round(result["copy_bandwidth_gb_s"] * 1e9 / weights, 1)
        result["share_of_roofline"] = round(result["tokens_per_s"] / result["roofline_tokens_per_s"], 3)
        processes.append(result)
        print(json.dumps({"process": number + 1} | {k: v for k, v in result.items() if k != "runs"}), flush=True)
    rates = [p["tokens_per_s"] for p in processes]
    return {
        "format": args.format,
        "weight_bytes_on_gpu": weights,
        "processes": processes,
        "spread": round(max(rates) / min(rates) - 1, 3),
        "share_of_roofline_min": min(p["share_of_roofline"] for p in processes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=("exl2", "exl3"), default="exl2")
    parser.add_argument("--model", type=Path, help="model directory (default: a random 32B-shaped one)")
    parser.add_argument("--bits", type=float, default=4.0)
    parser.add_argument("--layers", type=int, default=None, help="decoder layers (default: all 64)")
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup-s", type=float, default=5.0)
    parser.add_argument("--warmup-tokens", type=int, default=512)
    parser.add_argument("--pin", type=int, default=None, help="pin each process to this CPU")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)), flush=True)
        return
    summary = parent(args)
    print(json.dumps({k: v for k, v in summary.items() if k != "processes"}, indent=2))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
