"""Resuming a run: only with the settings its finished instances ran with, so run.yaml stays true."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from atlas_agent.errors import AtlasError
from atlas_agent.models.options import parse_model_options
from atlas_agent.rundir import RunConfig, RunDir
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.scaffolds.loader import load_scaffold
from atlas_agent.tasks import MINI_SUITE_DIR, load_tasks
from helpers import atlas, one_line_error

FIRST, SECOND = "atlas__textkit-1", "atlas__tally-1"


def config(
    *model_options: str, scaffold: str = "tools", overrides: tuple[str, ...] = (), **fields: object
) -> RunConfig:
    return RunConfig.model_validate(
        {
            "run_id": "try1",
            "model": "replay:script",
            "model_options": parse_model_options(list(model_options)),
            "scaffold": load_scaffold(scaffold, list(overrides)),
            **fields,
        }
    )


def refusal(run_dir: RunDir, changed: RunConfig) -> str:
    with pytest.raises(AtlasError) as caught:
        run_dir.check_resume(changed)
    return str(caught.value)


def test_the_first_setting_that_differs_is_named_with_both_values(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path / "try1")
    run_dir.write_config(config("temperature=0.2"))
    assert refusal(run_dir, config("temperature=0.7")) == (
        "run try1 was started with model_options.temperature=0.2; this command asks for 0.7: "
        "use a new --run-id or the same options"
    )
    assert "with model=replay:script; this command asks for replay:other:" in refusal(
        run_dir, config("temperature=0.2", model="replay:other")
    )
    assert "with scaffold.type=tools; this command asks for bash-only:" in refusal(
        run_dir, config("temperature=0.2", scaffold="bash-only")
    ), "a scaffold of another type is named by its type"
    assert "scaffold.sampling.max_output_tokens=null; this command asks for 321:" in refusal(
        run_dir, config("temperature=0.2", overrides=("sampling.max_output_tokens=321",))
    )
    assert "runtime.limits.memory=4g; this command asks for 8g:" in refusal(
        run_dir, config("temperature=0.2", runtime={"type": "docker", "limits": {"memory": "8g"}})
    )
    assert "runtime.type=docker; this command asks for local:" in refusal(
        run_dir, config("temperature=0.2", runtime={"type": "local"})
    ), "a runtime of another type is named by its type"
    prompt = refusal(run_dir, config("temperature=0.2", overrides=("prompts.system=Be brief.",)))
    assert 'started with scaffold.prompts.system="You are a software engineer' in prompt
    assert "...; this command asks for Be brief.:" in prompt, "a long prompt is cut short"
    assert "\n" not in prompt, "a prompt's newlines are escaped"


def test_workers_selection_and_the_cost_limit_may_change(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path / "try1")
    run_dir.write_config(config("temperature=0.2"))
    later = config("temperature=0.2", workers=4, max_cost_usd=5.0, selection={"slice": "0:20"})
    run_dir.write_config(later)
    assert run_dir.config() == later


@pytest.mark.docker
def test_atlas_run_refuses_a_resume_with_other_settings(tmp_path: Path, docker_client: object) -> None:
    prepare_images(
        docker_client, [t for t in load_tasks("atlas-mini") if t.instance_id in (FIRST, SECOND)], MINI_SUITE_DIR
    )
    script = tmp_path / "script.yaml"
    script.write_text("default: [submit]\n")
    other = tmp_path / "other.yaml"
    other.write_text("default: [submit]\n")

    def run(*args: str, instances: str = FIRST, model: Path = script):
        base = ["run", "--dataset", "atlas-mini", "--instances", instances, "--run-id", "try1"]
        return atlas(*base, "--model", f"replay:{model}", *args, cwd=tmp_path)

    first = run("-M", "temperature=0.2")
    assert first.returncode == 0, first.stderr
    record = tmp_path / "runs" / "try1" / "run.yaml"
    written = record.read_text()

    refused = run("-M", "temperature=0.7")
    assert refused.returncode == 1
    assert one_line_error(refused) == (
        "error: run try1 was started with model_options.temperature=0.2; this command asks for 0.7: "
        "use a new --run-id or the same options"
    )
    assert "model=replay:" in one_line_error(run("-M", "temperature=0.2", model=other))
    assert "scaffold.limits.max_steps=60; this command asks for 5:" in one_line_error(
        run("-M", "temperature=0.2", "-c", "limits.max_steps=5")
    )
    assert "model_options.temperature=0.2; this command asks for null:" in one_line_error(run())
    assert "runtime.type=docker; this command asks for local:" in one_line_error(
        run("-M", "temperature=0.2", "--runtime", "local")
    )
    assert record.read_text() == written, "a refused resume leaves run.yaml as it was"

    resumed = run("-M", "temperature=0.2", "--workers", "2", instances=f"{FIRST},{SECOND}")
    assert resumed.returncode == 0, resumed.stderr
    assert "2 tasks, 1 already done" in resumed.stderr
    recorded = yaml.safe_load(record.read_text())["config"]
    assert recorded["workers"] == 2 and recorded["selection"]["instances"] == [FIRST, SECOND]
    assert recorded["model_options"]["temperature"] == 0.2
    status = json.loads((tmp_path / "runs" / "try1" / "instances" / SECOND / "status.json").read_text())
    assert status["state"] == "done"
