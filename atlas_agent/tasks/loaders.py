"""Dataset sources → validated Tasks.

A source is the bundled suite's name, a swebench 5.x task-repo directory, a
.json/.jsonl/.parquet file, or a Hugging Face dataset name. Every way a source can
be wrong ends in one DatasetError line that says where (file, line or row,
instance) and what, so the CLI never has to show a traceback for a user mistake.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError
from swebench.task.repo import TASK_FILE, TASKS_SUBDIR, TESTS_FILE, load_task, task_dirs

from atlas_agent.errors import DatasetError
from atlas_agent.tasks.task import Task, summarize_validation_error

MINI_SUITE_NAME = "atlas-mini"
MINI_SUITE_DIR = Path(__file__).resolve().parent / "mini"

HF_ALIASES = {
    "verified": "SWE-bench/SWE-bench_Verified",
    "lite": "SWE-bench/SWE-bench_Lite",
    "full": "SWE-bench/SWE-bench",
    "swe-bench": "SWE-bench/SWE-bench",
}
FILE_SUFFIXES = (".json", ".jsonl", ".parquet")
HUB_NAME = re.compile(r"[\w.-]+(/[\w.-]+)?")
# long enough for a slow but working link, short enough that offline fails at once
HUB_PROBE_TIMEOUT_S = 5.0

Row = tuple[str, Any]  # (where the row sits in its source, e.g. "line 3"; the raw row)


def load_tasks(source: str, split: str = "test") -> list[Task]:
    """Every task of `source`; task repos and hub datasets are narrowed to `split`."""
    if source.lower() == MINI_SUITE_NAME:
        return _load_mini(split)
    path = Path(source).expanduser()
    if path.is_dir():
        return _load_task_repo(path, split, source)
    if path.suffix.lower() in FILE_SUFFIXES or _looks_like_path(source):
        return _load_file(path, source)
    if not HUB_NAME.fullmatch(source):
        raise DatasetError(
            f"dataset {source}: no such file or directory, and not a Hugging Face dataset name (owner/name)"
        )
    return _load_hub(resolve_hf_name(source), split)


def source_label(source: str) -> str:
    """A short, filesystem-safe name for a source, stable across spellings of it."""
    if source.lower() == MINI_SUITE_NAME:
        return MINI_SUITE_NAME
    path = Path(source).expanduser()
    if path.is_dir():
        name = path.resolve().name
    elif path.suffix.lower() in FILE_SUFFIXES or _looks_like_path(source):
        name = path.stem
    else:
        # the repo part alone: "verified" and "SWE-bench/SWE-bench_Verified" label alike
        name = resolve_hf_name(source).rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "dataset"


def task_repo_dir(source: str) -> Path | None:
    """The task repo behind a source (its Dockerfiles build the images), or None for files and hub names."""
    if source.lower() == MINI_SUITE_NAME:
        return MINI_SUITE_DIR
    path = Path(source).expanduser()
    return path.resolve() if (path / TASKS_SUBDIR).is_dir() else None


def resolve_hf_name(source: str) -> str:
    return HF_ALIASES.get(source.lower(), source)


def _looks_like_path(source: str) -> bool:
    # "owner/name" is how hub datasets are named, so a single slash alone is not a path
    if source.startswith(("/", ".", "~")) or source.endswith("/") or "\\" in source:
        return True
    return source.count("/") > 1 or Path(source).exists()


# ---- rows → tasks ---------------------------------------------------------------------


def _to_tasks(source: str, rows: Iterable[Row]) -> list[Task]:
    tasks: list[Task] = []
    seen: dict[str, str] = {}
    for where, row in rows:
        task = _parse_row(source, where, row)
        if task.instance_id in seen:
            raise DatasetError(
                f"dataset {source}: duplicate instance id '{task.instance_id}' ({seen[task.instance_id]} and {where})"
            )
        seen[task.instance_id] = where
        tasks.append(task)
    if not tasks:
        raise DatasetError(f"dataset {source} has no rows")
    return tasks


def _parse_row(source: str, where: str, row: Any) -> Task:
    if not isinstance(row, dict):
        raise DatasetError(f"dataset {source} {where}: expected an object, got {type(row).__name__}")
    try:
        return Task.model_validate(row)
    except ValidationError as err:
        instance_id = row.get("instance_id")
        named = f" (instance {instance_id})" if isinstance(instance_id, str) and instance_id else ""
        raise DatasetError(f"dataset {source} {where}{named}: {summarize_validation_error(err)}") from None


# ---- files ----------------------------------------------------------------------------


def _load_file(path: Path, source: str) -> list[Task]:
    if not path.exists():
        raise DatasetError(f"dataset {source}: no such file")
    if not path.is_file():
        raise DatasetError(f"dataset {source}: not a regular file")
    readers = {".json": _json_rows, ".jsonl": _jsonl_rows, ".parquet": _parquet_rows}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise DatasetError(
            f"dataset {source}: unsupported file type; pass a .json, .jsonl or .parquet file, "
            "a task-repo directory or a Hugging Face dataset name"
        )
    return _to_tasks(source, reader(path, source))


def _read_text(path: Path, source: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"dataset {source}: cannot read it ({_first_line(exc)})") from exc


def _json_error(source: str, exc: json.JSONDecodeError) -> DatasetError:
    hint = "; one row per line is JSONL, so name it .jsonl" if exc.msg == "Extra data" else ""
    return DatasetError(f"dataset {source} line {exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno}){hint}")


def _json_rows(path: Path, source: str) -> list[Row]:
    try:
        data = json.loads(_read_text(path, source))
    except json.JSONDecodeError as exc:
        raise _json_error(source, exc) from None
    if isinstance(data, list):
        return [(f"row {number}", row) for number, row in enumerate(data, 1)]
    if isinstance(data, dict) and all(isinstance(row, dict) for row in data.values()):
        return [(f"entry '{key}'", _with_id(source, key, row)) for key, row in data.items()]
    raise DatasetError(f"dataset {source}: expected a JSON list of rows or an object mapping instance ids to rows")


def _with_id(source: str, key: str, row: dict[str, Any]) -> dict[str, Any]:
    # in {id: row} files the key is the id, so rows may leave it out
    if "instance_id" not in row:
        return {**row, "instance_id": key}
    if row["instance_id"] != key:
        raise DatasetError(
            f"dataset {source} entry '{key}': its instance_id is '{row['instance_id']}', not the key '{key}'"
        )
    return row


def _jsonl_rows(path: Path, source: str) -> Iterator[Row]:
    # split on "\n" only: JSON strings may hold U+2028, which splitlines() would break on
    for number, line in enumerate(_read_text(path, source).split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"dataset {source} line {number}: invalid JSON ({exc.msg} at column {exc.colno})"
            ) from None
        yield f"line {number}", row


def _parquet_rows(path: Path, source: str) -> list[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f"dataset {source}: not a readable parquet file ({_first_line(exc)})") from exc
    return [(f"row {number}", row) for number, row in enumerate(table.to_pylist(), 1)]


# ---- task repos -----------------------------------------------------------------------


def _load_mini(split: str) -> list[Task]:
    if not (MINI_SUITE_DIR / TASKS_SUBDIR).is_dir():
        raise DatasetError(
            f"the bundled {MINI_SUITE_NAME} suite is missing from {MINI_SUITE_DIR}; "
            "reinstall atlas-agent, or pass another dataset"
        )
    return _load_task_repo(MINI_SUITE_DIR, split, MINI_SUITE_NAME)


def _load_task_repo(root: Path, split: str, source: str) -> list[Task]:
    if not (root / TASKS_SUBDIR).is_dir():
        raise DatasetError(f"dataset {source}: a directory, but not a swebench task repo (no {TASKS_SUBDIR}/ inside)")
    return _filter_split(_to_tasks(source, _task_repo_rows(root, source)), split, source)


def _task_repo_rows(root: Path, source: str) -> Iterator[Row]:
    # task by task rather than load_task_repo, so a broken task is named in the error
    for task_dir in task_dirs(root):
        where = f"{TASKS_SUBDIR}/{task_dir.name}"
        try:
            row = load_task(task_dir)
        except (OSError, ValueError, TypeError, yaml.YAMLError) as exc:
            raise DatasetError(f"dataset {source} {where}: {_task_read_error(exc)}") from exc
        yield where, row


def _task_read_error(exc: Exception) -> str:
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"missing {Path(exc.filename).name}"
    if isinstance(exc, yaml.YAMLError):
        return f"{TASK_FILE} is not valid YAML"
    if isinstance(exc, json.JSONDecodeError):
        return f"{TESTS_FILE} is not valid JSON ({exc.msg} at line {exc.lineno})"
    if isinstance(exc, TypeError):
        return f"{TASK_FILE} or {TESTS_FILE} is not a mapping of fields"
    return f"cannot read the task ({_first_line(exc)})"


def _filter_split(tasks: list[Task], split: str, source: str) -> list[Task]:
    # a task repo holds every split at once; tasks that name none belong to all
    if all(task.split is None for task in tasks):
        return tasks
    kept = [task for task in tasks if task.split in (split, None)]
    if not kept:
        have = ", ".join(sorted({task.split for task in tasks if task.split}))
        raise DatasetError(f"dataset {source} has no tasks in split '{split}' (it has: {have})")
    return kept


# ---- Hugging Face ---------------------------------------------------------------------


def _load_hub(name: str, split: str) -> list[Task]:
    import datasets  # heavy import, needed for hub sources only

    # offline mode reads the local cache and makes no request, so there is nothing to probe
    if not datasets.config.HF_HUB_OFFLINE:
        unreachable = _hub_unreachable()
        if unreachable:
            raise _hub_error(name, f"{unreachable}; to use a cached copy set HF_DATASETS_OFFLINE=1")
    try:
        dataset = datasets.load_dataset(name, split=split)
    except Exception as exc:  # datasets raises many unrelated types for what is one failure to the user
        raise _hub_error(name, _first_line(exc)) from exc
    return _to_tasks(name, ((f"row {number}", row) for number, row in enumerate(dataset, 1)))


def _hub_unreachable() -> str | None:
    """Why the hub cannot be reached, or None if it answers.

    One short HEAD request; without it load_dataset retries with backoff for ~25 s
    when name resolution fails, and for minutes when packets are silently dropped.
    """
    from huggingface_hub import constants, get_session

    endpoint = constants.ENDPOINT
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            get_session().head(endpoint, timeout=HUB_PROBE_TIMEOUT_S)
            outcome.append(None)  # any HTTP answer, even an error status, means reachable
        except Exception as exc:
            outcome.append(_first_line(exc))

    # a daemon thread with a deadline, because name resolution ignores socket timeouts
    thread = threading.Thread(target=probe, name="hub-probe", daemon=True)
    thread.start()
    thread.join(HUB_PROBE_TIMEOUT_S + 1)
    host = urlsplit(endpoint).netloc or endpoint
    if not outcome:
        return f"{host} did not answer within {HUB_PROBE_TIMEOUT_S:g} s"
    return None if outcome[0] is None else f"{host} unreachable: {outcome[0]}"


def _hub_error(name: str, reason: str) -> DatasetError:
    return DatasetError(
        f"cannot load Hugging Face dataset '{name}' ({reason}): check the name or your network, "
        "or pass a local .json/.jsonl/.parquet file or a task-repo directory"
    )


def _first_line(exc: BaseException, limit: int = 200) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
