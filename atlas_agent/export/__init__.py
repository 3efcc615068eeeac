"""`atlas export`: a run's trajectories in the formats of other agents' tools, so their inspectors
open Atlas runs: mini-swe-agent's `.traj.json` and SWE-agent's `.traj` (see docs/trajectories.md).

DIR/<instance_id>/<instance_id>.traj.json   mini        (its inspector: `mini-extra inspector DIR`)
DIR/<instance_id>/<instance_id>.traj        sweagent    (`sweagent inspect DIR`, `sweagent inspector`)
DIR/preds.json                              both: the predictions, keyed by instance id
DIR/results.json                            sweagent, once graded: the official report, which
                                            SWE-agent's inspectors read for resolved / unresolved
"""

from __future__ import annotations

from enum import StrEnum


class ExportFormat(StrEnum):
    mini = "mini"
    sweagent = "sweagent"
