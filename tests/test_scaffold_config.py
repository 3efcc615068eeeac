"""Scaffold YAML: shipped files load; every mistake is one line naming file, line, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas_agent.scaffolds.loader import ScaffoldError, bundled_names, load_scaffold
from atlas_agent.vocabulary import Sampling
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


def test_an_unknown_tool_is_refused_at_load_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("tools: [bash, submit]", "tools:\n  - bash\n  - grep\n  - submit"))
    assert error_of(path) == (
        f"{path}:4: tools.1: unknown tool 'grep' "
        "(known: bash, submit, find_files, search, symbols, view, edit, run_tests)"
    )
    assert "tool 'bash' is named twice" in error_of(path, ["tools=[bash, submit, bash]"])


def test_best_of_k_attempt_tools_are_checked_too(tmp_path: Path) -> None:
    inline = "type: best-of-k\nreview:\n  instance: pick\nattempt:\n" + "".join(
        f"  {line}\n" for line in MINIMAL.replace("[bash, submit]", "[bash, submit, serch]").splitlines()
    )
    path = write(tmp_path, inline)
    assert error_of(path).startswith(f"{path}:6: attempt.tools.2: unknown tool 'serch' (known: bash, submit, ")
    message = error_of("best-of-k", ["attempt.tools=[bash, grep]"])
    assert (
        "attempt.tools.1: unknown tool 'grep'" in message and "(from override 'attempt.tools=[bash, grep]')" in message
    )


def test_sampling_is_unset_unless_a_scaffold_sets_it(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "sampling:\n  temperature: 0.3\n")
    assert load_scaffold("tools").sampling == Sampling()
    loaded = load_scaffold(path, ["sampling.max_output_tokens=321"])
    assert loaded.sampling == Sampling(temperature=0.3, max_output_tokens=321)
    assert "sampling.temprature: unknown key" in error_of(path, ["sampling.temprature=1"])
    assert "sampling.temperature:" in error_of(path, ["sampling.temperature=3"])
    assert "temperatures.0:" in error_of("best-of-k", ["temperatures=[5]"]), "refused before any attempt runs"


def test_cli_refuses_an_unknown_tool_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("[bash, submit]", "[bash, grep, submit]"))
    result = atlas("run", "--scaffold", path, "--model", "replay:atlas-mini-demo", cwd=tmp_path)
    assert result.returncode == 1
    line = one_line_error(result)
    assert f"{path}:2: tools.1: unknown tool 'grep' (known: bash, submit," in line
    assert not (tmp_path / "runs").exists(), "nothing ran"
