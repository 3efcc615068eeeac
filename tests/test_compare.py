"""`atlas compare`: two replayed atlas-mini runs with known differences, graded by the official harness,
compared exactly (matrix, per repo, good-enough map, plot, HTML); the cost arithmetic and the
good-enough bucketing on hand-built runs."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.image import imread

from atlas_agent.errors import AtlasError
from atlas_agent.models.backends import BUNDLED_REPLAYS
from atlas_agent.tasks import Task, load_tasks
from atlas_agent.viewer.compare import Comparison, RunRecord, build_comparison, compare_runs
from atlas_agent.viewer.compare_html import comparison_section
from atlas_agent.viewer.compare_plot import POINT_COLOR, SIZE, plot_png
from atlas_agent.viewer.compare_tables import comparison_tables
from atlas_agent.viewer.good_enough import (
    FILES_BUCKETS,
    ISSUE_WORD_BUCKETS,
    NO_GOLD_PATCH,
    PATCH_LINE_BUCKETS,
    GoodEnoughRow,
    InstanceResult,
    TaskFeatures,
    bucket,
    feature_values,
    features_of,
)
from atlas_agent.vocabulary import Usage
from helpers import atlas, one_line_error

# six atlas-mini instances; the demo replay resolves tally-2 and textkit-2 of them, the scripted one
# tally-2 (the demo's steps), tally-1 and semverkit-1 (their gold patches), and edits textkit-1 wrongly
INSTANCES = (
    "atlas__hoard-1",
    "atlas__semverkit-1",
    "atlas__tally-1",
    "atlas__tally-2",
    "atlas__textkit-1",
    "atlas__textkit-2",
)
# (feature, value, tasks, both, only dearer, only cheaper, neither, matches): demo is the cheaper run
# (both cost nothing, and it is listed first), scripted the dearer
REPLAYED_MAP = [
    ("all", "all", 6, 1, 2, 1, 2, False),
    ("repo", "atlas/hoard", 1, 0, 0, 0, 1, True),
    ("repo", "atlas/semverkit", 1, 0, 1, 0, 0, False),
    ("repo", "atlas/tally", 2, 1, 1, 0, 0, False),
    ("repo", "atlas/textkit", 2, 0, 0, 1, 1, True),
    ("gold patch lines", "1-5", 3, 1, 0, 1, 1, True),  # hoard-1 (5), tally-2 (2), textkit-2 (2)
    ("gold patch lines", "6-15", 3, 0, 2, 0, 1, False),  # semverkit-1 (10), tally-1 (15), textkit-1 (9)
    ("files touched", "1", 5, 1, 2, 1, 1, False),
    ("files touched", "2", 1, 0, 0, 0, 1, True),  # textkit-1
    ("issue words", "<100", 3, 1, 1, 1, 0, True),  # semverkit-1 (72), tally-2 (87), textkit-2 (74)
    ("issue words", "100-249", 3, 0, 1, 0, 2, False),  # hoard-1 (141), tally-1 (139), textkit-1 (174)
]


def counts(row: GoodEnoughRow) -> tuple[str, str, int, int, int, int, int, bool]:
    return (
        row.feature, row.value, row.instances, row.both, row.only_dearer, row.only_cheaper, row.neither, row.matches,
    )  # fmt: skip


def gold_steps(task: Task) -> list[object]:
    return [{"bash": f"git apply - <<'ATLAS_EOF'\n{task.patch}ATLAS_EOF"}, "submit"]


def scripted_replay(tasks: dict[str, Task]) -> dict[str, object]:
    """Overlaps the demo on tally-2 (its very steps), resolves two it does not, misses one it resolves."""
    demo = yaml.safe_load((BUNDLED_REPLAYS / "atlas-mini-demo.yaml").read_text())
    match = re.search(r"^\+\+\+ b/(\S+)", tasks["atlas__textkit-1"].patch, re.M)
    assert match
    return {
        "instances": {
            "atlas__tally-2": demo["instances"]["atlas__tally-2"],
            "atlas__tally-1": gold_steps(tasks["atlas__tally-1"]),
            "atlas__semverkit-1": gold_steps(tasks["atlas__semverkit-1"]),
            "atlas__textkit-1": [{"bash": f"echo '# looked at this' >> {match.group(1)}"}, "submit"],
        },
        "default": ["submit"],
    }


@pytest.fixture(scope="module")
def replayed_runs(tmp_path_factory: pytest.TempPathFactory, docker_client) -> Path:
    """runs/demo and runs/scripted, both graded, under the returned folder."""
    root = tmp_path_factory.mktemp("compare")
    tasks = {task.instance_id: task for task in load_tasks("atlas-mini")}
    (root / "scripted.yaml").write_text(yaml.safe_dump(scripted_replay(tasks), sort_keys=False))
    for run_id, model in (("demo", "replay:atlas-mini-demo"), ("scripted", "replay:scripted.yaml")):
        result = atlas(
            "run", "--instances", ",".join(INSTANCES), "--model", model, "--run-id", run_id,
            "--workers", "2", "--eval", cwd=root,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    return root


@pytest.mark.docker
def test_two_replayed_runs_give_the_exact_matrix_and_per_repo_table(replayed_runs: Path) -> None:
    comparison = compare_runs([replayed_runs / "runs" / "demo", replayed_runs / "runs" / "scripted"])
    [pair] = comparison.pairs
    assert (pair.a, pair.b) == ("demo", "scripted")
    assert pair.both == ["atlas__tally-2"]
    assert pair.only_a == ["atlas__textkit-2"]
    assert pair.only_b == ["atlas__semverkit-1", "atlas__tally-1"]
    assert pair.neither == ["atlas__hoard-1", "atlas__textkit-1"]
    assert pair.unshared == []
    by_repo = {row.group: {run: (s.resolved, s.total) for run, s in row.scores.items()} for row in comparison.by_repo}
    assert by_repo == {
        "atlas/hoard": {"demo": (0, 1), "scripted": (0, 1)},
        "atlas/semverkit": {"demo": (0, 1), "scripted": (1, 1)},
        "atlas/tally": {"demo": (1, 2), "scripted": (2, 2)},
        "atlas/textkit": {"demo": (1, 2), "scripted": (0, 2)},
    }
    assert comparison.by_difficulty == [], "atlas-mini labels no difficulty"
    demo, scripted = comparison.runs
    assert (demo.resolved, demo.instances, scripted.resolved, scripted.instances) == (2, 6, 3, 6)
    assert comparison.cost_unit == "none" and demo.cost == scripted.cost == 0.0 and demo.tokens == 0
    statuses = [
        json.loads((replayed_runs / "runs" / "demo" / "instances" / iid / "status.json").read_text())
        for iid in INSTANCES
    ]
    assert demo.instance_seconds == pytest.approx(sum(status["duration_s"] for status in statuses))
    assert demo.seconds_per_resolved == pytest.approx(demo.instance_seconds / 2)
    assert 0 < demo.wall_seconds <= demo.instance_seconds, "two workers overlap"


@pytest.mark.docker
def test_the_good_enough_map_of_the_replayed_runs(replayed_runs: Path) -> None:
    comparison = compare_runs([replayed_runs / "runs" / "demo", replayed_runs / "runs" / "scripted"])
    [good_enough] = comparison.good_enough
    assert (good_enough.cheaper, good_enough.dearer, good_enough.equal_cost) == ("demo", "scripted", True)
    assert [counts(row) for row in [good_enough.overall, *good_enough.rows]] == REPLAYED_MAP


def png_pixels(png: bytes) -> np.ndarray:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = imread(io.BytesIO(png), format="png")
    assert pixels.shape[:2] == (SIZE[1], SIZE[0])
    return pixels


def point_columns(pixels: np.ndarray) -> np.ndarray:
    """The x pixel of every pixel painted in the points' colour."""
    red, green, blue = (int(POINT_COLOR[i : i + 2], 16) / 255 for i in (1, 3, 5))
    near = np.all(np.abs(pixels[:, :, :3] - np.array([red, green, blue])) < 2 / 255, axis=2)
    return np.nonzero(near)[1]


@pytest.mark.docker
def test_atlas_compare_prints_the_tables_and_writes_the_plot_and_json(replayed_runs: Path) -> None:
    result = atlas("compare", "demo", "runs/scripted", "--plot", "out/plot.png", "--json", "out/c.json",
                   cwd=replayed_runs, env={"COLUMNS": "250"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for cells in (
        ["both", "1", "atlas__tally-2"],
        ["only demo", "1", "atlas__textkit-2"],
        ["only scripted", "2", "atlas__semverkit-1, atlas__tally-1"],
        ["neither", "2", "atlas__hoard-1, atlas__textkit-1"],
        ["atlas/tally", "1 / 2 (50%)", "2 / 2 (100%)"],
        ["", "atlas/semverkit", "1", "0", "1", "0", "0", "✗ scripted +1", "-", "-"],
        ["gold patch lines", "1-5", "3", "1", "0", "1", "1", "✓ yes"],
    ):
        assert any(row_cells(line)[: len(cells)] == cells for line in lines), (cells, result.stdout)
    assert "Good-enough map: where is demo as good as scripted?" in result.stdout
    assert "no run recorded a cost" in result.stdout
    pixels = png_pixels((replayed_runs / "out" / "plot.png").read_bytes())
    assert len(np.unique(pixels.reshape(-1, 4), axis=0)) > 20, "the plot is not blank"
    assert len(point_columns(pixels)) > 20, "the runs' points are drawn"
    written = Comparison.model_validate_json((replayed_runs / "out" / "c.json").read_text())
    assert written.pairs[0].only_b == ["atlas__semverkit-1", "atlas__tally-1"]


@pytest.mark.docker
def test_the_map_in_the_docs_is_what_atlas_compare_prints(replayed_runs: Path) -> None:
    result = atlas("compare", "demo", "scripted", cwd=replayed_runs, env={"COLUMNS": "140"})
    assert result.returncode == 0, result.stderr
    printed = [line.rstrip() for line in result.stdout.splitlines()]
    start = next(i for i, line in enumerate(printed) if line.startswith("┏") and "feature" in printed[i + 1])
    table = printed[start : next(i for i in range(start, len(printed)) if printed[i].startswith("└")) + 1]
    documented = (Path(__file__).parents[1] / "docs" / "comparing.md").read_text().splitlines()
    first = documented.index(table[0])
    assert documented[first : first + len(table)] == table


def row_cells(line: str) -> list[str]:
    """The cells of one row of a rich table, as printed."""
    return [cell.strip() for cell in line.strip().strip("│").split("│")]


@pytest.mark.docker
def test_an_ungraded_run_is_one_line_that_says_to_run_atlas_eval(replayed_runs: Path) -> None:
    ungraded = replayed_runs / "runs" / "ungraded"
    shutil.copytree(replayed_runs / "runs" / "demo", ungraded)
    (ungraded / "report.json").unlink()
    line = one_line_error(atlas("compare", "runs/scripted", "runs/ungraded", cwd=replayed_runs))
    assert "runs/ungraded has not been graded" in line and "run `atlas eval runs/ungraded` first" in line
    alone = one_line_error(atlas("compare", "runs/scripted", cwd=replayed_runs))
    assert "two or more run directories" in alone


@pytest.mark.docker
def test_a_run_graded_before_its_last_instance_finished_is_compared_with_a_warning(replayed_runs: Path) -> None:
    regraded = replayed_runs / "runs" / "late"
    shutil.copytree(replayed_runs / "runs" / "scripted", regraded)
    status = regraded / "instances" / "atlas__hoard-1" / "status.json"
    later = (regraded / "report.json").stat().st_mtime + 60
    os.utime(status, (later, later))
    result = atlas("compare", "runs/demo", "runs/late", cwd=replayed_runs)
    assert result.returncode == 0, result.stderr
    assert "runs/late: instances finished after it was graded: run `atlas eval runs/late` again" in result.stderr


class Page(HTMLParser):
    """The tables (cells by row), image sources and external references of a fragment."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.external: list[str] = []
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if (value := values.get(name)) and not value.startswith("data:"):
                self.external.append(value)
        if tag == "img":
            self.images.append(values.get("src") or "")
        elif tag == "table":
            self._table = self.tables.setdefault(values.get("data-table") or "", [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table:
            self._table[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


@pytest.mark.docker
def test_the_html_section_inlines_the_plot_and_holds_the_tables(replayed_runs: Path) -> None:
    comparison = compare_runs([replayed_runs / "runs" / "demo", replayed_runs / "runs" / "scripted"])
    png = plot_png(comparison)
    page = Page()
    page.feed(comparison_section(comparison, png))
    assert page.external == [], "nothing is fetched from anywhere"
    assert page.images == ["data:image/png;base64," + base64.b64encode(png).decode()]
    assert ["only scripted", "2", "atlas__semverkit-1, atlas__tally-1"] in page.tables["resolved"]
    assert ["atlas/textkit", "1 / 2 (50%)", "0 / 2 (0%)"] in page.tables["resolved-per-repo"]
    rows = page.tables["good-enough-map"]
    assert rows[0][:3] == ["feature", "value", "tasks"]
    named = ["all", "repo", "", "", "", "gold patch lines", "", "files touched", "", "issue words", ""]
    assert [row[:2] for row in rows[1:]] == [
        [name, value] for name, (_, value, *_) in zip(named, REPLAYED_MAP, strict=True)
    ]
    without_plot = Page()
    without_plot.feed(comparison_section(comparison, None))
    assert without_plot.images == [] and without_plot.tables.keys() == page.tables.keys()


# --- hand-built runs: costs, units, bucketing ---

FEATURES = {
    "i1": TaskFeatures(repo="r/a", difficulty="<15 min fix", gold_patch_lines=3, files_touched=1, issue_words=50),
    "i2": TaskFeatures(repo="r/a", difficulty="15 min - 1 hour", gold_patch_lines=10, files_touched=1, issue_words=150),
    "i3": TaskFeatures(repo="r/b", difficulty="1-4 hours", gold_patch_lines=60, files_touched=3, issue_words=600),
    "i4": TaskFeatures(repo="r/b", difficulty="<15 min fix", gold_patch_lines=3, files_touched=1, issue_words=80),
}


def record(label: str, results: dict[str, tuple[bool, Usage]]) -> RunRecord:
    return RunRecord(
        label=label,
        path=f"runs/{label}",
        model=label,
        scaffold="tools",
        dataset="hand-built",
        results={
            iid: InstanceResult(outcome="resolved" if ok else "unresolved", resolved=ok, usage=usage, duration_s=10.0)
            for iid, (ok, usage) in results.items()
        },
        features={iid: FEATURES[iid] for iid in results},
        wall_seconds=25.0,
    )


def gpu(seconds: float) -> Usage:
    return Usage(input_tokens=1000, output_tokens=100, gpu_seconds=seconds)


def usd(dollars: float) -> Usage:
    return Usage(input_tokens=2000, output_tokens=200, cost_usd=dollars)


LOCAL = {"i1": (True, gpu(100)), "i2": (False, gpu(200)), "i3": (False, gpu(400)), "i4": (True, gpu(100))}
CLAUDE = {"i1": (True, usd(0.1)), "i2": (True, usd(0.3)), "i3": (True, usd(1.0)), "i4": (False, usd(0.2))}


def test_gpu_time_priced_per_hour_puts_local_and_claude_on_one_dollar_axis() -> None:
    # $3.60 per GPU-hour: a GPU-second costs $0.001; listed dearer first, ordered by cost all the same
    comparison = build_comparison([record("claude", CLAUDE), record("local", LOCAL)], gpu_hour_usd=3.6)
    assert comparison.cost_unit == "usd" and "GPU time of local at $3.6 per GPU-hour" in comparison.cost_note
    claude, local = comparison.runs
    assert (claude.cost_basis, local.cost_basis) == ("usd", "gpu_seconds")
    assert local.cost == pytest.approx(0.8) and local.cost_per_instance == pytest.approx(0.2)
    assert local.cost_per_resolved == pytest.approx(0.4)
    assert claude.cost == pytest.approx(1.6) and claude.cost_per_resolved == pytest.approx(1.6 / 3)
    assert claude.tokens == 4 * 2200 and claude.tokens_per_resolved == pytest.approx(4 * 2200 / 3)
    assert claude.instance_seconds == 40.0 and claude.seconds_per_resolved == pytest.approx(40 / 3)
    [good_enough] = comparison.good_enough
    assert (good_enough.cheaper, good_enough.dearer, good_enough.equal_cost) == ("local", "claude", False)
    rows = {(row.feature, row.value): row for row in [good_enough.overall, *good_enough.rows]}
    expected = {  # (both, only dearer, only cheaper, neither, matches, cost saved, cost per extra resolved)
        ("all", "all"): (1, 2, 1, 0, False, 0.8, 0.8),
        ("repo", "r/a"): (1, 1, 0, 0, False, 0.1, 0.1),
        ("repo", "r/b"): (0, 1, 1, 0, True, 0.7, None),
        ("difficulty", "<15 min fix"): (1, 0, 1, 0, True, 0.1, None),
        ("difficulty", "15 min - 1 hour"): (0, 1, 0, 0, False, 0.1, 0.1),
        ("difficulty", "1-4 hours"): (0, 1, 0, 0, False, 0.6, 0.6),
        ("gold patch lines", "1-5"): (1, 0, 1, 0, True, 0.1, None),
        ("gold patch lines", "6-15"): (0, 1, 0, 0, False, 0.1, 0.1),
        ("gold patch lines", "51-150"): (0, 1, 0, 0, False, 0.6, 0.6),
        ("files touched", "1"): (1, 1, 1, 0, True, 0.2, None),
        ("files touched", "3-4"): (0, 1, 0, 0, False, 0.6, 0.6),
        ("issue words", "<100"): (1, 0, 1, 0, True, 0.1, None),
        ("issue words", "100-249"): (0, 1, 0, 0, False, 0.1, 0.1),
        ("issue words", "500-999"): (0, 1, 0, 0, False, 0.6, 0.6),
    }
    assert list(rows) == list(expected), "features in order, values small to large, difficulties easy to hard"
    for key, (both, dearer, cheaper, neither, matches, saved, per_extra) in expected.items():
        row = rows[key]
        assert (row.both, row.only_dearer, row.only_cheaper, row.neither, row.matches) == (
            both, dearer, cheaper, neither, matches,
        ), key  # fmt: skip
        assert row.cost_saved == pytest.approx(saved), key
        assert row.cost_per_extra_resolved == (None if per_extra is None else pytest.approx(per_extra)), key
    assert [row.group for row in comparison.by_difficulty] == ["<15 min fix", "15 min - 1 hour", "1-4 hours"]


def test_unpriced_gpu_time_counts_as_nothing_next_to_dollars_and_says_so() -> None:
    comparison = build_comparison([record("local", LOCAL), record("claude", CLAUDE)])
    assert comparison.cost_unit == "usd"
    assert comparison.warnings == [
        "local recorded GPU time but no dollars: counted as $0 (price GPU time with --gpu-hour-usd)"
    ]
    local, claude = comparison.runs
    assert local.cost == 0.0 and claude.cost == pytest.approx(1.6)
    assert comparison.good_enough[0].overall.cost_saved == pytest.approx(1.6)


def test_local_runs_alone_are_compared_in_gpu_seconds() -> None:
    slower = {iid: (ok, gpu(usage.gpu_seconds * 3)) for iid, (ok, usage) in LOCAL.items()}
    comparison = build_comparison([record("slow", slower), record("fast", LOCAL)])
    assert comparison.cost_unit == "gpu_seconds" and comparison.warnings == []
    assert [run.cost for run in comparison.runs] == [2400.0, 800.0]
    [good_enough] = comparison.good_enough
    assert (good_enough.cheaper, good_enough.dearer) == ("fast", "slow")
    assert good_enough.overall.cost_saved == 1600.0 and good_enough.overall.matches
    runs_table = comparison_tables(comparison)[0]
    assert runs_table.rows[0][4:7] == ["2,400.0 GPU-s", "600.0 GPU-s", "1,200.0 GPU-s"]


def test_three_runs_give_per_instance_rows_and_every_pair() -> None:
    partial = {iid: CLAUDE[iid] for iid in ("i1", "i2")}
    comparison = build_comparison([record("local", LOCAL), record("claude", CLAUDE), record("part", partial)])
    assert [(p.a, p.b, p.both, p.only_a, p.only_b, p.neither, p.unshared) for p in comparison.pairs] == [
        ("local", "claude", ["i1"], ["i4"], ["i2", "i3"], [], []),
        ("local", "part", ["i1"], [], ["i2"], [], ["i3", "i4"]),
        ("claude", "part", ["i1", "i2"], [], [], [], ["i3", "i4"]),
    ]
    titles = [table.title for table in comparison_tables(comparison)]
    assert titles[:3] == ["Runs", "Resolved per instance", "Resolved, pair by pair"]
    per_instance = comparison_tables(comparison)[1]
    assert per_instance.rows == [
        ["i1", "r/a", "✓", "✓", "✓"],
        ["i2", "r/a", "·", "✓", "✓"],
        ["i3", "r/b", "·", "✓", "-"],
        ["i4", "r/b", "✓", "·", "-"],
    ]
    # every cheaper run against the dearest (claude: $0.40 an instance; part: $0.20; local: nothing)
    assert [(m.cheaper, m.dearer) for m in comparison.good_enough] == [("local", "claude"), ("part", "claude")]
    assert comparison.good_enough[1].overall.instances == 2, "only the instances both attempted"


def test_the_plot_puts_dearer_runs_further_right() -> None:
    comparison = build_comparison([record("local", LOCAL), record("claude", CLAUDE)], gpu_hour_usd=3.6)
    columns = point_columns(png_pixels(plot_png(comparison)))
    # two points, one at $0.20 and one at $0.40 an instance on an axis to $0.50: far apart
    assert columns.max() - columns.min() > SIZE[0] / 4


def test_buckets_at_their_edges() -> None:
    assert [bucket(n, PATCH_LINE_BUCKETS) for n in (1, 5, 6, 15, 16, 50, 51, 150, 151)] == [
        "1-5", "1-5", "6-15", "6-15", "16-50", "16-50", "51-150", "51-150", "151+",
    ]  # fmt: skip
    assert [bucket(n, FILES_BUCKETS) for n in (1, 2, 3, 4, 5)] == ["1", "2", "3-4", "3-4", "5+"]
    assert [bucket(n, ISSUE_WORD_BUCKETS) for n in (0, 99, 100, 249, 250, 499, 500, 999, 1000)] == [
        "<100", "<100", "100-249", "100-249", "250-499", "250-499", "500-999", "500-999", "1000+",
    ]  # fmt: skip
    no_patch = TaskFeatures(repo="r", gold_patch_lines=0, files_touched=0, issue_words=120)
    assert feature_values(no_patch) == {
        "repo": "r", "difficulty": None, "gold patch lines": NO_GOLD_PATCH, "files touched": NO_GOLD_PATCH,
        "issue words": "100-249",
    }  # fmt: skip
    unknown = TaskFeatures(repo="r", difficulty="easy")
    assert feature_values(unknown) == {
        "repo": "r", "difficulty": "easy", "gold patch lines": None, "files touched": None, "issue words": None,
    }  # fmt: skip


def test_features_are_read_from_the_task_row() -> None:
    task = next(task for task in load_tasks("atlas-mini") if task.instance_id == "atlas__textkit-1")
    features = features_of(task, "ignored", "1-4 hours")
    assert features == TaskFeatures(
        repo="atlas/textkit", difficulty="1-4 hours", gold_patch_lines=9, files_touched=2, issue_words=174
    )
    assert features_of(None, "atlas/textkit", None) == TaskFeatures(repo="atlas/textkit")


def test_fewer_than_two_runs_is_an_error() -> None:
    with pytest.raises(AtlasError, match="two or more run directories"):
        compare_runs([Path("runs/only")])
