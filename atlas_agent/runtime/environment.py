"""The environment a task's tests run in, established in the agent's shell before its first command.

Official SWE-bench images put a base interpreter first on PATH; the repository's environment is
activated only by the image's rc file and by the eval script's own set-up lines (`source
/opt/miniconda3/bin/activate`, `conda activate testbed`, `export ...`, `cd /testbed`). A shell
started without them runs the wrong Python. So the shell replays exactly those set-up lines of the
eval script (never its checkout, test-patch or test lines), after the image's rc files.
"""

from __future__ import annotations

import re
import shlex

from atlas_agent.vocabulary import EVAL_START_MARKER

# The files an interactive bash reads at start-up; images put their environment activation there.
RC_FILES = ("/etc/bash.bashrc", "$HOME/.bashrc")
# Set-up lines that shape the environment: activation, exported variables, the working directory.
_ENV_LINE = re.compile(
    r"^(?:(?:source|\.)\s+\S.*|conda\s+activate(?:\s+\S+)?|export\s+[A-Za-z_][A-Za-z0-9_]*=.*|cd\s+\S.*)$"
)
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")


def setup_lines(eval_script: str | None, *, workdir: str = "/testbed", task_root: str = "/testbed") -> list[str]:
    """The environment set-up lines of an eval script, in order, up to its test output marker.

    A `cd` into the task's repository root is pointed at `workdir`, where this runtime keeps the
    checkout (the same path in a task container; elsewhere on a host)."""
    lines: list[str] = []
    heredoc_end: str | None = None
    for raw in (eval_script or "").splitlines():
        line = raw.strip()
        if heredoc_end is not None:
            heredoc_end = None if line == heredoc_end else heredoc_end
            continue
        if line == EVAL_START_MARKER:
            break
        if opened := _HEREDOC.search(line):
            heredoc_end = opened[2]
            continue
        if _ENV_LINE.match(line):
            lines.append(_relocate_cd(line, workdir, task_root))
    return lines


def _relocate_cd(line: str, workdir: str, task_root: str) -> str:
    if workdir == task_root or not line.startswith("cd "):
        return line
    target = line[3:].strip()
    if target == task_root or target.startswith(task_root + "/"):
        return "cd " + shlex.quote(workdir + target[len(task_root) :])
    return line
