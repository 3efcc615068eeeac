"""Grade predictions with the official SWE-bench harness, in-process.

The harness's own `run_instance` does the work (patch application chain, eval script, log
parsing, `get_eval_report`). Two things are adjusted around it, never inside it:
- its containers are created with network mode `none` on every engine (the harness leaves
  the engine default, which is a bridged network on a normal install), and carry Atlas's
  labels so `atlas gc` can find any left behind;
- its log directory (a module-level constant) points into the run directory.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import docker
import swebench.harness.reporting as official_reporting
import swebench.harness.run_evaluation as official_eval
from swebench.harness.utils import make_test_spec

from atlas_agent.runtime.orphans import owner_labels

_LOG_DIR_LOCK = threading.Lock()


class _SealedContainers:
    """`client.containers` with the network forced off and Atlas labels added."""

    def __init__(self, inner: Any, run_id: str) -> None:
        self._inner = inner
        self._labels = {**owner_labels(run_id), "atlas.role": "grading"}

    def create(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["network_mode"] = "none"
        kwargs.pop("network", None)
        kwargs["labels"] = {**(kwargs.get("labels") or {}), **self._labels}
        return self._inner.create(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class SealedClient:
    """A DockerClient whose containers can never reach a network."""

    def __init__(self, client: docker.DockerClient, run_id: str) -> None:
        self._client = client
        self.containers = _SealedContainers(client.containers, run_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@contextlib.contextmanager
def evaluation_log_dir(path: Path) -> Iterator[None]:
    """Point the harness's log directory at `path` for the duration of one grading pass."""
    with _LOG_DIR_LOCK:
        saved = official_eval.RUN_EVALUATION_LOG_DIR, official_reporting.RUN_EVALUATION_LOG_DIR
        official_eval.RUN_EVALUATION_LOG_DIR = path
        official_reporting.RUN_EVALUATION_LOG_DIR = path
        try:
            yield
        finally:
            official_eval.RUN_EVALUATION_LOG_DIR, official_reporting.RUN_EVALUATION_LOG_DIR = saved


def grade(
    client: docker.DockerClient,
    rows: dict[str, dict[str, Any]],
    predictions: dict[str, dict[str, Any]],
    *,
    log_dir: Path,
    run_id: str,
    workers: int = 1,
    timeout: int = 1800,
    skip_patch: bool = False,
    on_graded: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the official `run_instance` for every non-empty prediction, then the official report.

    `rows` are harness rows (5.x columns) by instance id. Returns the official run report.
    Instances already graded under `log_dir/run_id` are not graded again (the harness's cache):
    remove that directory first for a fresh grading.
    """
    if not predictions:
        return no_grading_report(rows)
    sealed = SealedClient(client, run_id)
    report_hook = on_graded or (lambda _id: None)
    todo = [iid for iid, pred in predictions.items() if skip_patch or pred.get("model_patch")]
    with evaluation_log_dir(log_dir):
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {
                pool.submit(
                    official_eval.run_instance,
                    make_test_spec(rows[iid]),
                    predictions[iid],
                    sealed,
                    run_id,
                    timeout,
                    skip_patch=skip_patch,
                ): iid
                for iid in todo
            }
            for future in as_completed(futures):
                future.result()
                report_hook(futures[future])
        # The official report prints its summary; keep it in the run directory, not on the console.
        console = io.StringIO()
        with contextlib.redirect_stdout(console):
            report_path = official_reporting.make_run_report(
                predictions, list(rows.values()), run_id, None, str(log_dir / run_id)
            )
    (log_dir / run_id / "harness-summary.log").write_text(console.getvalue())
    return dict(json.loads(Path(report_path).read_text()))


def instance_reports(
    log_dir: Path, run_id: str, model_name: str, instance_ids: list[str]
) -> dict[str, dict[str, Any] | None]:
    """Per instance: the harness's own report (resolved, tests_status, ...); None when it never graded."""
    reports: dict[str, dict[str, Any] | None] = {}
    for iid in instance_ids:
        path = instance_log_dir(log_dir, run_id, model_name, iid) / "report.json"
        try:
            reports[iid] = dict(json.loads(path.read_text())[iid])
        except (OSError, ValueError, KeyError, TypeError):
            reports[iid] = None
    return reports


def instance_log_dir(log_dir: Path, run_id: str, model_name: str, instance_id: str) -> Path:
    """Where the harness keeps one instance's logs (run_instance.log, test_output.txt, report.json)."""
    return log_dir / run_id / model_name.replace("/", "__") / instance_id


def no_grading_report(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The official report's shape for a grading with no prediction at all (the harness cannot write one)."""
    return {
        "total_instances": len(rows),
        "submitted_instances": 0,
        "completed_ids": [],
        "incomplete_ids": sorted(rows),
        "empty_patch_ids": [],
        "resolved_ids": [],
        "unresolved_ids": [],
        "error_ids": [],
        "infra_failure_ids": [],
        "ambiguous_failure_ids": [],
        "failure_reasons": {},
    }
