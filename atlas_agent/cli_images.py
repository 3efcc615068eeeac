"""`atlas images ls | pull | prune`: the task images on this engine, the disk they take, and their
removal, least recently used first (`atlas images build` lives with the other commands in cli.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any

import typer

from atlas_agent.cli_options import Dataset, Filter, Instances, Split

Command = Callable[..., Any]

COUNTED = (
    "Counted: the layers only task images hold, each once however many share it (layers that Atlas's base "
    "and environment images, or any other image, also hold are not counted); `atlas images ls` shows sizes."
)
SIZE_UNITS = "KB, MB, GB decimal; KiB, MiB, GiB binary"
ImageBudgetOption = Annotated[
    str | None,
    typer.Option(
        "--image-budget",
        help=f"Disk that task images may take, e.g. 60GiB ({SIZE_UNITS}). Each image is then built or pulled "
        "just before its instance runs, and the least recently used task images no running instance needs "
        f"are removed to stay within it. Not part of the run's identity: a resume may change it. {COUNTED}",
        show_default=False,
    ),
]


def register_image_commands(images_app: typer.Typer, friendly: Callable[[Command], Command]) -> None:
    """Adds ls, pull and prune to `atlas images`, their failures reported by `friendly`."""
    images_app.command("ls")(friendly(images_ls))
    images_app.command("pull")(friendly(images_pull))
    images_app.command("prune")(friendly(images_prune))


def images_ls() -> None:
    """List task images: disk, creation, Atlas's last use, the instance they serve."""
    from atlas_agent.runtime.docker_client import connect
    from atlas_agent.runtime.image_store import instance_of, last_use, snapshot
    from atlas_agent.runtime.image_usage import load_usage
    from atlas_agent.runtime.sizes import format_size

    images, usage = snapshot(connect()), load_usage()
    rows = [["IMAGE", "INSTANCE", "DATASET", "SIZE", "UNIQUE", "CREATED", "LAST USE", "IN USE"]]
    for image in sorted(images.tasks, key=lambda image: last_use(image, usage), reverse=True):
        record = next((usage[name] for name in image.names if name in usage), None)
        rows.append(
            [
                ", ".join(image.names),
                instance_of(image, usage) or "-",
                (record.dataset or "-") if record else "-",
                format_size(image.size),
                format_size(images.unique(image)),
                _when(image.created),
                f"{_when(record.last_used)} ({record.event})" if record else "-",
                "yes" if image.id in images.in_use else "no",
            ]
        )
    _print_columns(rows)
    typer.echo(
        f"{len(images.tasks)} task image(s) take {format_size(images.task_footprint())} that no other image "
        "holds (SIZE: every layer of an image; UNIQUE: what removing it alone frees)"
    )


def images_pull(
    dataset: Dataset = "atlas-mini", split: Split = "test", instances: Instances = None, filter_: Filter = None
) -> None:
    """Pull the official image of every selected task that is missing (a task repo's images are built:
    `atlas images build`)."""
    from atlas_agent.runtime.docker_client import connect
    from atlas_agent.runtime.image_usage import record_use
    from atlas_agent.runtime.images import ensure_image_present, image_exists
    from atlas_agent.runtime.task_images import task_dockerfile
    from atlas_agent.tasks import Selection, load_tasks, parse_instances, select_tasks
    from atlas_agent.tasks.loaders import task_repo_dir

    tasks = select_tasks(load_tasks(dataset, split), Selection(instances=parse_instances(instances), filter=filter_))
    client, task_repo = connect(), task_repo_dir(dataset)
    for task in tasks:
        if task_dockerfile(task_repo, task.instance_id) is not None:
            typer.echo(f"  {task.instance_id}: built from the task repo, not pulled (atlas images build)")
        elif image_exists(client, task.image):
            typer.echo(f"  {task.instance_id}: present")
        else:
            ensure_image_present(client, task.image)
            record_use(task.image, "pulled", instance_id=task.instance_id, dataset=dataset)
            typer.echo(f"  {task.instance_id}: pulled")


def images_prune(
    budget: Annotated[
        str | None,
        typer.Option(
            help=f"Remove least recently used task images until they take at most this ({SIZE_UNITS}). {COUNTED}"
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Remove every task image no container uses.")] = False,
) -> None:
    """Remove task images, least recently used first; never the base and environment images Atlas builds
    nor an image a container uses."""
    from atlas_agent.errors import AtlasError
    from atlas_agent.runtime.docker_client import connect
    from atlas_agent.runtime.image_budget import evict
    from atlas_agent.runtime.sizes import format_size, parse_size

    if (budget is not None) == all_:
        raise AtlasError("atlas images prune needs --budget SIZE (e.g. 60GiB) or --all")
    limit = None if budget is None else parse_size(budget, "--budget")
    eviction = evict(connect(), limit)
    for removal in eviction.removed:
        typer.echo(f"removed {', '.join(removal.image.names)} ({format_size(removal.freed)} freed)")
    typer.echo(f"freed {format_size(eviction.freed)}; task images now take {format_size(eviction.footprint)}")
    if eviction.footprint > (limit or 0):
        typer.echo("the task images left are in use: a container was created from each")


def _when(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _print_columns(rows: Sequence[Sequence[str]]) -> None:
    """Aligned columns, one image a line, as `docker images` prints them: easy to read and to grep."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
