"""The patch an agent produced: its working tree against the base commit, as git would send it."""

from __future__ import annotations

import secrets
import shlex

from atlas_agent.errors import AtlasError
from atlas_agent.runtime.workspace import Workspace

# Runs in a subshell, so its cd and exports stay out of the session. A copy of the real index takes
# `git add -A`, which then costs a stat per file; the repository's own index is never written. The
# copy keeps the index's mtime (cp -p): git's check for "racily clean" entries (a same-size edit in
# the same second as the index was written) compares entry times against it.
_DIFF_SCRIPT = """(
  unset GIT_INDEX_FILE
  cd -- {workdir} || exit
  git=(git -c safe.directory='*' -c core.quotepath=false)
  real=$("${{git[@]}}" rev-parse --git-path index) || exit
  if [ -f "$real" ]; then cp -p -- "$real" {index} || exit; fi
  export GIT_INDEX_FILE={index}
  "${{git[@]}}" add -A || exit
  "${{git[@]}}" diff --cached --binary --no-color --no-ext-diff --no-renames --no-relative \\
    --src-prefix=a/ --dst-prefix=b/ {base} -- >{patch}
)"""


def diff_against(workspace: Workspace, base_commit: str, *, where: str) -> str:
    """`workspace.workdir` against `base_commit` as a binary-safe patch, new files included; "" if none."""
    tag = secrets.token_hex(6)
    index, patch = f"/tmp/.atlas-index-{tag}", f"/tmp/.atlas-diff-{tag}.patch"
    quoted = {"index": shlex.quote(index), "patch": shlex.quote(patch)}
    script = _DIFF_SCRIPT.format(workdir=shlex.quote(workspace.workdir), base=shlex.quote(base_commit), **quoted)
    try:
        result = workspace.run(script, timeout=600)
        if result.exit_code != 0 or result.timed_out:
            detail = (result.output.strip().splitlines() or ["no output"])[-1]
            raise AtlasError(f"cannot diff {workspace.workdir} against {base_commit} in {where}: {detail}")
        text = workspace.read_file(patch).decode("utf-8", "replace")
    finally:
        workspace.run(f"rm -f -- {quoted['index']} {quoted['patch']}", timeout=60)
    return text if not text or text.endswith("\n") else text + "\n"
