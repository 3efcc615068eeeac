"""Shared helpers for tests that drive the `atlas` command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from atlas_agent.vocabulary import ToolSpec

ATLAS = str(Path(sys.executable).parent / "atlas")
# the two tools most model tests offer
BASH_TOOL = ToolSpec(
    name="bash",
    description="Run a shell command.",
    parameters={"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
)
SUBMIT_TOOL = ToolSpec(name="submit", description="Finish.", parameters={"type": "object", "properties": {}})
# a replay script per shipped scaffold (tests/data/replays/<scaffold>.yaml) and the task it resolves
SCAFFOLD_REPLAYS = Path(__file__).parent / "data" / "replays"
SCAFFOLD_CASES = {
    "bash-only": "atlas__textkit-2",
    "tools": "atlas__tally-2",
    "best-of-k": "atlas__semverkit-3",
    "agentless": "atlas__tally-2",
}


def atlas(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [ATLAS, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """Assert the command failed with exactly one line on stderr and no traceback; return that line."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]
