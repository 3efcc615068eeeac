"""The `atlas` command line: thin wrappers that parse options and call the modules that do the work."""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from atlas_agent.cli_branch import FromStep, tasks_to_run
from atlas_agent.cli_compare import register_compare_commands
from atlas_agent.cli_export import register_export_commands
from atlas_agent.cli_images import ImageBudgetOption, register_image_commands
from atlas_agent.cli_options import (
    Dataset,
    Evaluate,
    Filter,
    Instances,
    MaxCost,
    ModelOverrides,
    ModelSpec,
    Redo,
    RunId,
    RunsDir,
    Runtime,
    RuntimeOption,
    ScaffoldOverrides,
    ScaffoldSpec,
    Shuffle,
    Slice,
    Split,
    Workers,
)
from atlas_agent.cli_view import register_view_commands
from atlas_agent.errors import AtlasError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Agentic SWE-bench evaluation.")
images_app = typer.Typer(no_args_is_help=True, help="Build, pull, list or prune task images.")
app.add_typer(images_app, name="images")
models_app = typer.Typer(no_args_is_help=True, help="Prepare local models.")
app.add_typer(models_app, name="models")
console = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

# the bundled SmolLM2-135M on the CPU: runs anywhere, rarely solves anything, proves the path is real
DEFAULT_MODEL = "local:smollm2"
# `atlas run`'s exit status when instances ended in an error (1: the command itself failed)
INSTANCES_ERRORED = 3


def friendly_errors(func: F) -> F:
    """Every user-facing failure is one line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from atlas_agent.runtime.cleanup import install_signal_handlers

        install_signal_handlers()
        try:
            return func(*args, **kwargs)
        except AtlasError as exc:
            # the message is plain text: "[gpu]" in an install hint is not rich markup
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True)
            _leave_if_stopping(1)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]: finished work is kept; rerun the same command to resume")
            _leave_if_stopping(130)
            raise typer.Exit(130) from None
        except SystemExit as exc:
            if isinstance(exc.code, int) and exc.code > 128:  # a signal (SIGTERM, SIGHUP) stopped the run
                name = signal.Signals(exc.code - 128).name
                console.print(f"[yellow]stopped[/] ({name}): finished work is kept; rerun the same command to resume")
                _leave_if_stopping(exc.code)
            raise

    return wrapper  # type: ignore[return-value]


def _leave_if_stopping(code: int) -> None:
    """A stopping run leaves now: its busy workers (a model call can take minutes) are not waited for.
    Every run file is written atomically, so whatever they were writing is simply not there."""
    from atlas_agent.runtime import cleanup

    if not cleanup.stop_reason():
        return
    cleanup.remove_all()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _load_selection(
    dataset: str,
    split: str,
    instances: str | None,
    filter_: str | None,
    slice_: str | None,
    shuffle: int | None,
) -> tuple[Any, list[Any]]:
    from atlas_agent.tasks import Selection, load_tasks, select_tasks
    from atlas_agent.tasks.selection import parse_instances

    selection = Selection(instances=parse_instances(instances), filter=filter_, slice=slice_, shuffle=shuffle)
    return selection, select_tasks(load_tasks(dataset, split), selection)


@app.command()
@friendly_errors
def run(
    dataset: Dataset = "atlas-mini",
    model: ModelSpec = DEFAULT_MODEL,
    run_id: RunId = None,
    workers: Workers = 1,
    split: Split = "test",
    instances: Instances = None,
    filter_: Filter = None,
    slice_: Slice = None,
    shuffle: Shuffle = None,
    scaffold: ScaffoldSpec = "tools",
    overrides: ScaffoldOverrides = None,
    model_overrides: ModelOverrides = None,
    max_cost: MaxCost = None,
    runs_dir: RunsDir = Path("runs"),
    evaluate: Evaluate = False,
    runtime: RuntimeOption = Runtime.docker,
    image_budget: ImageBudgetOption = None,
    redo: Redo = None,
    from_: FromStep = None,
) -> None:
    """Run an agent over a dataset; results land in runs/RUN_ID/."""
    from atlas_agent.cli_eval import evaluate_after_run
    from atlas_agent.cli_run import run_on_screen
    from atlas_agent.models import open_provider
    from atlas_agent.models.backends import backend_for
    from atlas_agent.models.options import parse_model_options
    from atlas_agent.rundir import RunConfig, RunDir
    from atlas_agent.runner import Runner
    from atlas_agent.runtime.config import runtime_config
    from atlas_agent.scaffolds.loader import load_scaffold

    scaffold_config = load_scaffold(scaffold, overrides)
    chosen = (dataset, split, instances, filter_, slice_, shuffle)
    to_run = tasks_to_run(from_, runs_dir, (scaffold, scaffold_config), chosen)
    options = parse_model_options([*backend_for(model).option_defaults, *(model_overrides or [])])
    run_id = run_id or datetime.now(UTC).strftime("run-%Y%m%d-%H%M%S")
    run_dir = RunDir.of_run(runs_dir, run_id)  # a run id that leaves runs_dir is refused here
    config = RunConfig(
        run_id=run_id,
        **to_run.config_fields(),
        model=model,
        model_options=options,
        max_cost_usd=max_cost,
        workers=workers,
        scaffold_name=scaffold,
        scaffold=scaffold_config,
        runtime=runtime_config(runtime.value, image_budget),
    )
    # refused before a model loads or an image builds: a resume with other settings, a --redo of nothing
    run_dir.check_resume(config)
    redone = run_dir.redo_targets(redo or [], [task.instance_id for task in to_run.tasks])
    runner = Runner(config, open_provider(model, options), runs_dir, notice=_notice, branch=to_run.replay)
    runner.run_dir.damaged |= run_dir.damaged  # what the checks above found, to be warned of with the rest
    errored = run_on_screen(runner, to_run.tasks, redone, console)
    if evaluate:
        evaluate_after_run(console, run_dir.root, workers, _notice)
    if errored:
        # the model backend or the runtime failed them, not the agent: a script must see it
        raise typer.Exit(INSTANCES_ERRORED)


def _notice(line: str) -> None:
    console.print(line, style="yellow", highlight=False)


class TamperChoice(StrEnum):
    STRIP = "strip"
    REFUSE = "refuse"
    OFF = "off"


@app.command("eval")
@friendly_errors
def eval_(
    run_path: Annotated[Path, typer.Argument(help="A run directory, e.g. runs/ID.")],
    workers: Workers = 1,
    timeout: Annotated[int, typer.Option(help="Seconds allowed for one instance's tests.")] = 1800,
    tamper: Annotated[
        TamperChoice,
        typer.Option(
            help="Patch hunks that edit test infrastructure (conftest.py, pytest settings, test files, start-up "
            "hooks, the test runner): strip them before grading, refuse the instance, or off (grade as written, "
            "as the official harness does). Reported either way."
        ),
    ] = TamperChoice.STRIP,
    repeat: Annotated[
        int, typer.Option(min=1, help="Grade this many times; instances whose verdict changes are listed as flaky.")
    ] = 1,
    reuse: Annotated[
        bool, typer.Option(help="Keep earlier grading logs: instances already graded are not graded again.")
    ] = False,
) -> None:
    """Grade a run with the official SWE-bench harness; writes report.json and report.md."""
    from atlas_agent.cli_eval import evaluate

    evaluate(
        console,
        run_path,
        workers=workers,
        timeout=timeout,
        reuse=reuse,
        tamper=tamper.value,
        repeat=repeat,
        notice=_notice,
    )


@app.command()
@friendly_errors
def validate(
    dataset: Dataset = "atlas-mini",
    split: Split = "test",
    instances: Instances = None,
    filter_: Filter = None,
    workers: Workers = 1,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Grade every task's gold patch and empty patch; fail if a gold is unresolved or an empty one resolves."""
    from atlas_agent.cli_progress import Progress
    from atlas_agent.grading.validate import validate_tasks, validation_dir
    from atlas_agent.runtime.docker_client import connect
    from atlas_agent.tasks.loaders import task_repo_dir

    _, tasks = _load_selection(dataset, split, instances, filter_, None, None)
    log_dir = validation_dir(runs_dir, dataset)
    with Progress(console, "validate") as progress:
        rows = validate_tasks(connect(), tasks, task_repo_dir(dataset), log_dir, workers=workers, progress=progress)
    table = Table("instance", "gold", "empty patch", "verdict", "why")
    for row in rows:
        table.add_row(
            row.instance_id,
            _verdict(row.gold_resolved),
            _verdict(row.empty_resolved),
            "[green]ok[/]" if row.ok else "[bold red]BROKEN[/]",
            escape(row.why),
        )
    Console().print(table)
    broken = [f"{row.instance_id} ({row.why})" for row in rows if not row.ok]
    if broken:
        raise AtlasError(f"{len(broken)} task(s) fail validation: {'; '.join(broken)} (logs: {log_dir})")
    console.print(f"all {len(rows)} tasks valid: every gold patch resolves, no FAIL_TO_PASS test passes without it")


def _verdict(resolved: bool | None) -> str:
    return {True: "resolved", False: "unresolved", None: "[red]error[/]"}[resolved]


@images_app.command("build")
@friendly_errors
def images_build(
    dataset: Dataset = "atlas-mini",
    split: Split = "test",
    instances: Instances = None,
    force: Annotated[bool, typer.Option(help="Rebuild task images even if present.")] = False,
) -> None:
    """Build (offline) or pull the image of every selected task."""
    from atlas_agent.cli_progress import Progress
    from atlas_agent.runtime.docker_client import connect
    from atlas_agent.runtime.images import ensure_env_image
    from atlas_agent.runtime.task_images import prepare_images
    from atlas_agent.tasks.loaders import task_repo_dir

    _, tasks = _load_selection(dataset, split, instances, None, None, None)
    client = connect()
    with console.status("base and environment images"):
        ensure_env_image(client)
    with Progress(console, "task images", len(tasks)) as progress:
        for task in tasks:  # one at a time, so that the display knows which one is being built
            progress.started(task.instance_id)
            prepare_images(
                client,
                [task],
                task_repo_dir(dataset),
                force=force,
                on_image=lambda iid, action: progress.finished(iid, f"{iid}: {action}"),
            )


class SpeculationChoice(StrEnum):
    NONE = "none"
    NGRAM = "ngram"
    DRAFT = "draft"


@app.command("serve")
@friendly_errors
def serve_command(
    model: Annotated[str, typer.Argument(help="local:smollm2, gguf:PATH, exl2:MODEL_DIR or exl3:MODEL_DIR (GPU).")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    agents: Annotated[int, typer.Option("--agents", "-n", min=1, help="Concurrent agents to size the cache for.")] = 1,
    context: Annotated[int | None, typer.Option(help="Tokens per agent (default: the most that fits).")] = None,
    cache: Annotated[str | None, typer.Option(help="KV cache: FP16, Q8, Q6 or Q4 (default: planned).")] = None,
    speculation: Annotated[
        SpeculationChoice | None,
        typer.Option(help="Speculative decoding (default: ngram, prompt lookup, on a GPU; none on the CPU)."),
    ] = None,
    draft_model: Annotated[
        str | None, typer.Option(help="Model directory --speculation draft drafts with (same tokenizer).")
    ] = None,
) -> None:
    """Serve a local model over the OpenAI Chat Completions API (tools, streaming, /metrics)."""
    from atlas_agent.models.options import parse_speculation
    from atlas_agent.serve.app import serve
    from atlas_agent.serve.open import open_engine

    chosen = parse_speculation(speculation.value) if speculation else None
    engine = open_engine(
        model, agents=agents, context=context, cache=cache, speculation=chosen, draft_model=draft_model
    )
    console.print(
        f"serving {engine.model_name} at http://{host}:{port}/v1"
        f" (window {engine.context_window} tokens, speculation {engine.speculation})"
    )
    serve(engine, host, port, engine.model_name)


@models_app.command("prepare")
@friendly_errors
def models_prepare(
    source: Annotated[str, typer.Argument(help="local:smollm2, a .gguf file, or a Hugging Face safetensors dir.")],
    output: Annotated[Path, typer.Argument(help="The EXL2 model directory to write.")],
    bpw: Annotated[float, typer.Option(help="Bits per weight, 2.0-8.0.")] = 4.0,
    head_bits: Annotated[int, typer.Option(help="Bits of the output layer: 2, 3, 4, 5, 6 or 8.")] = 6,
) -> None:
    """Quantize a model to EXL2 with ExLlamaV2's converter (needs an NVIDIA GPU)."""
    from atlas_agent.modelfiles.convert import prepare_model

    done = prepare_model(source, output, bpw=bpw, head_bits=head_bits, echo=console.print)
    console.print(f"EXL2 model ready: {done} (serve it: atlas serve exl2:{done})")


@app.command("plan-vram")
@friendly_errors
def plan_vram(
    model_dir: Annotated[Path, typer.Argument(help="EXL2 or EXL3 model directory (or its config.json).")],
    vram: Annotated[str, typer.Option(help="GPU memory: 24GiB, 24000MiB, 24GB (decimal).")] = "24GiB",
    agents: Annotated[int, typer.Option("--agents", "-n", help="Concurrent agents.")] = 1,
    bpw: Annotated[float | None, typer.Option(help="Bits per weight, if config.json has none.")] = None,
    quant_format: Annotated[
        str | None, typer.Option("--format", help="exl2 or exl3 weights, if config.json names neither.")
    ] = None,
    draft: Annotated[
        Path | None, typer.Option(help="Draft model directory of `-M speculation=draft`: counted on top.")
    ] = None,
    cache: Annotated[str | None, typer.Option(help="Force FP16, Q8, Q6 or Q4.")] = None,
    min_context: Annotated[int, typer.Option(help="Tokens every agent needs.")] = 16384,
) -> None:
    """Pick the KV-cache type and context per agent that fit one GPU."""
    from atlas_agent.modelfiles.vram import choose_plan, load_model_shape, plan_request, render_plan

    request = plan_request(
        vram=vram,
        agents=agents,
        bpw=bpw,
        quant_format=quant_format,
        draft=load_model_shape(draft) if draft else None,
        cache_type=cache,
        min_context=min_context,
    )
    typer.echo(render_plan(choose_plan(load_model_shape(model_dir), request)))


@app.command()
@friendly_errors
def scaffolds() -> None:
    """List the shipped scaffolds, one line each."""
    from atlas_agent.scaffolds.loader import bundled_names, load_scaffold

    table = Table("name", "type", "description", box=None)
    for name in bundled_names():
        config = load_scaffold(name)
        table.add_row(name, config.type, config.description)
    Console().print(table)


@app.command()
@friendly_errors
def gc(
    all_: Annotated[bool, typer.Option("--all", help="Remove every Atlas container, even of live runs.")] = False,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Only containers of this run.")] = None,
) -> None:
    """Remove containers left behind by killed runs."""
    from atlas_agent.runtime.docker_client import connect
    from atlas_agent.runtime.orphans import list_containers, remove_containers

    client = connect()
    leftovers = list_containers(client, run_id=run_id, only_orphans=not all_)
    removed = remove_containers(client, leftovers)
    console.print(f"removed {removed} container(s)")


register_image_commands(images_app, friendly_errors)
register_export_commands(app, friendly_errors)
register_view_commands(app, friendly_errors)
register_compare_commands(app, friendly_errors)

if __name__ == "__main__":
    app(prog_name="atlas")
