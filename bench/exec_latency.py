"""Round trip of a trivial command: Atlas's persistent shell vs one `docker exec` per command.

    python bench/exec_latency.py [--image atlas/base:bookworm] [-n 200] [--command "echo x"]

Starts one task container, times N runs of the command through `PersistentShell.run` and through the
SDK's `container.exec_run(["/bin/bash", "-c", command])`, prints median and p90 of each and their
ratio, and removes the container.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_RATIO = 50.0


def timed_ms(call: Callable[[], object], runs: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def p90(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def row(label: str, samples: list[float]) -> str:
    return f"{label:<18} n={len(samples):<5} median {statistics.median(samples):9.3f} ms   p90 {p90(samples):9.3f} ms"


def main(argv: list[str] | None = None) -> int:
    from atlas_agent.runtime.container import TaskContainer
    from atlas_agent.runtime.docker_client import connect

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="atlas/base:bookworm")
    parser.add_argument("-n", "--runs", type=int, default=200)
    parser.add_argument("--command", default="echo x")
    args = parser.parse_args(argv)

    client = connect()
    engine = client.version()
    print(f"engine {engine['Version']} (API {engine['ApiVersion']}), {platform.machine()}, image {args.image}")
    with TaskContainer(client, args.image, run_id="bench", instance_id="exec-latency") as box:
        sdk_container = client.containers.get(box.id)
        argv_exec = ["/bin/bash", "-c", args.command]
        # Both paths must do the same work before their timings mean anything.
        assert box.run(args.command).output.encode() == sdk_container.exec_run(argv_exec).output
        shell = timed_ms(lambda: box.run(args.command), args.runs)
        execs = timed_ms(lambda: sdk_container.exec_run(argv_exec), args.runs)
    ratio = statistics.median(execs) / statistics.median(shell)
    print(f"command: {args.command!r}")
    print(row("persistent shell", shell))
    print(row("docker exec", execs))
    print(f"ratio (median)     {ratio:.0f}x   (p90: {p90(execs) / p90(shell):.0f}x; target >= {TARGET_RATIO:.0f}x)")
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
