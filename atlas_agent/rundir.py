"""The run directory: where a run's configuration, predictions and per-instance results live, the
one layout the runner writes and grading reads.

runs/<run_id>/
  run.yaml                       resolved configuration (the latest session's) + versions, and every
                                 address the model was reached at (a server may come back elsewhere)
  preds.jsonl                    official SWE-bench predictions, rewritten after every instance
  instances/<id>/trajectory.json every step, rewritten after every step
  instances/<id>/patch.diff      the final diff against base_commit
  instances/<id>/status.json     how the instance ended; written last, so its presence means "done"
  instances/<id>/previous-<N>/   the files of an earlier episode that `atlas run --redo` set aside
Every file is written atomically, so a killed run leaves only whole files and `atlas run` with the
same run id picks up where it stopped, provided it asks for the settings the run was started with.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from atlas_agent.errors import AtlasError
from atlas_agent.fsutil import path_component, write_atomic
from atlas_agent.models.backends import backend_for
from atlas_agent.models.options import ModelOptions
from atlas_agent.runtime.config import DockerRuntime, RuntimeConfig
from atlas_agent.scaffolds.config import ScaffoldConfig
from atlas_agent.tasks import Selection
from atlas_agent.trajectory import BranchPoint, Trajectory, now_iso
from atlas_agent.versions import versions
from atlas_agent.vocabulary import Usage


class RunConfig(BaseModel, extra="forbid"):
    run_id: str

    @field_validator("run_id")
    @classmethod
    def _one_folder_name(cls, value: str) -> str:
        return path_component(value, "run id")

    dataset: str = "atlas-mini"
    split: str = "test"
    selection: Selection = Field(default_factory=Selection)
    model: str
    model_options: ModelOptions = Field(default_factory=ModelOptions)
    workers: int = 1
    # stop starting new instances once the run has cost this much (finished ones count)
    max_cost_usd: float | None = None
    scaffold_name: str = "tools"
    # the resolved strategy (file + overrides), recorded so a resumed run works the same way
    scaffold: ScaffoldConfig
    # docker: one task container per workspace; local: a checkout on this machine (no isolation)
    runtime: RuntimeConfig = Field(default_factory=DockerRuntime)
    # `atlas run --from`: the recorded step whose actions the run's one instance replays before its model goes on
    parent: BranchPoint | None = None


# What defines how an instance runs. A resumed run keeps every one of these, so that run.yaml stays
# true of the instances finished before; workers, the selection and the cost limit may change.
DEFINING_KEYS = ("dataset", "split", "model", "model_options", "scaffold", "runtime", "parent")
# Model options that say how the model is reached, not what it answers: a resume may change them (a
# server back on another port, a longer outage budget, another CPU thread count), as it may the server
# address in an `openai:` spec. run.yaml lists every address used under `model_addresses`.
REACH_OPTIONS = ("base_url", "retry", "threads")
SHOWN_CHARS = 60
# where `--redo` keeps an instance's earlier files: instances/<id>/previous-<N>/
PREVIOUS = re.compile(r"previous-(\d+)")
# report.json outcomes that say nothing against an instance: resolved, or never graded
GRADED_RESOLVED, NOT_GRADED = "resolved", "incomplete"


class InstanceStatus(BaseModel):
    instance_id: str
    state: Literal["done", "error"]
    stop_reason: str | None = None
    stop_detail: str = ""
    steps: int = 0
    usage: Usage = Field(default_factory=Usage)
    patch_lines: int = 0
    duration_s: float = 0.0
    started_at: str
    finished_at: str
    error: str | None = None


class RunDir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        # status files that could not be read: their instances count as unfinished and run again
        self.damaged: set[Path] = set()

    @classmethod
    def of_run(cls, runs_dir: Path, run_id: str) -> RunDir:
        """`runs_dir/run_id`, refusing a run id that would put the run anywhere else."""
        try:
            return cls(runs_dir / path_component(run_id, "run id"))
        except ValueError as exc:
            raise AtlasError(f"--run-id: {exc}") from None

    @property
    def run_id(self) -> str:
        return self.root.name

    def instance(self, instance_id: str) -> Path:
        try:
            return self.root / "instances" / path_component(instance_id, "instance id")
        except ValueError as exc:
            raise AtlasError(str(exc)) from None

    def status(self, instance_id: str) -> InstanceStatus | None:
        """How the instance ended; None while unfinished, and when its status file is damaged (it reruns)."""
        path = self.instance(instance_id) / "status.json"
        if not path.is_file():
            return None
        try:
            return InstanceStatus.model_validate_json(path.read_bytes())
        except (ValueError, OSError):
            self.damaged.add(path)
            return None

    def finished(self, instance_id: str) -> bool:
        """Done, with the files a done instance leaves: a missing or unreadable one makes it run again."""
        status = self.status(instance_id)
        if status is None or status.state != "done":
            return False
        folder = self.instance(instance_id)
        try:
            Trajectory.model_validate_json((folder / "trajectory.json").read_bytes())
        except (ValueError, OSError):
            self.damaged.add(folder / "trajectory.json")
            return False
        if not (folder / "patch.diff").is_file():
            self.damaged.add(folder / "patch.diff")
            return False
        return True

    def redo_targets(self, requests: Iterable[str], selected: list[str]) -> list[str]:
        """The selected instances that `--redo` values name, in selection order: instance ids, `errors`
        (ended in an error) and `unresolved` (done, and graded unresolved since it last ran)."""
        chosen: set[str] = set()
        for word in (word.strip() for request in requests for word in request.split(",")):
            if word == "errors":
                chosen |= {iid for iid in selected if (status := self.status(iid)) and status.state == "error"}
            elif word == "unresolved":
                chosen |= self._graded_unresolved(selected)
            elif word in selected:
                chosen.add(word)
            elif word:
                raise AtlasError(
                    f"--redo {word}: not an instance this command selects: name selected instance ids, "
                    "`errors` or `unresolved`"
                )
        return [iid for iid in selected if iid in chosen]

    def _graded_unresolved(self, selected: list[str]) -> set[str]:
        """Done instances that report.json grades anything but resolved, unless they ran again after it."""
        path = self.root / "report.json"
        if not path.is_file():
            raise AtlasError(
                f"--redo unresolved: run {self.run_id} was never graded: grade it with `atlas eval {self.root}`"
            )
        try:
            outcomes = {item["instance_id"]: item["outcome"] for item in json.loads(path.read_text())["instances"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AtlasError(
                f"--redo unresolved: {path} is damaged ({exc}): grade again with `atlas eval {self.root}`"
            ) from None
        graded_at = path.stat().st_mtime
        return {
            iid
            for iid in selected
            if outcomes.get(iid, GRADED_RESOLVED) not in (GRADED_RESOLVED, NOT_GRADED)
            and self.finished(iid)
            and (self.instance(iid) / "status.json").stat().st_mtime <= graded_at
        }

    def set_aside(self, instance_ids: Iterable[str], model_name: str) -> list[Path]:
        """Moves each instance's files into a new `previous-N` folder of its own, so that it runs again
        with nothing lost, and rewrites preds.jsonl without them; the folders made."""
        moved = [target for iid in instance_ids if (target := self._set_aside(self.instance(iid))) is not None]
        self.write_predictions(model_name)
        return moved

    def _set_aside(self, folder: Path) -> Path | None:
        files = [path for path in folder.glob("*") if not PREVIOUS.fullmatch(path.name)] if folder.is_dir() else []
        if not files:
            return None
        earlier = [int(match[1]) for path in folder.glob("previous-*") if (match := PREVIOUS.fullmatch(path.name))]
        target = folder / f"previous-{max(earlier, default=0) + 1}"
        target.mkdir()
        # status.json first: a move cut short leaves an unfinished instance, which runs again
        for path in sorted(files, key=lambda path: path.name != "status.json"):
            path.rename(target / path.name)
        return target

    def changed_patches(self) -> list[str]:
        """A warning for each done instance whose patch.diff is not the one it ended with (its line
        count differs from its status): its prediction is the file as it is now."""
        warnings = []
        for folder in sorted((self.root / "instances").glob("*")):
            status = self.status(folder.name)
            patch = folder / "patch.diff"
            if status is None or status.state != "done" or not patch.is_file():
                continue
            lines = patch.read_bytes().count(b"\n")
            if lines != status.patch_lines:
                warnings.append(
                    f"{patch} has {lines} line(s) but the instance ended with {status.patch_lines}: it was changed"
                    " afterwards, and its prediction is the file as it is now (delete status.json to run it again)"
                )
        return warnings

    def config(self) -> RunConfig:
        path = self.root / "run.yaml"
        if not path.is_file():
            raise AtlasError(f"{self.root} is not a run directory: it has no run.yaml")
        record = self._record()
        if record is None:
            raise AtlasError(f"{path} is damaged: rerun `atlas run` with the run's options to write it anew")
        try:
            return RunConfig.model_validate(record["config"])
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise AtlasError(f"{path}: config.{where}: {error['msg']} (written by another Atlas version?)") from exc

    def check_resume(self, config: RunConfig) -> None:
        """A run that exists goes on only with the settings its finished instances ran with."""
        path = self.root / "run.yaml"
        if not path.is_file():
            return
        if self._record() is None:  # nothing to compare with: this command's settings are written anew
            self.damaged.add(path)
            return
        started = self.config()
        before, after = defining(started), defining(config)
        for key in DEFINING_KEYS:
            difference = first_difference(key, before[key], after[key])
            if difference is not None:
                name, was, asked = difference
                if name == "model":  # as the commands named it, address and all
                    was, asked = started.model, config.model
                if key == "parent":  # as the commands named it
                    name, was, asked = "--from", str(started.parent or "none"), str(config.parent or "none")
                raise AtlasError(
                    f"run {config.run_id} was started with {name}={shown(was)}; this command asks for {shown(asked)}: "
                    "use a new --run-id or the same options"
                )

    def write_config(self, config: RunConfig) -> None:
        self.check_resume(config)
        record: dict[str, Any] = {"config": config.model_dump(mode="json")}
        if addresses := self._model_addresses(config):
            record["model_addresses"] = addresses
        record |= {"versions": versions(), "written_at": now_iso()}
        write_atomic(self.root / "run.yaml", yaml.safe_dump(record, sort_keys=False))

    def _model_addresses(self, config: RunConfig) -> list[dict[str, str]]:
        """Every address the run's model was reached at, oldest first, with when each was first used;
        this session's is added when it is not the last one recorded."""
        addresses: list[dict[str, str]] = []
        if (record := self._record()) is not None:
            addresses = record.get("model_addresses") or []
            # a run.yaml written before the list was kept names only the address its config used
            if not addresses and (first := model_address(self.config())) is not None:
                addresses = [{"address": first}]
        current = model_address(config)
        if current is not None and (not addresses or addresses[-1]["address"] != current):
            addresses.append({"address": current, "since": now_iso()})
        return addresses

    def _record(self) -> dict[str, Any] | None:
        """run.yaml as written; None when there is none or it is not one (cut short, edited into something else)."""
        try:
            record = yaml.safe_load((self.root / "run.yaml").read_text())
        except (OSError, ValueError, yaml.YAMLError):
            return None
        return record if isinstance(record, dict) and isinstance(record.get("config"), dict) else None

    def write_predictions(self, model_name: str) -> Path:
        """preds.jsonl in the official format, from every finished instance on disk."""
        with self.lock:
            lines = []
            for folder in sorted((self.root / "instances").glob("*")):
                status = self.status(folder.name)
                if status is None or status.state != "done":
                    continue
                patch = (folder / "patch.diff").read_text() if (folder / "patch.diff").is_file() else ""
                pred = {"instance_id": folder.name, "model_name_or_path": model_name, "model_patch": patch}
                lines.append(json.dumps(pred))
            path = self.root / "preds.jsonl"
            write_atomic(path, "".join(line + "\n" for line in lines))
            return path


def model_address(config: RunConfig) -> str | None:
    """Where the run's model is reached: the server in its spec, else `-M base_url`; None for the
    backend's default endpoint or an in-process model."""
    return backend_for(config.model).address() or config.model_options.base_url


def defining(config: RunConfig) -> dict[str, Any]:
    """The DEFINING_KEYS settings, less what only says how the model is reached (REACH_OPTIONS and the
    server address of the spec): a resumed run must keep the rest."""
    record = config.model_dump(mode="json", include=set(DEFINING_KEYS))
    record["model"] = backend_for(config.model).without_address()
    for option in REACH_OPTIONS:
        record["model_options"].pop(option, None)
    return record


def leaves(key: str, value: Any) -> Iterator[tuple[str, Any]]:
    """Dotted keys and values of nested mappings; `type` first, so a scaffold of another type is named
    by its type rather than by the first key that differs."""
    if isinstance(value, dict) and value:
        for name in sorted(value, key=lambda name: name != "type"):
            yield from leaves(f"{key}.{name}", value[name])
    else:
        yield key, value


def first_difference(key: str, before: Any, after: Any) -> tuple[str, Any, Any] | None:
    """The first dotted key under `key` whose value differs, with both values (None where absent)."""
    was, asked = dict(leaves(key, before)), dict(leaves(key, after))
    for name in [*asked, *(name for name in was if name not in asked)]:
        if name not in was or name not in asked or was[name] != asked[name]:
            return name, was.get(name), asked.get(name)
    return None


def shown(value: Any) -> str:
    """A value on one line, cut short: the key already says which prompt differs."""
    text = value if isinstance(value, str) and "\n" not in value else json.dumps(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."
