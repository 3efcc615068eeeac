#!/usr/bin/env bash
# One command from a fresh clone: set up, run the default agent on the offline atlas-mini suite,
# and grade it with the official SWE-bench harness. Results: runs/quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/atlas run --dataset atlas-mini --run-id quickstart --workers 2 --eval
cat runs/quickstart/report.md
