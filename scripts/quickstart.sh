#!/usr/bin/env bash
# One command from a fresh clone: set up, run the default model (the bundled SmolLM2-135M on the
# CPU) with the default scaffold on the offline atlas-mini suite, and grade it with the official
# SWE-bench harness. Results: runs/quickstart/. (tests/test_end_to_end.py runs the `atlas run` line.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/atlas run --dataset atlas-mini --scaffold bash-only --run-id quickstart --eval
cat runs/quickstart/report.md
