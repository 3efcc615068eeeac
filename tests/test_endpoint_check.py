"""`atlas run` checks the model's endpoint once before anything starts: a dead server or a refused key is
one line and exit 1, before Docker is even contacted, not an error per instance (a missing Claude key is
refused even earlier: tests/test_claude.py). Real HTTP against the wire-format stand-ins; the check never
uses up a scripted reply."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import yaml
from test_openai_client import serve_script

from atlas_agent.errors import ModelError
from atlas_agent.models import open_provider
from atlas_agent.models.options import parse_model_options
from helpers import atlas, one_line_error
from servers.anthropic_server import AnthropicServer
from servers.openai_server import MODEL, OpenAIServer

INSTANCE = "atlas__tally-2"
KEY = "sk-ant-test-the-right-one"
# the check gives up within seconds: two tries of a refused connection and a pause between them
QUICK_S = 20.0
SUBMIT = {"tool_call": {"name": "submit", "arguments": {}}}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def dead_port() -> int:
    """A loopback port nothing listens on (bound for a moment, then freed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def no_docker(tmp_path: Path) -> dict[str, str]:
    """An engine address that answers nothing: a command that contacts Docker would fail otherwise."""
    return {"DOCKER_HOST": f"unix://{tmp_path / 'no-engine.sock'}"}


def test_a_dead_openai_server_is_one_line_before_any_container(tmp_path: Path) -> None:
    port = dead_port()
    started = time.monotonic()
    result = atlas(
        "run", "-i", INSTANCE, "--model", f"openai:http://127.0.0.1:{port}/v1/{MODEL}", "--run-id", "dead",
        cwd=tmp_path, env=no_docker(tmp_path),
    )  # fmt: skip
    line = one_line_error(result)
    assert result.returncode == 1 and time.monotonic() - started < QUICK_S
    assert line == (
        f"error: model openai:http://127.0.0.1:{port}/v1/{MODEL}: cannot reach http://127.0.0.1:{port}/v1 "
        "([Errno 111] Connection refused): start the server, or fix the address in --model"
    )
    assert not (tmp_path / "runs" / "dead" / "instances").exists(), "no instance started"


def test_claude_with_a_refused_key_is_one_line_and_sends_no_prompt(tmp_path: Path) -> None:
    with AnthropicServer(api_key=KEY) as server:
        env = {**no_docker(tmp_path), "ANTHROPIC_API_KEY": "sk-ant-wrong", "ANTHROPIC_BASE_URL": server.url}
        result = atlas(
            "run", "-i", INSTANCE, "--model", "claude-sonnet-4-5", "--run-id", "refused", cwd=tmp_path, env=env
        )
        line = one_line_error(result)
        assert server.requests == [], "no message was sent"
    assert line == (
        "error: model claude:claude-sonnet-4-5: the API refused the key in ANTHROPIC_API_KEY "
        "(401 authentication_error: invalid x-api-key): set it to a valid Anthropic API key"
    )


def test_claude_at_an_address_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    env = {**no_docker(tmp_path), "ANTHROPIC_API_KEY": KEY}
    port = dead_port()
    result = atlas("run", "-i", INSTANCE, "--model", "claude-sonnet-4-5", "-M", f"base_url=http://127.0.0.1:{port}",
                   cwd=tmp_path, env=env)  # fmt: skip
    assert one_line_error(result) == (
        f"error: model claude:claude-sonnet-4-5: cannot reach http://127.0.0.1:{port} "
        "([Errno 111] Connection refused): check the network, or -M base_url / ANTHROPIC_BASE_URL"
    )


def test_the_check_passes_a_live_endpoint_and_uses_up_no_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    with OpenAIServer([SUBMIT]) as server:
        open_provider(f"openai:{server.url}/{MODEL}").check()
        assert server.played == 0 and server.requests == []
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with AnthropicServer(api_key=KEY) as server:
        open_provider("claude-sonnet-4-5", parse_model_options([f"base_url={server.url}"])).check()
        assert server.played == 0 and server.requests == []


def test_any_answer_but_a_refused_key_passes_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """An API that answers (here a 404: a gateway without the models list) is there; the run's own retries
    see to an overloaded one. Only an address that does not answer fails."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with AnthropicServer() as server:
        open_provider("claude-sonnet-4-5", parse_model_options([f"base_url={server.url}/gateway"])).check()
    with pytest.raises(ModelError, match="cannot reach"):
        open_provider("claude-sonnet-4-5", parse_model_options([f"base_url=http://127.0.0.1:{dead_port()}"])).check()


def test_a_run_with_nothing_to_do_needs_no_server(tmp_path: Path) -> None:
    """A finished run reruns (to rewrite its predictions, say) with its server gone; a --redo does not."""
    script = tmp_path / "submit.yaml"
    script.write_text(yaml.safe_dump({"turns": [SUBMIT]}))
    (tmp_path / "server").mkdir()
    with serve_script(tmp_path / "server", script) as (port, _log):
        spec = f"openai:http://127.0.0.1:{port}/v1/{MODEL}"
        args = ["run", "--runtime", "local", "-i", INSTANCE, "--model", spec, "--run-id", "done"]
        first = atlas(*args, cwd=tmp_path, env={"TMPDIR": str(tmp_path)})
        assert first.returncode == 0, first.stderr
    again = atlas(*args, cwd=tmp_path, env={"TMPDIR": str(tmp_path)})
    assert again.returncode == 0, again.stderr
    assert "1 tasks, 1 already done" in again.stderr
    redo = atlas(*args, "--redo", INSTANCE, cwd=tmp_path, env={"TMPDIR": str(tmp_path)})
    assert "cannot reach" in one_line_error(redo)
    folder = tmp_path / "runs" / "done" / "instances" / INSTANCE
    assert json.loads((folder / "status.json").read_text())["state"] == "done"
    assert not (folder / "previous-1").exists(), "a redo refused by the check sets nothing aside"
