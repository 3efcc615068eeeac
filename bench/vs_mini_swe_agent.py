"""End to end against mini-swe-agent: one scripted 30-command episode, each run from a fresh process.

    python3 -m venv .bench-venv && .bench-venv/bin/pip install mini-swe-agent==2.4.6 'litellm<1.82.7'
    .venv/bin/python bench/vs_mini_swe_agent.py [-n 5] [--mini-python .bench-venv/bin/python] [--out FILE]

Both sides run the same 30 shell commands (grep, sed -n, cat, python -c, the task's pytest run, an
edit, git diff) and a submit on atlas__tally-2's image, in a container without network:

- Atlas as a user runs it: `atlas run -i atlas__tally-2 --scaffold bash-only --model replay:FILE
  --no-eval` with a fresh run id;
- mini-swe-agent (PyPI, in its own virtualenv; never an Atlas dependency; litellm is held below
  1.82.7, whose later releases were compromised) through bench/mini_swe_agent_episode.py:
  `DefaultAgent`, `DockerEnvironment` with `--network none`, `DeterministicModel` replying in its
  bash-action format.

Each episode is a new process, so imports count. The clock starts just before the process is spawned;
"first call" is Atlas's first trajectory step `started_at` (stamped right before the model is asked)
and mini-swe-agent's first `DeterministicModel.query`; "end to end" is the process's exit; the engine's
`start` event of the task container splits the time before the first call. One warm-up episode of each
runs first (it also checks that both produced the same patch), then A, B, A, B, ...; afterwards one
more episode of each under `python -X importtime` names the costliest imports. Exits non-zero when
Atlas is below the 1.5x target end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ATLAS = str(Path(sys.executable).parent / "atlas")
MINI_EPISODE = Path(__file__).resolve().parent / "mini_swe_agent_episode.py"
INSTANCE = "atlas__tally-2"
TASK_DIR = ROOT / "atlas_agent" / "tasks" / "mini" / "tasks" / INSTANCE
LABEL = "atlas-bench.vs-mini"
TARGET_SPEEDUP = 1.5

REPRO = (
    "python -c 'from tally import Money, RateTable; "
    'print(RateTable("EUR", {"USD": "1.0850"}).convert(Money("108.50", "USD"), "EUR"))\''
)
FIX = """python - <<'PY'
import pathlib
path = pathlib.Path("tally/exchange.py")
text = path.read_text()
old = "converted = money.amount * self.rate(source)"
assert text.count(old) == 1, text.count(old)
path.write_text(text.replace(old, "converted = money.amount / self.rate(source)"))
PY"""
# What an engineer types on a one-line bug: look around, read, reproduce, fix, test, review.
COMMANDS = (
    "ls",
    "git log --oneline -3",
    "git status --short",
    'grep -rn "def convert" --include=*.py .',
    'grep -rn "RateTable" --include=*.py . | head -20',
    "sed -n '1,30p' tally/exchange.py",
    "sed -n '30,66p' tally/exchange.py",
    "cat tally/__init__.py",
    "wc -l tally/*.py tests/*.py",
    'grep -n "def rate" -A 9 tally/exchange.py',
    "sed -n '1,43p' tests/test_exchange.py",
    REPRO,
    "python --version && which python",
    "python -m pytest -q -p no:cacheprovider tests/test_exchange.py 2>&1 | tail -5",
    'find . -name "*.py" -not -path "./.git/*" | sort',
    'grep -n "def _to_decimal" -A 12 tally/money.py',
    "sed -n '1,40p' tally/money.py",
    "cat README.md",
    FIX,
    "git diff",
    REPRO,
    "python -m pytest -q -p no:cacheprovider tests/test_exchange.py 2>&1 | tail -3",
    "pytest -rA -p no:cacheprovider tests/test_exchange.py 2>&1 | tail -15",  # the task's own test command
    'grep -n "convert" tests/test_exchange.py',
    "python -c 'import tally; print(tally.__file__, tally.__version__)'",
    "sed -n '/def convert/,/rounded()/p' tally/exchange.py",
    "git diff --stat",
    "cat pyproject.toml",
    "python -m pytest -q -p no:cacheprovider tests 2>&1 | tail -3",
    "git diff",
)
# mini-swe-agent submits by printing a marker and then the patch; `git add -A` + `--cached` makes the
# patch the same as Atlas's submit (new files included).
MINI_SUBMIT = "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff --cached"


@dataclass
class Episode:
    """One fresh-process episode; times in seconds from just before the process was spawned."""

    ready: float  # imports done (and for Atlas the CLI, task and run directory): about to start the container
    container_up: float  # the engine's `start` event for the task container
    first_call: float
    last_call: float
    exit: float
    calls: int
    commands: list[float] = field(default_factory=list)  # per-command seconds, as each side measures them
    patch: str = ""


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def write_replay(path: Path) -> None:
    steps: list[object] = [{"bash": command} for command in COMMANDS]
    path.write_text(yaml.safe_dump({"instances": {INSTANCE: [*steps, "submit"]}}, sort_keys=False))


def write_mini_spec(path: Path, workdir: Path) -> None:
    task = yaml.safe_load((TASK_DIR / "task.yaml").read_text())
    spec = {
        "image": task["image"],
        "task": (TASK_DIR / "problem_statement.md").read_text(),
        "commands": [*COMMANDS, MINI_SUBMIT],
        "label": LABEL,
        "trajectory": str(workdir / "mini.traj.json"),
    }
    path.write_text(json.dumps(spec))


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall-clock start, seconds to exit); raises with the output when the process fails."""
    started = time.time()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    elapsed = time.time() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return started, elapsed


def started_event(label: str, since: float, until: float) -> float:
    """When the engine reported starting the container labelled `label` (seconds since the epoch). The
    engine keeps its recent events, so this asks afterwards instead of watching during the episode."""
    argv = ["docker", "events", "--since", f"{since:.6f}", "--until", f"{until:.6f}", "--filter", f"label={label}"]
    argv += ["--filter", "event=start", "--format", "{{.TimeNano}}"]
    stamps = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()
    if len(stamps) != 1:
        raise RuntimeError(f"expected one container start labelled {label}, the engine reported {len(stamps)}")
    return int(stamps[0]) / 1e9


def remove_containers(label: str) -> None:
    """Force-removes every container carrying `label` (a key, or key=value)."""
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True, check=True
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)


class AtlasSide:
    name = "atlas"

    def __init__(self, workdir: Path) -> None:
        self.replay, self.runs_dir = workdir / "vs-mini.yaml", workdir / "runs"
        write_replay(self.replay)
        self.python, self.env = sys.executable, dict(os.environ)
        self.run_id = ""

    def program(self) -> list[str]:
        """The command line a user types; a fresh run id every time, so nothing is resumed."""
        self.run_id = f"vs-mini-{uuid.uuid4().hex[:8]}"
        options = ["--scaffold", "bash-only", "--model", f"replay:{self.replay}", "--run-id", self.run_id]
        return [ATLAS, "run", "-i", INSTANCE, *options, "--no-eval", "--runs-dir", str(self.runs_dir)]

    def argv(self) -> list[str]:
        return self.program()  # the `atlas` entry point itself, as installed

    @property
    def label(self) -> str:
        return f"atlas.run_id={self.run_id}"

    def cleanup(self) -> None:
        remove_containers(self.label)  # none after a clean exit: Atlas removes its own

    def episode(self, started: float, elapsed: float, container_up: float) -> Episode:
        folder = self.runs_dir / self.run_id / "instances" / INSTANCE
        trajectory = json.loads((folder / "trajectory.json").read_text())
        steps = trajectory["steps"]
        if trajectory["stop_reason"] != "submitted" or len(steps) != len(COMMANDS) + 1:
            raise RuntimeError(f"atlas episode ended {trajectory['stop_reason']} after {len(steps)} steps")
        return Episode(
            ready=epoch(trajectory["started_at"]) - started,
            container_up=container_up - started,
            first_call=epoch(steps[0]["started_at"]) - started,
            last_call=epoch(steps[-1]["started_at"]) - started,
            exit=elapsed,
            calls=len(steps),
            commands=[step["results"][0]["observation"]["duration_s"] for step in steps[:-1]],
            patch=(folder / "patch.diff").read_text(),
        )


class MiniSide:
    name = "mini-swe-agent"

    def __init__(self, workdir: Path, python: str) -> None:
        self.python, self.spec, self.out = python, workdir / "mini-spec.json", workdir / "mini.out.json"
        write_mini_spec(self.spec, workdir)
        # mini-swe-agent keeps its global config (an .env file) here; the bench leaves the user's alone.
        self.env = {**os.environ, "MSWEA_GLOBAL_CONFIG_DIR": str(workdir / "mswea")}

    def program(self) -> list[str]:
        return [str(MINI_EPISODE), str(self.spec), str(self.out)]

    def argv(self) -> list[str]:
        return [self.python, *self.program()]

    label = LABEL

    def cleanup(self) -> None:
        # Its own cleanup is a background `docker stop` that outlives the process; finish it off before
        # the next episode, outside the timed window, so that it never runs alongside one.
        remove_containers(LABEL)

    def episode(self, started: float, elapsed: float, container_up: float) -> Episode:
        record = json.loads(self.out.read_text())
        queries = record["query_times"]
        return Episode(
            ready=record["imported_at"] - started,
            container_up=container_up - started,
            first_call=queries[0] - started,
            last_call=queries[-1] - started,
            exit=elapsed,
            calls=len(queries),
            commands=record["command_durations"][:-1],  # the last one is the submit
            patch=record["submission"],
        )


Side = AtlasSide | MiniSide


def run(side: Side) -> Episode:
    try:
        started, elapsed = timed(side.argv(), side.env)
        container_up = started_event(side.label, started, started + elapsed)
    finally:
        side.cleanup()
    return side.episode(started, elapsed, container_up)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.3f} s ({min(values):.3f}–{max(values):.3f})"


ROWS: list[tuple[str, Callable[[Episode], float]]] = [
    ("start -> agent code loaded", lambda e: e.ready),
    ("loaded -> container started", lambda e: e.container_up - e.ready),
    ("container -> first model call", lambda e: e.first_call - e.container_up),
    ("start -> first model call", lambda e: e.first_call),
    ("first -> last model call", lambda e: e.last_call - e.first_call),
    ("last model call -> exit", lambda e: e.exit - e.last_call),
    ("start -> exit (end to end)", lambda e: e.exit),
]


def command_kind(command: str) -> str:
    """pytest runs, other Python starts, and the rest (grep, sed, cat, git: what an exec costs)."""
    return "pytest" if "pytest" in command else "python" if command.startswith("python") else "shell"


def command_ms(episodes: list[Episode], kind: str) -> float:
    """Median milliseconds of the script's commands of one kind, over all episodes."""
    picked = [i for i, command in enumerate(COMMANDS) if command_kind(command) == kind]
    return statistics.median(e.commands[i] * 1000 for e in episodes for i in picked)


def report(atlas: list[Episode], mini: list[Episode]) -> dict[str, float]:
    """Prints the table; returns mini-swe-agent's median over Atlas's for each row (> 1: Atlas faster)."""
    print(f"{'median (min–max), n=' + str(len(atlas)):<30} {'atlas':<24} {'mini-swe-agent':<24} mini/atlas")
    speedups = {}
    for label, pick in ROWS:
        a, m = [pick(e) for e in atlas], [pick(e) for e in mini]
        speedups[label] = statistics.median(m) / statistics.median(a)
        print(f"{label:<30} {spread(a):<24} {spread(m):<24} {speedups[label]:.2f}x")
    for kind in ("shell", "python", "pytest"):
        a_ms, m_ms = command_ms(atlas, kind), command_ms(mini, kind)
        label = f"one {kind} command ({sum(command_kind(c) == kind for c in COMMANDS)} of {len(COMMANDS)})"
        print(f"{label:<30} {a_ms:6.1f} ms{'':<15} {m_ms:6.1f} ms{'':<15} {m_ms / a_ms:.1f}x")
    return speedups


def import_profile(side: Side, top: int = 8) -> None:
    """Reruns one episode under `python -X importtime` (not part of the timings) and prints the import
    total and the packages that cost most, by their modules' own time."""
    try:
        argv = [side.python, "-X", "importtime", *side.program()]
        done = subprocess.run(argv, capture_output=True, text=True, env=side.env)
    finally:
        side.cleanup()
    by_package: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and not line.endswith("package"):
            own_us, _, name = line.removeprefix("import time:").split("|")
            package = name.strip().split(".")[0]
            by_package[package] = by_package.get(package, 0) + int(own_us)
    ranked = sorted(by_package.items(), key=lambda item: -item[1])[:top]
    parts = ", ".join(f"{name} {us / 1000:.0f}" for name, us in ranked)
    print(f"{side.name}: imports {sum(by_package.values()) / 1e6:.2f} s under -X importtime; most (ms): {parts}")


def same_fix(atlas: Episode, mini: Episode) -> bool:
    """Both episodes must have done the same work: the same patch, with the fix, up to git's index line."""

    def body(patch: str) -> list[str]:
        return [line for line in patch.strip().splitlines() if not line.startswith("index ")]

    fixed = "+            converted = money.amount / self.rate(source)" in body(atlas.patch)
    return fixed and body(atlas.patch) == body(mini.patch)


def versions(python: str) -> str:
    probe = "import importlib.metadata as m; print(m.version('mini-swe-agent'), m.version('litellm'))"
    mini_version, litellm = subprocess.run([python, "-c", probe], capture_output=True, text=True).stdout.split()
    engine = subprocess.run(["docker", "version", "-f", "{{.Server.Version}}"], capture_output=True, text=True)
    return f"mini-swe-agent {mini_version}, litellm {litellm}, docker {engine.stdout.strip()}, {platform.machine()}"


def load() -> str:
    """The 1-minute load average against the core count: other work on the machine skews every figure."""
    return f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=5, help="episodes of each, interleaved")
    parser.add_argument("--mini-python", default=str(ROOT / ".bench-venv" / "bin" / "python"))
    parser.add_argument("--out", type=Path, help="write every episode's figures here (JSON)")
    args = parser.parse_args(argv)

    print(f"{INSTANCE}, {len(COMMANDS)} commands + submit; {versions(args.mini_python)}; {load()}")
    with tempfile.TemporaryDirectory(prefix="vs-mini-") as tmp:
        atlas_side, mini_side = AtlasSide(Path(tmp)), MiniSide(Path(tmp), args.mini_python)
        # The warm-up pair fills the page cache, and checks that both sides really did the same work.
        warm_atlas, warm_mini = run(atlas_side), run(mini_side)
        if not same_fix(warm_atlas, warm_mini):
            raise SystemExit(f"the episodes' patches differ:\n{warm_atlas.patch}\n---\n{warm_mini.patch}")
        atlas, mini = [], []
        for _ in range(args.runs):
            atlas.append(run(atlas_side))
            mini.append(run(mini_side))
        speedups = report(atlas, mini)
        import_profile(atlas_side)
        import_profile(mini_side)
    end_to_end = speedups["start -> exit (end to end)"]
    print(f"end to end: Atlas {end_to_end:.2f}x as fast as mini-swe-agent (target >= {TARGET_SPEEDUP}x); {load()}")
    if args.out:
        args.out.write_text(json.dumps({"atlas": [vars(e) for e in atlas], "mini": [vars(e) for e in mini]}, indent=1))
    return 0 if end_to_end >= TARGET_SPEEDUP else 1


if __name__ == "__main__":
    sys.exit(main())
