"""Dataset layer: task model, loaders for every source kind, and selection. No network, no Docker."""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from swebench.harness.utils import make_test_spec
from swebench.task.checks import check_task_repo, errors

from atlas_agent.errors import DatasetError
from atlas_agent.tasks import (
    MINI_SUITE_DIR,
    Selection,
    Task,
    load_tasks,
    loaders,
    parse_instances,
    select_tasks,
    source_label,
)

TINY_REPO = Path(__file__).parent / "data" / "tasks" / "tiny-repo"
EVAL_SCRIPT = "#!/bin/bash\nset -uxo pipefail\n: '>>>>> Start Test Output'\npytest -rA\n: '>>>>> End Test Output'\n"


def row_4x(instance_id: str = "django__django-11099", **changes: Any) -> dict[str, Any]:
    """A row with the SWE-bench 4.x column set, test lists JSON-encoded as on the hub."""
    row = {
        "repo": "django/django",
        "instance_id": instance_id,
        "base_commit": "ef082ebb84f00e38af4e8880d04e8365c2766d34",
        "patch": "diff --git a/x b/x\n",
        "test_patch": "diff --git a/t b/t\n",
        "problem_statement": "UsernameValidator allows trailing newline",
        "hints_text": "",
        "created_at": "2019-03-20T03:46:18Z",
        "version": "3.0",
        "FAIL_TO_PASS": json.dumps(["test_ascii_validator (auth_tests.test_validators.Tests)"]),
        "PASS_TO_PASS": json.dumps(["test_help_text (auth_tests.test_validators.Tests)"]),
        "environment_setup_commit": "419a78300f7cd27611196e1e464d50fd0385ff27",
    }
    return {**row, **changes}


def row_5x(instance_id: str = "django__django-11099", **changes: Any) -> dict[str, Any]:
    row = row_4x(instance_id)
    row.update(
        FAIL_TO_PASS=json.loads(row["FAIL_TO_PASS"]),
        PASS_TO_PASS=json.loads(row["PASS_TO_PASS"]),
        image="swebench/sweb.eval.x86_64.django_1776_django-11099:latest",
        eval_script=EVAL_SCRIPT,
        log_parser="parse_log_django",
        eval_type="pass_and_fail",
        image_assets="",
    )
    return {**row, **changes}


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def dataset_error(source: str | Path, split: str = "test") -> str:
    with pytest.raises(DatasetError) as info:
        load_tasks(str(source), split)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_5x_row_round_trips_and_feeds_make_test_spec() -> None:
    task = Task.model_validate(row_5x())
    assert task.gradable
    assert Task.model_validate(task.model_dump()) == task

    harness_row = task.harness_row()
    assert harness_row["FAIL_TO_PASS"] == task.FAIL_TO_PASS
    assert harness_row["image_assets"] == ""  # extra columns survive
    spec = make_test_spec(harness_row)
    assert spec.image == task.image
    assert spec.version == "3.0"
    assert spec.PASS_TO_PASS == task.PASS_TO_PASS
    assert spec.eval_type == "pass_and_fail"
    assert ">>>>> Start Test Output" in spec.eval_script


def test_4x_row_derives_image_and_cannot_be_graded() -> None:
    task = Task.model_validate(row_4x())
    assert task.image == "swebench/sweb.eval.x86_64.django_1776_django-11099:latest"
    assert task.FAIL_TO_PASS == ["test_ascii_validator (auth_tests.test_validators.Tests)"]
    assert not task.gradable
    with pytest.raises(DatasetError, match=r"django__django-11099: this row has the SWE-bench 4\.x column set"):
        task.harness_row()


def test_partial_5x_row_names_the_missing_column() -> None:
    task = Task.model_validate(row_5x(eval_type=""))
    with pytest.raises(DatasetError, match="no eval_type"):
        task.harness_row()


def test_loose_column_types_are_normalised() -> None:
    task = Task.model_validate(row_4x(version=3.0, hints_text=None, PASS_TO_PASS=None, split="test"))
    assert task.version == "3.0"
    assert task.hints_text == ""
    assert task.PASS_TO_PASS == []
    assert task.split == "test"
    assert Task.model_validate(row_4x(version=2)).version == "2"


def test_json_list_and_json_dict(tmp_path: Path) -> None:
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([row_5x("a__b-1"), row_4x("a__b-2")]))
    assert [(t.instance_id, t.gradable) for t in load_tasks(str(listed))] == [
        ("a__b-1", True),
        ("a__b-2", False),
    ]
    unnamed = row_4x()
    del unnamed["instance_id"]  # in an {id: row} file the key names the row
    keyed = tmp_path / "dict.json"
    keyed.write_text(json.dumps({"a__b-1": row_4x("a__b-1"), "a__b-2": unnamed}))
    assert [t.instance_id for t in load_tasks(str(keyed))] == ["a__b-1", "a__b-2"]


def test_jsonl(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", [row_5x("a__b-1"), row_5x("a__b-2")])
    tasks = load_tasks(str(path))
    assert [t.instance_id for t in tasks] == ["a__b-1", "a__b-2"]
    make_test_spec(tasks[1].harness_row())


def test_parquet(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist([row_4x("a__b-1", version=3.0), row_4x("a__b-2", version=3.1)]), path)
    tasks = load_tasks(str(path))
    assert [(t.instance_id, t.version) for t in tasks] == [("a__b-1", "3.0"), ("a__b-2", "3.1")]
    assert tasks[0].image == "swebench/sweb.eval.x86_64.a_1776_b-1:latest"


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("rows.jsonl", json.dumps(row_5x("a__b-1")) + '\n{"instance_id": "a__b-2",\n', 2),
        ("rows.json", '[\n  {"instance_id": "a"},\n  oops\n]\n', 3),
    ],
)
def test_malformed_json_names_the_line(tmp_path: Path, name: str, text: str, line: int) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert f"dataset {path} line {line}: invalid JSON" in dataset_error(path)


def test_missing_field_names_field_line_and_instance(tmp_path: Path) -> None:
    broken = row_5x("foo__bar-1")
    del broken["base_commit"]
    path = write_jsonl(tmp_path / "x.jsonl", [row_5x("foo__bar-0"), broken])
    message = dataset_error(path)
    assert message == f"dataset {path} line 2 (instance foo__bar-1): missing field 'base_commit'"


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([row_5x("foo__bar-1", FAIL_TO_PASS=7)], "line 1 (instance foo__bar-1): field 'FAIL_TO_PASS': "),
        ([row_5x("a__b-1"), ["not", "a", "row"]], "line 2: expected an object, got list"),
        (
            [row_5x("a__b-1"), row_5x("a__b-2"), row_5x("a__b-1")],
            "duplicate instance id 'a__b-1' (line 1 and line 3)",
        ),
    ],
)
def test_bad_rows_are_located(tmp_path: Path, rows: list[Any], expected: str) -> None:
    assert expected in dataset_error(write_jsonl(tmp_path / "x.jsonl", rows))


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text("\n")
    assert "has no rows" in dataset_error(path)


@pytest.mark.parametrize("source", ["missing.jsonl", "nowhere/at/all", "./data", "/no/such/rows.parquet"])
def test_missing_path_is_no_such_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert dataset_error(source) == f"dataset {source}: no such file"


def test_unsupported_source(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("instance_id\n")
    assert "unsupported file type" in dataset_error(path)
    assert "not a Hugging Face dataset name" in dataset_error("my tasks")


def test_fixture_task_repo_is_valid_for_swebench() -> None:
    assert errors(check_task_repo(TINY_REPO)) == []


def test_task_repo_directory() -> None:
    tasks = load_tasks(str(TINY_REPO))
    assert [t.instance_id for t in tasks] == ["acme__calc-1", "acme__calc-2"]
    first, second = tasks
    assert first.patch.startswith("diff --git a/calc/ops.py")
    assert first.FAIL_TO_PASS == ["tests/test_ops.py::test_divide_by_zero"]
    assert second.hints_text.startswith("`str.strip()`")
    assert first.model_extra == {"split": "test", "datasets": ["acme/calc-tiny"]}
    spec = make_test_spec(second.harness_row())
    assert spec.image == "swebench/sweb.eval.x86_64.acme_1776_calc-2:latest"


def test_task_repo_is_narrowed_to_the_split(tmp_path: Path) -> None:
    repo = shutil.copytree(TINY_REPO, tmp_path / "repo")
    task_yaml = repo / "tasks" / "acme__calc-2" / "task.yaml"
    task_yaml.write_text(task_yaml.read_text().replace("split: test", "split: dev"))
    assert [t.instance_id for t in load_tasks(str(repo))] == ["acme__calc-1"]
    assert [t.instance_id for t in load_tasks(str(repo), split="dev")] == ["acme__calc-2"]
    assert "has no tasks in split 'train' (it has: dev, test)" in dataset_error(repo, split="train")


def test_task_repo_with_a_missing_file_names_the_task(tmp_path: Path) -> None:
    repo = shutil.copytree(TINY_REPO, tmp_path / "repo")
    (repo / "tasks" / "acme__calc-2" / "gold.patch").unlink()
    assert dataset_error(repo) == f"dataset {repo} tasks/acme__calc-2: missing gold.patch"


def test_task_repo_dir(tmp_path: Path) -> None:
    assert loaders.task_repo_dir("atlas-mini") == MINI_SUITE_DIR
    assert loaders.task_repo_dir(str(TINY_REPO)) == TINY_REPO.resolve()
    assert loaders.task_repo_dir("verified") is None
    assert loaders.task_repo_dir(str(tmp_path)) is None


def test_directory_that_is_not_a_task_repo(tmp_path: Path) -> None:
    assert "not a swebench task repo" in dataset_error(tmp_path)


def test_bundled_mini_suite_loads_by_name() -> None:
    # fails until the bundled suite under atlas_agent/tasks/mini/ is complete
    tasks = load_tasks("atlas-mini")
    assert len(tasks) >= 8, f"only {len(tasks)} tasks in {MINI_SUITE_DIR}"
    assert all(t.gradable for t in tasks)


@pytest.mark.timeout(60)
def test_unknown_hub_dataset_offline_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    # a closed local port stands in for an unreachable hub, so this never touches the network
    monkeypatch.setattr(constants, "ENDPOINT", "https://127.0.0.1:9")
    started = time.monotonic()
    message = dataset_error("atlas-test/no-such-dataset")
    assert time.monotonic() - started < 30
    assert message.startswith("cannot load Hugging Face dataset 'atlas-test/no-such-dataset' (")
    assert message.endswith("or pass a local .json/.jsonl/.parquet file or a task-repo directory")


def test_hub_probe_gives_up_on_a_silent_host(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    with socket.socket() as silent:  # accepts connections but never answers the TLS handshake
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setattr(constants, "ENDPOINT", f"https://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setattr(loaders, "HUB_PROBE_TIMEOUT_S", 0.5)
        assert loaders._hub_unreachable() is not None


CACHED_LOAD = (
    "from atlas_agent.tasks import load_tasks\nprint(','.join(t.instance_id for t in load_tasks('acme/tiny_set')))\n"
)


def test_offline_mode_loads_a_cached_hub_dataset(tmp_path: Path) -> None:
    import datasets

    # build a real datasets cache entry, then file it where a hub download of acme/tiny_set would be
    source = tmp_path / "test.parquet"
    pq.write_table(pa.Table.from_pylist([row_5x("a__b-1"), row_5x("a__b-2")]), source)
    datasets.load_dataset("parquet", data_files={"test": str(source)}, split="test", cache_dir=str(tmp_path / "b"))
    built = next((tmp_path / "b").glob("parquet/*/*/*/dataset_info.json")).parent
    cached = shutil.copytree(built, tmp_path / "cache" / "acme___tiny_set" / "default" / "0.0.0" / built.name)
    (cached / "parquet-test.arrow").rename(cached / "tiny_set-test.arrow")

    env = {"HF_DATASETS_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", CACHED_LOAD],
        env=env,
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "a__b-1,a__b-2"


def test_source_labels() -> None:
    assert source_label("atlas-mini") == "atlas-mini"
    assert source_label("runs/in/my tasks.jsonl") == "my-tasks"
    assert source_label(str(TINY_REPO)) == "tiny-repo"
    assert source_label("verified") == source_label("SWE-bench/SWE-bench_Verified") == "SWE-bench_Verified"
    assert loaders.resolve_hf_name("Lite") == "SWE-bench/SWE-bench_Lite"
    assert loaders.resolve_hf_name("full") == loaders.resolve_hf_name("swe-bench") == "SWE-bench/SWE-bench"


def ids(tasks: list[Task]) -> list[str]:
    return [t.instance_id for t in tasks]


@pytest.fixture
def ten() -> list[Task]:
    return [Task.model_validate(row_4x(f"acme__calc-{n}")) for n in range(10)]


def test_select_instances_in_the_order_given(ten: list[Task]) -> None:
    chosen = select_tasks(ten, Selection(instances=["acme__calc-7", "acme__calc-2", "acme__calc-7"]))
    assert ids(chosen) == ["acme__calc-7", "acme__calc-2"]


def test_select_filter(ten: list[Task]) -> None:
    assert select_tasks(ten, Selection()) == ten
    assert ids(select_tasks(ten, Selection(filter=r"-[13]$"))) == ["acme__calc-1", "acme__calc-3"]


def test_select_shuffle_is_seeded(ten: list[Task]) -> None:
    once = ids(select_tasks(ten, Selection(shuffle=7)))
    assert once == ids(select_tasks(ten, Selection(shuffle=7)))
    assert once != ids(ten) and sorted(once) == sorted(ids(ten))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("2:4", [2, 3]), ("8:", [8, 9]), (":2", [0, 1]), ("3", [0, 1, 2]), ("-2:", [8, 9]), ("::4", [0, 4, 8])],
)
def test_select_slice(ten: list[Task], spec: str, expected: list[int]) -> None:
    assert ids(select_tasks(ten, Selection(slice=spec))) == [f"acme__calc-{n}" for n in expected]


def test_select_combined_applies_instances_filter_shuffle_then_slice(ten: list[Task]) -> None:
    selection = Selection(
        instances=[f"acme__calc-{n}" for n in (9, 8, 7, 6, 1)], filter=r"-[6-9]$", shuffle=3, slice=":2"
    )
    survivors = ["acme__calc-9", "acme__calc-8", "acme__calc-7", "acme__calc-6"]
    random.Random(3).shuffle(survivors)
    assert ids(select_tasks(ten, selection)) == survivors[:2]


def test_select_unknown_instance(ten: list[Task]) -> None:
    with pytest.raises(DatasetError) as info:
        select_tasks(ten, Selection(instances=["acme__calc-1", "acme__calc-11", "nope"]))
    assert str(info.value).startswith("unknown instance id(s): acme__calc-11, nope (the dataset has 10 tasks, e.g. ")


def test_select_bad_regex(ten: list[Task]) -> None:
    with pytest.raises(DatasetError, match=r"bad filter regex '\(unclosed'"):
        select_tasks(ten, Selection(filter="(unclosed"))


@pytest.mark.parametrize("spec", ["a:b", "1:2:3:4", "", "1-3", "::0"])
def test_select_bad_slice(ten: list[Task], spec: str) -> None:
    with pytest.raises(DatasetError, match="bad slice"):
        select_tasks(ten, Selection(slice=spec))


def test_select_empty_result(ten: list[Task]) -> None:
    with pytest.raises(DatasetError, match="no tasks selected"):
        select_tasks(ten, Selection(filter="django"))
    with pytest.raises(DatasetError, match="no tasks selected"):
        select_tasks(ten, Selection(slice="20:"))


def test_parse_instances() -> None:
    assert parse_instances("a,b c") == ["a", "b", "c"]
    assert parse_instances(" a ,, b\n") == ["a", "b"]
    assert parse_instances("") is None
    assert parse_instances(None) is None
