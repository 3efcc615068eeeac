"""Writing a run's episodes in a foreign format, with the predictions (and results) beside them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlas_agent.export import ExportFormat
from atlas_agent.export.mini import mini_trajectory
from atlas_agent.export.source import Episode, RunSource, read_run
from atlas_agent.export.sweagent import sweagent_trajectory
from atlas_agent.fsutil import path_component, write_json


@dataclass(frozen=True)
class Exported:
    directory: Path
    instances: int


# per format: how one episode is written, and the suffix of its file
_WRITERS: dict[ExportFormat, tuple[Callable[[RunSource, Episode], dict[str, Any]], str]] = {
    ExportFormat.mini: (mini_trajectory, ".traj.json"),
    ExportFormat.sweagent: (sweagent_trajectory, ".traj"),
}


def export_run(run: Path, fmt: ExportFormat, output: Path | None, notice: Callable[[str], None]) -> Exported:
    """Writes every readable trajectory of `run` in `fmt` under `output` (default: the run's
    export/<fmt>/); `notice` hears of each one left out."""
    source = read_run(run, notice)
    directory = output if output is not None else source.root / "export" / fmt.value
    convert, suffix = _WRITERS[fmt]
    for episode in source.episodes:
        name = path_component(episode.instance_id, "instance id")
        write_json(directory / name / f"{name}{suffix}", convert(source, episode))
    write_json(directory / "preds.json", _predictions(source))
    if fmt is ExportFormat.sweagent and source.official is not None:
        write_json(directory / "results.json", source.official)
    return Exported(directory, len(source.episodes))


def _predictions(source: RunSource) -> dict[str, dict[str, str]]:
    """The finished episodes' patches as both tools keep predictions: an object keyed by instance id."""
    return {
        episode.instance_id: {
            "model_name_or_path": episode.trajectory.model,
            "instance_id": episode.instance_id,
            "model_patch": episode.patch,
        }
        for episode in source.episodes
        if episode.status is not None and episode.status.state == "done"
    }
