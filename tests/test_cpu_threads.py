"""Threads of the in-process CPU model: the cores this process may use (affinity, cgroup quota files written
here) and the pacing to the cores other work leaves idle (a run queue file written here)."""

from __future__ import annotations

from pathlib import Path

from atlas_agent.models.cpu_threads import ThreadPacer, cgroup_cpu_limit, idle_threads, usable_cores


def cgroup(tmp_path: Path, membership: str, files: dict[str, str]) -> tuple[Path, Path]:
    """A cgroup mount with `files` and a /proc/self/cgroup saying `membership`."""
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    member = tmp_path / "self-cgroup"
    member.write_text(membership)
    return root, member


def test_usable_cores_follow_the_affinity_and_the_tightest_cgroup_quota(tmp_path: Path) -> None:
    root, member = cgroup(
        tmp_path,
        "0::/atlas.slice/run.scope\n",
        {"cpu.max": "max 100000\n", "atlas.slice/cpu.max": "150000 100000\n", "atlas.slice/run.scope/cpu.max": "max"},
    )
    assert cgroup_cpu_limit(root, member) == 1.5, "a parent's quota binds its children"
    assert usable_cores({0, 1, 2, 3}, root, member) == 1, "a fraction of a core rounds down"
    (root / "atlas.slice" / "cpu.max").write_text("300000 100000\n")
    assert usable_cores({0, 1, 2, 3}, root, member) == 3
    assert usable_cores({5, 7}, root, member) == 2, "the affinity is tighter"
    (root / "atlas.slice" / "run.scope" / "cpu.max").write_text("50000 100000\n")
    assert usable_cores({0, 1, 2, 3}, root, member) == 1, "at least one"
    (root / "atlas.slice" / "cpu.max").write_text("max 100000\n")
    (root / "atlas.slice" / "run.scope" / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(root, member) is None and usable_cores({0, 1, 2, 3}, root, member) == 4
    assert usable_cores({0, 1}, tmp_path / "no-cgroup", tmp_path / "no-membership") == 2


def test_a_containers_quota_is_read_where_its_mount_shows_it(tmp_path: Path) -> None:
    """In a container /proc/self/cgroup may name the host's path while the mount's top is its own cgroup."""
    v1 = {"cpu,cpuacct/cpu.cfs_quota_us": "200000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}
    root, member = cgroup(tmp_path / "v1", "5:cpu,cpuacct:/docker/0123abcd\n4:memory:/docker/0123abcd\n", v1)
    assert usable_cores(set(range(8)), root, member) == 2
    (root / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("-1\n")
    assert usable_cores(set(range(8)), root, member) == 8, "-1: no quota"
    root, member = cgroup(tmp_path / "v2", "0::/\n", {"cpu.max": "400000 100000\n"})
    assert usable_cores(set(range(8)), root, member) == 4


def test_threads_are_paced_to_the_cores_other_work_leaves_idle(tmp_path: Path) -> None:
    assert [idle_threads(4, 4, runnable) for runnable in (1, 2, 4, 5, 40)] == [4, 3, 1, 1, 1]
    assert idle_threads(2, 64, 30) == 2, "others busy on cores this process does not use"
    loadavg, applied = tmp_path / "loadavg", []
    pacer = ThreadPacer(4, applied.append, machine_cores=4, loadavg=loadavg, every_s=0)
    loadavg.write_text("0.50 0.40 0.30 1/200 999\n")  # only the asking thread runs
    assert pacer.pace() == 4 and applied == [], "as loaded: nothing to change"
    loadavg.write_text("9.10 8.70 6.00 10/300 999\n")
    assert pacer.pace() == 1 and applied == [1]
    loadavg.write_text("2.00 2.00 2.00 3/300 999\n")
    assert pacer.pace() == 2 and applied == [1, 2]
    loadavg.unlink()
    assert pacer.pace() == 4 and applied == [1, 2, 4], "an unreadable run queue: every usable core"
    loadavg.write_text("9.10 8.70 6.00 10/300 999\n")
    seldom = ThreadPacer(4, applied.append, machine_cores=4, loadavg=loadavg, every_s=3600)
    assert seldom.pace() == 1
    loadavg.write_text("0.50 0.40 0.30 1/200 999\n")
    assert seldom.pace() == 1, "the run queue is re-read at most every every_s"
