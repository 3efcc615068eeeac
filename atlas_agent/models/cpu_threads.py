"""How many threads llama.cpp decodes with: the cores this process may really use, paced by how busy they are.

llama.cpp's threads meet at a spinning barrier after every operation of the graph (hundreds per
token), so one thread that waits for a core holds up the others, which burn their own time
spinning. On an oversubscribed machine, many threads are far slower than one: 200 tokens of
SmolLM2 on two cores beside four busy processes took 39 s with two threads and 12 s with one
(2.8 s and 4.6 s on idle cores). So the threads are the cores this process may use (its CPU
affinity, capped by a cgroup CPU quota) that other runnable work leaves idle, re-read while a
reply is generated. Greedy replies do not depend on the thread count, so pacing keeps runs
reproducible.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")
LOADAVG = Path("/proc/loadavg")
PACE_EVERY_S = 0.5  # how often a generation re-reads the run queue


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cpus(quota: str | None, period: str | None) -> float | None:
    """A quota over its period in CPUs; None for no quota ("max", -1) or what cannot be read."""
    try:
        cpus = int(quota or "") / int(period or "")
    except (ValueError, ZeroDivisionError):
        return None
    return cpus if cpus > 0 else None


def _quota_v2(folder: Path) -> float | None:
    """`cpu.max` of a cgroup v2 folder: "QUOTA PERIOD", or "max PERIOD" without a quota."""
    quota, _, period = (_read(folder / "cpu.max") or "").partition(" ")
    return _cpus(quota, period)


def _quota_v1(folder: Path) -> float | None:
    """`cpu.cfs_quota_us` over `cpu.cfs_period_us` of a cgroup v1 cpu folder (a quota of -1: none)."""
    return _cpus(_read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us"))


def _folders(mount: Path, member_of: str) -> list[Path]:
    """The cgroup's folder and its parents up to the mount. Inside a container the recorded path may
    be the host's while the mount shows the container's own cgroup at its top: then only the top."""
    own = mount / member_of.lstrip("/")
    if not own.is_dir():
        return [mount]
    return [own, *(parent for parent in own.parents if parent.is_relative_to(mount))]


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, membership: Path = SELF_CGROUP) -> float | None:
    """CPUs the tightest cgroup quota on this process's way to the root allows; None without a quota."""
    limits: list[float] = []
    for line in (_read(membership) or "").splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, member_of = rest.partition(":")
        if hierarchy == "0" and not controllers:  # cgroup v2: "0::/path"
            limits += [q for folder in _folders(root, member_of) if (q := _quota_v2(folder)) is not None]
        elif "cpu" in controllers.split(","):  # cgroup v1: "4:cpu,cpuacct:/path"
            mount = root / controllers if (root / controllers).is_dir() else root / "cpu"
            limits += [q for folder in _folders(mount, member_of) if (q := _quota_v1(folder)) is not None]
    return min(limits, default=None)


def usable_cores(affinity: set[int] | None = None, root: Path = CGROUP_ROOT, membership: Path = SELF_CGROUP) -> int:
    """Cores this process may run on (its CPU affinity), capped by a cgroup CPU quota; at least one.
    A fractional quota rounds down: a thread the quota throttles mid-barrier stalls all the others."""
    if affinity is None:
        affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cores = len(affinity)
    limit = cgroup_cpu_limit(root, membership)
    if limit is not None:
        cores = min(cores, math.floor(limit))
    return max(1, cores)


def idle_threads(usable: int, machine_cores: int, runnable: int) -> int:
    """Threads to run now: the usable cores that other runnable work leaves idle, at least one.
    `runnable` is the machine's run queue as the asking thread sees it, itself included."""
    others = max(0, runnable - 1)
    return max(1, min(usable, machine_cores - others))


def runnable_now(loadavg: Path = LOADAVG) -> int | None:
    """Threads runnable on the machine right now (the fourth field of /proc/loadavg, "RUNNING/TOTAL")."""
    fields = (_read(loadavg) or "").split()
    try:
        return int(fields[3].split("/")[0])
    except (IndexError, ValueError):
        return None


class ThreadPacer:
    """Sets an engine's thread count (`apply`) to the idle usable cores, re-reading the run queue at
    most every `every_s`; where the run queue cannot be read, every usable core."""

    def __init__(
        self,
        usable: int,
        apply: Callable[[int], None],
        *,
        machine_cores: int | None = None,
        loadavg: Path = LOADAVG,
        every_s: float = PACE_EVERY_S,
    ) -> None:
        self.usable = usable
        self.current = usable  # what the engine was loaded with
        self._apply = apply
        self._machine_cores = machine_cores or os.cpu_count() or 1  # every core the run queue competes for
        self._loadavg = loadavg
        self._every_s = every_s
        self._next_read = 0.0

    def pace(self) -> int:
        """The thread count in force after re-reading the run queue, if it is time to."""
        now = time.monotonic()
        if now < self._next_read:
            return self.current
        self._next_read = now + self._every_s
        runnable = runnable_now(self._loadavg)
        wanted = self.usable if runnable is None else idle_threads(self.usable, self._machine_cores, runnable)
        if wanted != self.current:
            self._apply(wanted)
            self.current = wanted
        return self.current
