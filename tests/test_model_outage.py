"""Runs that survive the model: outages waited out with visible backoff, a server that comes back on another
address, and replies of megabytes stored bounded. Real HTTP against the wire-format stand-ins."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from pathlib import Path

import pytest
import yaml
from test_openai_client import serve_script

from atlas_agent.errors import AtlasError, ModelError
from atlas_agent.models import open_provider, retry
from atlas_agent.models.options import parse_model_options
from atlas_agent.models.retry import RetryPolicy
from atlas_agent.rundir import RunConfig, RunDir
from atlas_agent.scaffolds.loader import load_scaffold
from atlas_agent.trajectory import STORED_REPLY_CHARS, Step
from atlas_agent.vocabulary import Message, ToolCall
from helpers import BASH_TOOL, atlas
from servers.anthropic_server import AnthropicServer
from servers.openai_server import MODEL, OpenAIServer

pytestmark = pytest.mark.faults
PROMPT = [Message(role="system", content="You fix bugs."), Message(role="user", content="Fix the bug.")]
LS = {"name": "bash", "arguments": {"command": "ls"}}
# the attempts the retries gave a call before outages were waited out
OLD_ATTEMPTS = 6
# an outage of 3 s with a retry-after of 0.25 s: about a dozen failed attempts
OUTAGE = {"seconds": 3, "status": 529, "retry_after": 0.25}
PATIENT = ["retry.max_outage_s=30", "retry.initial_wait_s=0.05", "retry.max_wait_s=0.25"]
NOTICE = re.compile(
    r"model (?P<model>\S+) unavailable \((?P<error>.+)\): retrying in (?P<wait>[\d.]+) s "
    r"\(outage [\d.e-]+ s so far, gives up after (?P<budget>[\d.]+) s\)"
)
INSTANCES = ("atlas__tally-2", "atlas__textkit-1")


@pytest.fixture(autouse=True)
def no_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def notices(caplog: pytest.LogCaptureFixture) -> list[re.Match[str]]:
    """The backoff lines announced so far, each checked to be one whole notice."""
    lines = [r.getMessage() for r in caplog.records if r.name == retry.__name__ and r.levelno == logging.WARNING]
    matches = [NOTICE.fullmatch(line) for line in lines]
    assert all(matches), lines
    return [match for match in matches if match]


def test_an_openai_outage_longer_than_the_old_attempts_is_waited_out(caplog: pytest.LogCaptureFixture) -> None:
    with OpenAIServer([{"outage": OUTAGE}, {"tool_call": LS}]) as server:
        spec = f"openai:{server.url}/{MODEL}"
        provider = open_provider(spec, parse_model_options(PATIENT))
        started = time.monotonic()
        turn = provider.for_instance("atlas__tally-2").complete(PROMPT, [BASH_TOOL])
    assert turn.tool_calls[0].name == "bash" and time.monotonic() - started >= 3
    assert server.outage_errors > OLD_ATTEMPTS, "the attempt count is no longer the limit"
    assert len(turn.retries) == server.outage_errors, "every failed attempt is in the trajectory"
    assert all(r.wait_s >= 0.25 and "HTTP 529: Overloaded" in r.error for r in turn.retries), "retry-after honoured"
    announced = notices(caplog)
    assert len(announced) == len(turn.retries), "each wait is announced, one line each"
    assert {m["model"] for m in announced} == {spec}
    assert {m["error"] for m in announced} == {"HTTP 529: Overloaded"} and {m["budget"] for m in announced} == {"30"}


def test_a_claude_outage_is_waited_out(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    outage = {**OUTAGE, "type": "overloaded_error"}
    script = [{"outage": outage}, {"tool_use": {"name": "bash", "input": {"command": "ls"}}}]
    with AnthropicServer(script) as server:
        options = parse_model_options([f"base_url={server.url}", *PATIENT])
        turn = open_provider("claude-sonnet-4-5", options).for_instance("x").complete(PROMPT, [BASH_TOOL])
    assert turn.tool_calls[0].arguments == {"command": "ls"}
    assert server.outage_errors > OLD_ATTEMPTS and len(turn.retries) == server.outage_errors
    assert all("529 overloaded_error" in r.error for r in turn.retries)
    assert {m["model"] for m in notices(caplog)} == {"claude:claude-sonnet-4-5"}


def test_a_server_that_never_recovers_fails_after_the_budget_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    with OpenAIServer([{"outage": {**OUTAGE, "seconds": 60}}]) as server:
        options = parse_model_options(["retry.max_outage_s=1.5", "retry.initial_wait_s=0.05", "retry.max_wait_s=0.25"])
        spec = f"openai:{server.url}/{MODEL}"
        model = open_provider(spec, options).for_instance("x")
        started = time.monotonic()
        with pytest.raises(ModelError) as failure:
            model.complete(PROMPT, [BASH_TOOL])
    assert 1.5 <= time.monotonic() - started < 5
    message = str(failure.value)
    assert "\n" not in message and message.startswith(f"model {spec} still unavailable after")
    assert "past the 1.5 s outage budget (-M retry.max_outage_s=SECONDS waits longer): HTTP 529" in message
    assert len(notices(caplog)) == server.outage_errors - 1, "the last failure is the error, not a wait"


def test_a_server_that_restarts_is_reached_again() -> None:
    """Connection refused while the server is down; the call goes through once it is back on its port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = OpenAIServer([{"tool_call": LS}])
    restart = threading.Timer(1.5, server.start, kwargs={"port": port})
    restart.start()
    try:
        provider = open_provider(f"openai:http://127.0.0.1:{port}/v1/{MODEL}", parse_model_options(PATIENT))
        turn = provider.for_instance("x").complete(PROMPT, [BASH_TOOL])
    finally:
        restart.join()
        server.stop()
    assert turn.tool_calls and len(turn.retries) > 1
    assert all(f"cannot reach http://127.0.0.1:{port}/v1" in r.error for r in turn.retries)


def test_an_attempt_cap_still_applies_within_the_budget() -> None:
    policy = RetryPolicy(max_outage_s=100, max_attempts=3, initial_wait_s=1, max_wait_s=4)
    assert policy.next_wait(2, None, outage_s=0) is not None and policy.next_wait(3, None, outage_s=0) is None
    assert policy.next_wait(1, retry_after=30, outage_s=80) == 20, "the last wait ends with the budget"
    assert policy.next_wait(1, None, outage_s=100) is None
    assert 2 <= RetryPolicy(initial_wait_s=1, max_wait_s=4).wait_for(500, None) <= 4, "capped, however many"


# --- an endpoint's address is not part of a run's identity ---


def config(model: str, *options: str) -> RunConfig:
    return RunConfig.model_validate(
        {
            "run_id": "moved",
            "model": model,
            "model_options": parse_model_options(list(options)),
            "scaffold": load_scaffold("tools", []),
        }
    )


def refusal(run_dir: RunDir, changed: RunConfig) -> str:
    with pytest.raises(AtlasError) as caught:
        run_dir.check_resume(changed)
    return str(caught.value)


def test_a_resume_may_reach_an_openai_server_at_another_address(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path / "moved")
    first, moved = "openai:http://127.0.0.1:8001/v1/qwen", "openai:http://10.0.0.7:8002/v1/qwen"
    run_dir.write_config(config(first, "temperature=0.2"))
    run_dir.write_config(config(moved, "temperature=0.2", "retry.max_outage_s=3600"))
    record = yaml.safe_load((run_dir.root / "run.yaml").read_text())
    assert record["config"]["model"] == moved, "the config is the latest session's"
    assert [entry["address"] for entry in record["model_addresses"]] == [
        "http://127.0.0.1:8001/v1",
        "http://10.0.0.7:8002/v1",
    ], "and every address used is on record"
    assert all(entry["since"] for entry in record["model_addresses"])
    run_dir.write_config(config(moved, "temperature=0.2"))
    assert len(yaml.safe_load((run_dir.root / "run.yaml").read_text())["model_addresses"]) == 2, "no repeats"

    other_model = refusal(run_dir, config("openai:http://10.0.0.7:8002/v1/llama", "temperature=0.2"))
    assert other_model.startswith(f"run moved was started with model={moved}; this command asks for openai:")
    assert "model_options.temperature=0.2; this command asks for 0.7:" in refusal(
        run_dir, config(moved, "temperature=0.7")
    ), "every other setting still defines the run"


def test_a_resume_may_reach_claude_through_another_base_url(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path / "moved")
    run_dir.write_config(config("claude-sonnet-4-5", "base_url=http://127.0.0.1:9001"))
    run_dir.write_config(config("anthropic:claude-sonnet-4-5", "base_url=http://127.0.0.1:9002", "threads=2"))
    addresses = yaml.safe_load((run_dir.root / "run.yaml").read_text())["model_addresses"]
    assert [entry["address"] for entry in addresses] == ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]
    assert "model=anthropic:claude-sonnet-4-5; this command asks for claude-haiku-4-5:" in refusal(
        run_dir, config("claude-haiku-4-5", "base_url=http://127.0.0.1:9002")
    )


def test_a_run_yaml_without_addresses_keeps_its_first_one(tmp_path: Path) -> None:
    """run.yaml files written before addresses were listed: the address in their config is the first."""
    run_dir = RunDir(tmp_path / "moved")
    run_dir.write_config(config("openai:http://127.0.0.1:8001/v1/qwen"))
    path = run_dir.root / "run.yaml"
    record = yaml.safe_load(path.read_text())
    del record["model_addresses"]
    path.write_text(yaml.safe_dump(record))
    run_dir.write_config(config("openai:http://127.0.0.1:8002/v1/qwen"))
    addresses = yaml.safe_load(path.read_text())["model_addresses"]
    assert addresses[0] == {"address": "http://127.0.0.1:8001/v1"}
    assert addresses[1]["address"] == "http://127.0.0.1:8002/v1"


def run_against(tmp_path: Path, port: int, run_id: str, instances: str, *options: str) -> tuple[int, str]:
    result = atlas(
        "run", "--runtime", "local", "--instances", instances, "--run-id", run_id, "--workers", "2",
        "--model", f"openai:http://127.0.0.1:{port}/v1/{MODEL}", *options,
        cwd=tmp_path, env={"TMPDIR": str(tmp_path)},
    )  # fmt: skip
    return result.returncode, result.stderr


def submits(tmp_path: Path, name: str, count: int, before: list[dict[str, object]] | None = None) -> Path:
    script = tmp_path / name
    turns = [*(before or []), *({"tool_call": {"name": "submit", "arguments": {}}} for _ in range(count))]
    script.write_text(yaml.safe_dump({"turns": turns}))
    return script


def test_atlas_run_resumes_against_a_server_back_on_another_port(tmp_path: Path) -> None:
    first, second = INSTANCES
    (tmp_path / "before").mkdir(), (tmp_path / "after").mkdir()  # each server writes its own port file
    with serve_script(tmp_path / "before", submits(tmp_path, "first.yaml", 1)) as (port, _log):
        code, stderr = run_against(tmp_path, port, "moved", first)
    assert code == 0, stderr
    with serve_script(tmp_path / "after", submits(tmp_path, "second.yaml", 1)) as (new_port, _log):
        code, stderr = run_against(tmp_path, new_port, "moved", f"{first},{second}")
    assert new_port != port and code == 0, stderr
    assert "2 tasks, 1 already done" in stderr
    run_dir = tmp_path / "runs" / "moved"
    record = yaml.safe_load((run_dir / "run.yaml").read_text())
    assert [entry["address"] for entry in record["model_addresses"]] == [
        f"http://127.0.0.1:{port}/v1",
        f"http://127.0.0.1:{new_port}/v1",
    ]
    for instance in INSTANCES:
        assert json.loads((run_dir / "instances" / instance / "status.json").read_text())["state"] == "done"


# --- outages end to end ---


def test_atlas_run_waits_out_an_outage_and_every_instance_completes(tmp_path: Path) -> None:
    script = submits(tmp_path, "outage.yaml", len(INSTANCES), before=[{"outage": OUTAGE}])
    with serve_script(tmp_path, script) as (port, _log):
        code, stderr = run_against(
            tmp_path, port, "outage", ",".join(INSTANCES), *[a for o in PATIENT for a in ("-M", o)]
        )
    assert code == 0, stderr
    waits = [line for line in stderr.splitlines() if NOTICE.fullmatch(line)]
    assert len(waits) > OLD_ATTEMPTS, stderr
    assert all("unavailable (HTTP 529: Overloaded): retrying in" in line for line in waits)
    for instance in INSTANCES:
        folder = tmp_path / "runs" / "outage" / "instances" / instance
        status = json.loads((folder / "status.json").read_text())
        assert status["state"] == "done" and status["stop_reason"] == "submitted"
        trajectory = json.loads((folder / "trajectory.json").read_text())
        assert trajectory["steps"][0]["model_retries"], "the retries are in the trajectory"


# --- replies of megabytes are stored bounded ---


def test_a_step_stores_what_the_model_wrote_bounded_and_says_how_long_it_was() -> None:
    reply = "HEAD" + "x" * 3_000_000 + "TAIL"
    step = Step(
        index=0,
        started_at="now",
        thought=reply,
        tool_calls=[ToolCall(id="c", name="edit", arguments={"path": "a.py", "new": [reply, "short"]})],
        provider_blocks=[{"type": "thinking", "thinking": reply, "signature": "sig"}],
    )
    stored = step.model_dump_json()
    assert len(stored) < 4 * STORED_REPLY_CHARS
    back = Step.model_validate_json(stored)
    assert back.reply_chars == {
        "thought": len(reply),
        "tool_calls.0.arguments.new.0": len(reply),
        "provider_blocks.0.thinking": len(reply),
    }
    assert back.thought.startswith("HEAD") and back.thought.endswith("TAIL") and len(back.thought) <= STORED_REPLY_CHARS
    assert f"of {len(reply)} characters not stored" in back.thought
    assert back.tool_calls[0].arguments["new"][1] == "short" and back.tool_calls[0].arguments["path"] == "a.py"
    assert back.model_dump_json() == stored, "storing it again changes nothing"
    assert step.thought == reply, "in memory it stays whole"


def test_a_reply_of_megabytes_reaches_the_model_whole_and_is_stored_bounded(tmp_path: Path) -> None:
    reply = "I will look around. " + "very " * 600_000 + "done."  # 3 MB
    script = tmp_path / "huge.json"
    turns = [{"content": reply, "tool_call": LS}, {"tool_call": {"name": "submit", "arguments": {}}}]
    script.write_text(json.dumps({"turns": turns}))
    with serve_script(tmp_path, script) as (port, log):
        # a window this wide sends the reply back whole (a narrower one drops the exchange, as it would any)
        code, stderr = run_against(tmp_path, port, "huge", INSTANCES[0], "-c", "history.context_window=2000000")
    assert code == 0, stderr
    path = tmp_path / "runs" / "huge" / "instances" / INSTANCES[0] / "trajectory.json"
    assert path.stat().st_size < 4 * STORED_REPLY_CHARS, "the trajectory stays small"
    step = json.loads(path.read_text())["steps"][0]
    assert step["reply_chars"] == {"thought": len(reply)}
    assert step["thought"].startswith("I will look around.") and step["thought"].endswith("done.")
    sent = json.loads(log.read_text().splitlines()[1])["body"]["messages"]
    assert [m["content"] for m in sent if m["role"] == "assistant"] == [reply], "the model was sent all of it"
