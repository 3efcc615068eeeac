"""Scaffold YAML: shipped files load; every mistake is one line naming file, line, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas_agent.scaffolds.loader import ScaffoldError, bundled_names, load_scaffold
from helpers import atlas, one_line_error

MINIMAL = """\
type: tools
tools: [bash, submit]
prompts:
  system: hi
  instance: "{{ task.problem_statement }}"
limits:
  max_steps: 10
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return str(path)


def error_of(spec: str, overrides: list[str] | None = None) -> str:
    with pytest.raises(ScaffoldError) as caught:
        load_scaffold(spec, overrides)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", bundled_names())
def test_shipped_scaffolds_load(name: str) -> None:
    config = load_scaffold(name)
    assert config.description


def test_shipped_set() -> None:
    assert {"tools", "bash-only"} <= set(bundled_names())


def test_user_file_and_overrides(tmp_path: Path) -> None:
    config = load_scaffold(write(tmp_path, MINIMAL), ["limits.max_steps=3", "history.keep_last=2"])
    assert config.limits.max_steps == 3 and config.history.keep_last == 2


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "  max_stepz: 4\n")
    assert error_of(path) == f"{path}:8: limits.max_stepz: unknown key"


def test_wrong_type_names_the_expected_type(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("max_steps: 10", "max_steps: many"))
    message = error_of(path)
    assert message.startswith(f"{path}:7: limits.max_steps: ") and "valid integer" in message


def test_unknown_and_missing_type(tmp_path: Path) -> None:
    assert "unknown type 'swarm'" in error_of(write(tmp_path, MINIMAL.replace("type: tools", "type: swarm")))
    assert "missing `type:` key" in error_of(write(tmp_path, MINIMAL.replace("type: tools\n", "")))


def test_bad_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    assert "(from override 'limits.max_steps=lots')" in error_of(path, ["limits.max_steps=lots"])
    assert "bogus: unknown key" in error_of(path, ["bogus=1"])
    assert "is not KEY=VALUE" in error_of(path, ["limits.max_steps"])


def test_bash_only_means_bash_only() -> None:
    assert "exactly the tools [bash, submit]" in error_of("bash-only", ["tools=[bash, view, submit]"])


def test_unknown_scaffold_and_missing_file(tmp_path: Path) -> None:
    assert "unknown scaffold 'swarm'" in error_of("swarm")
    assert "does not exist" in error_of(str(tmp_path / "absent.yaml"))
    assert "not valid YAML" in error_of(write(tmp_path, "type: [tools"))


def test_cli_lists_scaffolds_and_rejects_bad_ones(tmp_path: Path) -> None:
    listed = atlas("scaffolds", cwd=tmp_path)
    assert listed.returncode == 0
    for name in bundled_names():
        assert name in listed.stdout
    line = one_line_error(atlas("run", "--scaffold", "bash-only", "-c", "limits.max_steps=x", cwd=tmp_path))
    assert "limits.max_steps" in line and "from override" in line
