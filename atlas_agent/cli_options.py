"""The options several `atlas` commands share, typed once."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

Dataset = Annotated[
    str,
    typer.Option("--dataset", "-d", help="atlas-mini, a task-repo dir, a .json/.jsonl/.parquet file, or a HF name"),
]
Split = Annotated[str, typer.Option(help="Dataset split.")]
Instances = Annotated[str | None, typer.Option("--instances", "-i", help="Comma/space separated instance ids.")]
Filter = Annotated[str | None, typer.Option("--filter", help="Regex on instance ids.")]
Slice = Annotated[str | None, typer.Option("--slice", help="Python slice over the selection, e.g. 0:10.")]
Shuffle = Annotated[int | None, typer.Option("--shuffle", help="Shuffle with this seed before slicing.")]
Workers = Annotated[int, typer.Option("--workers", "-w", min=1, help="Parallel instances.")]
RunsDir = Annotated[Path, typer.Option("--runs-dir", help="Where run directories live.")]


class Runtime(StrEnum):
    docker = "docker"
    local = "local"


ModelSpec = Annotated[
    str, typer.Option("--model", "-m", help="claude-*, openai:URL/MODEL, local:smollm2, gguf:PATH, replay:FILE")
]
RunId = Annotated[str | None, typer.Option("--run-id", help="Run directory name; reuse it to resume.")]
ScaffoldSpec = Annotated[str, typer.Option("--scaffold", "-s", help="A shipped scaffold name or a .yaml path.")]
ScaffoldOverrides = Annotated[
    list[str] | None, typer.Option("--config", "-c", help="Override a scaffold key: -c limits.max_steps=20")
]
ModelOverrides = Annotated[
    list[str] | None, typer.Option("--model-option", "-M", help="Model option: -M temperature=0.2")
]
MaxCost = Annotated[float | None, typer.Option(help="Stop starting instances once the run cost this (USD).")]
Redo = Annotated[
    list[str] | None,
    typer.Option(
        "--redo",
        help="Run these again even if done: instance ids, `errors` or `unresolved` (graded so by `atlas eval`); "
        "comma-separated or repeated. Their earlier files move to instances/<id>/previous-<N>/.",
    ),
]
Evaluate = Annotated[bool, typer.Option("--eval/--no-eval", help="Grade with the official harness afterwards.")]
RuntimeOption = Annotated[
    Runtime,
    typer.Option(
        help="docker: a task container per workspace. local: a checkout on this machine, for hosts without "
        "Docker (no isolation: commands run as you); grade its predictions with `atlas eval` where Docker is.",
    ),
]
