"""The cascade scaffold in real containers, graded by the official harness: a cheap replay model tries
every instance; only those whose first attempt fails its own check, leaves no patch or stops short go
to the strong model (a second replay, or Claude's wire format from a local server), whose patch is
submitted. Every key of the scaffold changes what happens."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from atlas_agent.runtime.orphans import list_containers
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.scaffolds.config import CascadeScaffoldConfig
from atlas_agent.scaffolds.loader import ScaffoldError, load_scaffold
from atlas_agent.scaffolds.self_check import patch_test_files
from atlas_agent.tasks import MINI_SUITE_DIR, load_tasks
from helpers import SCAFFOLD_REPLAYS, atlas, one_line_error
from servers.anthropic_server import AnthropicServer

docker = pytest.mark.docker

FIRST = SCAFFOLD_REPLAYS / "cascade-first.yaml"
STRONG = SCAFFOLD_REPLAYS / "cascade-strong.yaml"
# the strong script for these breaks the code: were they ever escalated, they would not resolve
KEPT = ["atlas__hoard-2", "atlas__tally-2", "atlas__textkit-2"]
ESCALATED = {
    "atlas__semverkit-3": ["verification_failed"],  # its own reproduction test fails
    "atlas__tally-1": ["verification_failed"],  # an existing test fails with the obvious fix
    "atlas__tally-3": ["step_limit"],
    "atlas__textkit-1": ["empty_patch"],
}
EVERY = sorted([*KEPT, *ESCALATED])
MAIN_OVERRIDES = [
    f"escalate.model=replay:{STRONG}",
    "escalate.model_options.temperature=0.3",
    "escalate.scaffold=bash-only",
    "first.limits.max_steps=4",
]


@pytest.fixture(scope="module")
def images(docker_client) -> None:
    wanted = set(EVERY)
    prepare_images(docker_client, [t for t in load_tasks("atlas-mini") if t.instance_id in wanted], MINI_SUITE_DIR)


def run_cascade(
    cwd: Path, run_id: str, instances: list[str], overrides: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    args = ["run", "--scaffold", "cascade", "--model", f"replay:{FIRST}", "-M", "temperature=0.1"]
    args += ["--instances", ",".join(instances), "--run-id", run_id]
    return atlas(*args, *[arg for item in overrides for arg in ("-c", item)], cwd=cwd, env=env)


def trajectory(run_dir: Path, instance: str) -> dict[str, Any]:
    return dict(json.loads((run_dir / "instances" / instance / "trajectory.json").read_text()))


def texts_of(value: Any) -> str:
    """Every string in a request body, joined: where the prompt is, whatever the block layout."""
    if isinstance(value, str):
        return value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return "\n".join(texts_of(item) for item in items)


def record(run_dir: Path, instance: str) -> dict[str, Any]:
    stages = {stage["name"]: stage["result"] for stage in trajectory(run_dir, instance)["stages"]}
    return dict(stages["cascade"])


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory, images: None, docker_client) -> Path:
    cwd = tmp_path_factory.mktemp("cascade")
    result = run_cascade(cwd, "cascade", EVERY, MAIN_OVERRIDES)
    assert result.returncode == 0, result.stdout + result.stderr
    evaluated = atlas("eval", str(cwd / "runs" / "cascade"), cwd=cwd)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    assert not list_containers(docker_client, run_id="cascade")
    return cwd / "runs" / "cascade"


@docker
def test_escalates_exactly_the_instances_whose_first_attempt_fails(graded: Path) -> None:
    escalated = {iid: record(graded, iid)["triggers"] for iid in EVERY if record(graded, iid)["escalated"]}
    assert escalated == ESCALATED
    for iid in KEPT:
        attempts = trajectory(graded, iid)["attempts"]
        assert [a["model"] for a in attempts] == ["replay:cascade-first (first)"], "never sent to the strong model"


@docker
def test_the_strong_model_resolves_what_it_was_given(graded: Path) -> None:
    report = json.loads((graded / "report.json").read_text())
    assert report["resolved_ids"] == EVERY
    for iid in ESCALATED:
        traj = trajectory(graded, iid)
        assert [a["model"] for a in traj["attempts"]] == [
            "replay:cascade-first (first)",
            "replay:cascade-strong (escalated)",
        ]
        assert traj["choice"]["candidate_id"] == "escalated" and traj["choice"]["method"] == "cascade"
        patch = (graded / "instances" / iid / "patch.diff").read_text()
        assert patch == next(c["patch"] for c in traj["candidates"] if c["id"] == "escalated")


@docker
def test_the_self_check_uses_only_what_the_agent_had(graded: Path) -> None:
    naive = record(graded, "atlas__tally-1")["detail"]
    assert "tests/test_money.py::test_allocate_shares_are_within_one_unit_of_exact" in naive, "an existing test"
    hidden = json.loads((MINI_SUITE_DIR / "tasks" / "atlas__tally-1" / "tests.json").read_text())["FAIL_TO_PASS"]
    evidence = trajectory(graded, "atlas__tally-1")["candidates"][0]["evidence"]
    ran = evidence["evidence"]["passed"] + evidence["evidence"]["failed"]
    assert ran and not set(hidden) & set(ran), "the hidden tests never run in the self-check"
    assert evidence["before"]["failed"] == [], "the existing tests passed without the patch"

    own = trajectory(graded, "atlas__semverkit-3")["candidates"][0]["evidence"]
    assert own["own_tests"] == ["tests/test_issue_caret.py"]
    assert own["new_failures"] == ["tests/test_issue_caret.py::test_caret_zero_zero_patch_excludes_the_next_patch"]

    kept = trajectory(graded, "atlas__tally-2")["candidates"][0]["evidence"]
    assert (
        kept["passed"]
        and "tests/test_repro_convert.py::test_into_base_divides_by_the_rate" in kept["evidence"]["passed"]
    )
    assert record(graded, "atlas__tally-3")["detail"].startswith("the first attempt stopped: step_limit")

    django = trajectory(graded, "atlas__hoard-2")["candidates"][0]["evidence"]
    assert django["own_tests"] == ["tests/handlers/test_zero_timeout.py"]
    assert django["evidence"]["command"].endswith("cache.tests handlers.tests handlers.test_zero_timeout")
    own_test = "test_zero_timeout_expires_at_once (handlers.test_zero_timeout.ZeroTimeoutTests.{})".format(
        "test_zero_timeout_expires_at_once"
    )
    assert own_test in django["evidence"]["passed"], "the patch's own test ran under the task's runner, and passed"


@docker
def test_each_stage_records_its_own_usage_and_sampling(graded: Path) -> None:
    traj = trajectory(graded, "atlas__tally-1")
    first, strong = traj["attempts"]
    assert first["sampling"]["temperature"] == 0.1, "the run's -M is the first model's"
    assert strong["sampling"]["temperature"] == 0.3, "escalate.model_options is the strong model's"
    assert "search / symbols / find_files" in first["system_prompt"], "first: tools"
    assert "(sed, python, heredocs)" in strong["system_prompt"], "escalate.scaffold: bash-only"
    stages = {stage["name"]: stage for stage in record(graded, "atlas__tally-1")["stages"]}
    assert (
        stages["first"]["model"] == "replay:cascade-first" and stages["escalated"]["model"] == "replay:cascade-strong"
    )
    assert stages["first"]["stop_reason"] == stages["escalated"]["stop_reason"] == "submitted"
    assert set(stages["first"]["usage"]) >= {"input_tokens", "cost_usd", "gpu_seconds"}


@docker
def test_report_shows_share_escalated_resolved_by_stage_and_cost(graded: Path) -> None:
    cascade = json.loads((graded / "report.json").read_text())["cascade"]
    assert cascade["instances"] == 7 and cascade["escalated"] == 4 and cascade["escalated_share"] == 0.5714
    assert cascade["escalated_ids"] == sorted(ESCALATED)
    assert cascade["triggers"] == {"empty_patch": 1, "step_limit": 1, "verification_failed": 2}
    assert cascade["resolved_by_stage"] == {
        "first": {"instances": 3, "resolved": 3},
        "escalated": {"instances": 4, "resolved": 4},
    }
    assert "estimate" in cascade["estimate_method"]
    markdown = (graded / "report.md").read_text()
    assert "- escalated to the stronger model: **4 / 7** (57.1%)" in markdown
    assert "- resolved by stage: first attempt kept 3 / 3, escalated 4 / 4" in markdown
    assert (
        "| atlas__tally-3 | escalated | the first attempt stopped: step_limit (4 steps) | $0.0000 | $0.0000 |"
        in markdown
    )
    assert "| atlas__textkit-2 | first | self-check passed: 9 test(s) pass with the patch | $0.0000 | - |" in markdown


@docker
def test_cost_saved_against_claude_alone(tmp_path: Path, images: None) -> None:
    """The strong model is Claude (its wire format from a local server): the cascade pays for one of two
    instances, and the estimate of Claude alone is its mean cost per escalated instance × both."""
    gold = (MINI_SUITE_DIR / "tasks" / "atlas__tally-1" / "gold.patch").read_text()
    script = [
        {"tool_use": {"name": "bash", "input": {"command": f"git apply <<'PATCH'\n{gold}PATCH\n"}}},
        {"tool_use": {"name": "submit", "input": {}}},
    ]
    with AnthropicServer(script) as server:
        overrides = ["escalate.model=claude-sonnet-4-5", f"escalate.model_options.base_url={server.url}"]
        result = run_cascade(
            tmp_path, "claude", ["atlas__textkit-2", "atlas__tally-1"], overrides, {"ANTHROPIC_API_KEY": "k"}
        )
        assert result.returncode == 0, result.stdout + result.stderr
        problem = (MINI_SUITE_DIR / "tasks" / "atlas__tally-1" / "problem_statement.md").read_text().strip()
        assert len(server.requests) == 2, "the kept instance never reaches Claude"
        assert all(problem in texts_of(r.body) for r in server.requests)
    run_dir = tmp_path / "runs" / "claude"
    assert atlas("eval", str(run_dir), cwd=tmp_path).returncode == 0
    report = json.loads((run_dir / "report.json").read_text())
    cascade = report["cascade"]
    spent = cascade["escalated_stage_usage"]["cost_usd"]
    assert spent > 0 and cascade["first_stage_usage"]["cost_usd"] == 0
    assert cascade["cost_usd"] == pytest.approx(report["usage"]["cost_usd"]) == pytest.approx(spent)
    assert cascade["strong_mean_cost_usd"] == pytest.approx(spent)
    assert cascade["strong_alone_estimate_usd"] == pytest.approx(2 * spent)
    assert cascade["saved_usd"] == pytest.approx(spent)
    assert report["resolved_ids"] == ["atlas__tally-1", "atlas__textkit-2"]
    markdown = (run_dir / "report.md").read_text()
    assert f"≈ ${2 * spent:.4f}, an **estimate**" in markdown and f"Saved ≈ ${spent:.4f} (50.0%)" in markdown


@docker
@pytest.mark.parametrize(
    ("override", "instance", "self_checked"),
    [
        ("when.verification_failed=false", "atlas__tally-1", False),
        ("when.empty_patch=false", "atlas__textkit-1", False),
        ("when.stop_reasons=[]", "atlas__tally-3", True),
    ],
)
def test_each_when_key_decides(tmp_path: Path, images: None, override: str, instance: str, self_checked: bool) -> None:
    """Each instance escalates in the main run; with its key off it is kept, and the strong model (Claude,
    with no key to open it) is never opened: a run the cheap model settles needs nothing of it."""
    result = run_cascade(
        tmp_path, "when", [instance], [override, "first.limits.max_steps=4"], {"ANTHROPIC_API_KEY": ""}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = tmp_path / "runs" / "when"
    assert record(run_dir, instance)["escalated"] is False
    assert bool(trajectory(run_dir, instance)["candidates"][0]["evidence"]) is self_checked


@docker
def test_verify_timeout_bounds_the_self_check(tmp_path: Path, images: None) -> None:
    overrides = ["verify_timeout=0.01", f"escalate.model=replay:{STRONG}"]
    assert run_cascade(tmp_path, "timeout", ["atlas__textkit-2"], overrides).returncode == 0
    kept_in_main_run = record(tmp_path / "runs" / "timeout", "atlas__textkit-2")
    assert kept_in_main_run["triggers"] == ["verification_failed"]
    assert "the tests ran past 0.01 s" in kept_in_main_run["detail"]


@docker
def test_an_escalation_model_that_cannot_open_is_the_instances_error(tmp_path: Path, images: None) -> None:
    result = run_cascade(tmp_path, "nokey", ["atlas__tally-3"], ["first.limits.max_steps=4"], {"ANTHROPIC_API_KEY": ""})
    assert result.returncode != 0, "an instance that could not be escalated is an error, rerun on resume"
    status = json.loads((tmp_path / "runs" / "nokey" / "instances" / "atlas__tally-3" / "status.json").read_text())
    assert status["state"] == "error"
    assert "cannot open the escalation model claude-sonnet-4-5: set ANTHROPIC_API_KEY" in status["error"]


def error_of(overrides: list[str]) -> str:
    with pytest.raises(ScaffoldError) as caught:
        load_scaffold("cascade", overrides)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("escalate.modle=x", "escalate.modle: unknown key"),
        ("escalate.model=gpt:x", "escalate.model: unknown model 'gpt:x': use a Claude id"),
        ("escalate.model_options.temprature=1", "escalate.model_options.temprature: unknown key"),
        ("when.stop_reasons=[model_error]", "when.stop_reasons.0: Input should be 'step_limit', "),
        ("when.emtpy_patch=true", "when.emtpy_patch: unknown key"),
        ("first.limits.max_stepz=3", "first.limits.max_stepz: unknown key"),
        ("escalate.scaffold.tools=[bash, grep]", "escalate.scaffold.tools.1: unknown tool 'grep'"),
        ("first=cascade", "scaffold 'cascade' refers back to itself"),
        ("verify_timeout=0", "verify_timeout: Input should be greater than 0"),
    ],
)
def test_bad_keys_are_one_line(override: str, expected: str) -> None:
    assert expected in error_of([override])


def test_a_cascade_is_no_stage_of_a_cascade(tmp_path: Path) -> None:
    path = tmp_path / "nested.yaml"
    path.write_text("type: cascade\nescalate:\n  model: claude-sonnet-4-5\nfirst:\n  type: cascade\n")
    with pytest.raises(ScaffoldError) as caught:
        load_scaffold(str(path))
    assert str(caught.value) == (
        f"{path}:4: first: unknown type 'cascade'; expected one of 'tools', 'bash-only', 'best-of-k', 'agentless'"
    )


def test_cli_refuses_a_bad_escalation_model_in_one_line(tmp_path: Path) -> None:
    line = one_line_error(atlas("run", "--scaffold", "cascade", "-c", "escalate.model=gpt:x", cwd=tmp_path))
    assert "escalate.model: unknown model 'gpt:x'" in line


def test_stages_name_shipped_scaffolds_and_default_to_the_first() -> None:
    config = load_scaffold("cascade", ["first=bash-only", "escalate.scaffold=null", "first.limits.max_steps=7"])
    assert isinstance(config, CascadeScaffoldConfig)
    assert config.first.type == "bash-only" and config.strong_scaffold == config.first
    best = load_scaffold("cascade", ["first=best-of-k"])
    assert isinstance(best, CascadeScaffoldConfig) and best.first.type == "best-of-k"
    assert best.first.attempt.type == "tools", "a referenced file's own references are expanded"


def test_the_escalation_model_opens_once_per_run() -> None:
    config = load_scaffold("cascade", [f"escalate.model=replay:{STRONG}"])
    assert isinstance(config, CascadeScaffoldConfig)
    opened = config.escalation_provider()
    assert config.escalation_provider() is opened, "every instance of the run shares one provider"
    assert load_scaffold("cascade", [f"escalate.model=replay:{STRONG}"]) == config, "what it holds is no setting"


def test_the_test_files_a_patch_adds_or_changes() -> None:
    patch = """\
diff --git a/src/x.py b/src/x.py
--- a/src/x.py
+++ b/src/x.py
@@ -1 +1,2 @@
+++ b/tests/test_in_a_hunk.py
diff --git a/tests/test_repro.py b/tests/test_repro.py
new file mode 100644
--- /dev/null
+++ b/tests/test_repro.py
@@ -0,0 +1 @@
+def test_x(): pass
diff --git a/tests/cache/tests.py b/tests/cache/tests.py
--- a/tests/cache/tests.py
+++ b/tests/cache/tests.py
@@ -1 +1 @@
-a
+b
diff --git a/tests/test_old.py b/tests/test_old.py
deleted file mode 100644
--- a/tests/test_old.py
+++ /dev/null
@@ -1 +0,0 @@
-def test_y(): pass
diff --git a/pkg/parse_test.py b/pkg/parse_test.py
--- a/pkg/parse_test.py
+++ b/pkg/parse_test.py
@@ -1 +1 @@
-a
+b
"""
    assert patch_test_files(patch) == ["tests/test_repro.py", "tests/cache/tests.py", "pkg/parse_test.py"]
