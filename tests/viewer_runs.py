"""Real runs for the viewer's tests: the replay model over six atlas-mini instances, every command run
in the task's container and the result graded by the official harness, so the run directory is what
`atlas run --eval` really writes. The script gives each outcome: resolved, unresolved (with an edit of
a test file, which the tamper guard strips and flags), empty patch, and an error (an instance the
script has no steps for)."""

from __future__ import annotations

from pathlib import Path

import yaml

from atlas_agent.cli import INSTANCES_ERRORED
from atlas_agent.models.backends import BUNDLED_REPLAYS
from helpers import atlas

RESOLVED = ["atlas__semverkit-3", "atlas__tally-2", "atlas__textkit-2"]
UNRESOLVED = "atlas__tally-1"
EMPTY_PATCH = "atlas__hoard-1"
ERRORED = "atlas__textkit-1"
INSTANCES = sorted([*RESOLVED, UNRESOLVED, EMPTY_PATCH, ERRORED])
# what the unresolved instance's first command prints: a page that parsed run output as HTML would run it
HOSTILE_OUTPUT = "</script><script>window.pwned = 1</script><b>not bold</b>"


def mixed_script() -> dict[str, object]:
    """The bundled demo's three fixes, a change that fixes nothing, a bare submit, and no `default`."""
    demo = yaml.safe_load((BUNDLED_REPLAYS / "atlas-mini-demo.yaml").read_text())
    instances = {iid: demo["instances"][iid] for iid in RESOLVED}
    instances[UNRESOLVED] = [
        {"thought": "Look around first.", "bash": f"echo '{HOSTILE_OUTPUT}' && seq 1 30"},
        {"thought": "Note where rounding happens.", "bash": "echo '# rounding: Money.rounded' >> tally/money.py"},
        {"thought": "Mark the tests as read.", "bash": "echo '# read' >> tests/test_money.py"},
        "submit",
    ]
    instances[EMPTY_PATCH] = ["submit"]
    return {"instances": instances}


def replayed_run(root: Path, run_id: str = "mixed", model: str | None = None) -> Path:
    """`atlas run --eval` of INSTANCES in `root`; the mixed script unless `model` names another."""
    if model is None:
        (root / "mixed.yaml").write_text(yaml.safe_dump(mixed_script()))
        model = "replay:mixed.yaml"  # relative to `root`, where the run starts
    result = atlas(
        "run", "--model", model, "--run-id", run_id, "--instances", ",".join(INSTANCES),
        "--workers", "2", "--eval", cwd=root,
    )  # fmt: skip
    errored = model.endswith("mixed.yaml")
    assert result.returncode == (INSTANCES_ERRORED if errored else 0), result.stderr
    return root / "runs" / run_id
