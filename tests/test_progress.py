"""What `atlas run`, `eval`, `validate` and `images build` show while they work: a live table on a terminal
(the real CLI in a pseudo-terminal), timestamped lines elsewhere, a failure's cause on its line as it
happens, and a summary that says what really happened. Replay models and an OpenAI-compatible stand-in
over atlas-mini tasks in real containers."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest
import yaml
from test_openai_client import serve_script

from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, load_tasks
from helpers import ATLAS, atlas, one_line_error
from servers.openai_server import MODEL

pytestmark = pytest.mark.docker

FIXED, ERRORED = "atlas__tally-2", "atlas__textkit-1"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STAMP = r"\d\d:\d\d:\d\d"
NO_STEPS = f"replay script has no steps for {ERRORED} and no `default` list"
# a change that fixes nothing: graded unresolved
NOTE = {"bash": "echo 'looked here' > NOTES.txt"}


@pytest.fixture(scope="module", autouse=True)
def task_images(docker_client) -> None:
    prepare_images(
        docker_client, [t for t in load_tasks("atlas-mini") if t.instance_id in (FIXED, ERRORED)], MINI_SUITE_DIR
    )


def replay(tmp_path: Path, script: dict[str, object]) -> str:
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump(script))
    return f"replay:{path}"


def in_terminal(args: list[str], cwd: Path, timeout: float = 120) -> tuple[int, str]:
    """The CLI in a pseudo-terminal of 160 columns, as a person sees it: its exit status and all it drew."""
    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM", "COLUMNS", "CI")}
    process = subprocess.Popen([ATLAS, *args], cwd=cwd, stdin=child, stdout=child, stderr=child, env=env)
    os.close(child)
    drawn, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([parent], [], [], 0.2)[0]:
            try:
                chunk = os.read(parent, 65536)
            except OSError:  # the terminal closed: the command is done
                break
            drawn += chunk
            if not chunk:
                break
        elif process.poll() is not None:
            break
    os.close(parent)
    return process.wait(timeout=10), drawn.decode(errors="replace")


def test_a_terminal_shows_each_running_instance_with_its_step_and_last_tool(tmp_path: Path) -> None:
    model = replay(tmp_path, {"default": [{"bash": "sleep 1.5 && ls"}, {"bash": "sleep 1.5"}, "submit"]})
    code, drawn = in_terminal(
        ["run", "-i", f"{FIXED},{ERRORED}", "--model", model, "--run-id", "live", "-w", "2"], tmp_path
    )
    screen = ANSI.sub("", drawn)
    assert code == 0, screen
    assert "\x1b[" in drawn, "a terminal gets the live display"
    assert re.search(r"run live \| 0 done, 2 running, 0 errored of 2 \| \d:\d\d elapsed, ETA -", screen), screen
    assert re.search(r"running\s+steps\s+last tool\s+time", screen)
    for instance in (FIXED, ERRORED):
        assert re.search(rf"{instance}\s+1\s+bash\s+\d:\d\d", screen), f"{instance} after its first step"
        assert re.search(rf"{STAMP} \[\d/2\] {instance}: done \(submitted, 3 steps, [\d.]+ s\)", screen)
    assert re.search(r"run live \| 1 done, 1 running, 0 errored of 2 \| \d:\d\d elapsed, ETA \d:\d\d", screen)
    assert "run live: 2 done, 0 errored of 2 to run" in screen


def test_without_a_terminal_each_start_and_finish_is_a_timestamped_line(tmp_path: Path) -> None:
    model = replay(tmp_path, {"instances": {FIXED: [NOTE, "submit"]}})
    result = atlas(
        "run", "-i", f"{FIXED},{ERRORED}", "--model", model, "--run-id", "plain", "--max-cost", "1", cwd=tmp_path
    )
    assert result.returncode == 3, result.stderr  # an instance ended in an error
    lines = result.stderr.splitlines()
    assert "\x1b[" not in result.stderr, "no terminal: no escape codes"
    for instance in (FIXED, ERRORED):
        assert any(re.fullmatch(rf"{STAMP} start {instance}", line) for line in lines), lines
    assert any(
        re.fullmatch(rf"{STAMP} \[\d/2\] {FIXED}: done \(submitted, 2 steps, [\d.]+ s\)", line) for line in lines
    )
    failure = rf"{STAMP} \[\d/2\] {ERRORED}: error \(0 steps, [\d.]+ s\): {re.escape(NO_STEPS)}"
    assert any(re.fullmatch(failure, line) for line in lines), "the cause on the failure's own line"
    assert "run plain: 1 done, 1 errored of 2 to run" in lines
    assert f"  1 x {NO_STEPS} ({ERRORED})" in lines, "causes grouped in the summary"
    assert "1 of 2 instance(s) ended in an error" in result.stderr
    assert "cost limit" not in result.stderr and "not started" not in result.stderr, "nothing was left unstarted"

    graded = atlas("eval", str(tmp_path / "runs" / "plain"), cwd=tmp_path)
    assert graded.returncode == 0, graded.stderr
    assert re.search(rf"^{STAMP} eval plain: grading \(1\)$", graded.stderr, re.M)
    assert re.search(rf"^{STAMP} \[1/1\] {FIXED}: unresolved$", graded.stderr, re.M), graded.stderr


def test_the_cost_limit_says_exactly_what_it_left_unstarted(tmp_path: Path) -> None:
    """The first instance costs more than the limit: the second is not started, and only that is said."""
    script = tmp_path / "submits.yaml"
    script.write_text(yaml.safe_dump({"turns": [{"tool_call": {"name": "submit", "arguments": {}}}] * 2}))
    (tmp_path / "server").mkdir()
    dear = ["price.input=1000000", "price.output=0", "price.cache_write=0", "price.cache_read=0"]
    with serve_script(tmp_path / "server", script) as (port, _log):
        result = atlas(
            "run", "-i", f"{FIXED},{ERRORED}", "--model", f"openai:http://127.0.0.1:{port}/v1/{MODEL}",
            "--run-id", "dear", "--max-cost", "1", *(arg for price in dear for arg in ("-M", price)),
            cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    spent = re.search(r"cost limit: \$([\d.]+) spent of \$1; 1 instance\(s\) not started \(rerun", result.stderr)
    assert spent and float(spent[1]) > 1, result.stderr
    assert "run dear: 1 done, 0 errored, 1 not started (cost limit) of 2 to run" in result.stderr
    assert "ended in an error" not in result.stderr


def test_eval_of_a_run_whose_instances_all_errored_is_one_line(tmp_path: Path) -> None:
    model = replay(tmp_path, {"instances": {}})
    run = atlas("run", "-i", f"{FIXED},{ERRORED}", "--model", model, "--run-id", "failed", "--eval", cwd=tmp_path)
    assert run.returncode == 3, run.stderr
    nothing = "nothing to grade: 2 instance(s) errored; rerun `atlas run` with --run-id failed to retry them"
    assert f"not graded: {nothing}" in run.stderr, "--eval says so and the run still exits 3"
    assert one_line_error(atlas("eval", str(tmp_path / "runs" / "failed"), cwd=tmp_path)) == f"error: {nothing}"


def test_images_build_and_validate_report_each_instance(tmp_path: Path) -> None:
    built = atlas("images", "build", "-i", FIXED, cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert re.search(rf"^{STAMP} start {FIXED}$", built.stderr, re.M)
    assert re.search(rf"^{STAMP} \[1/1\] {FIXED}: present$", built.stderr, re.M), built.stderr
    validated = atlas("validate", "-i", FIXED, cwd=tmp_path)
    assert validated.returncode == 0, validated.stderr
    for label, verdict in (("gold", "resolved"), ("empty", "unresolved")):
        assert re.search(rf"^{STAMP} validate: grading the {label} patches \(1\)$", validated.stderr, re.M)
        assert re.search(rf"^{STAMP} \[1/1\] {FIXED}: {label} patch {verdict}$", validated.stderr, re.M)
