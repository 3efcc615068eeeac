#!/usr/bin/env bash
# The GPU figures of docs/performance.md, in steps that each fit in about ten minutes on an H100:
#
#   bash bench/gpu_figures.sh OUT_DIR tests        GPU tests of both runtimes (speculation included)
#   bash bench/gpu_figures.sh OUT_DIR roofline     32B-shape EXL2 and EXL3, 3 processes each
#   bash bench/gpu_figures.sh OUT_DIR speculation  30-turn replay, none / ngram / draft, 1 and 8 agents
#
# Needs exllamav2 0.3.2 and exllamav3 1.6.5 importable (pip install '.[gpu,gpu3]'), a CUDA GPU, and
# free disk for two random 32B-shape models (about 16 GB each). Every step writes JSON and a log to
# OUT_DIR; a failing step does not stop the next.
set -uo pipefail
out=${1:?usage: gpu_figures.sh OUT_DIR STEP...}
shift
mkdir -p "$out"
here=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}

snapshot() {  # clocks and what else runs: a slow process is explained by the state of the machine
  nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,clocks.max.sm,power.draw,temperature.gpu,pstate \
    --format=csv >>"$out/gpu-state.csv" 2>&1
}

for step in "$@"; do
  snapshot
  case $step in
    tests)
      "$python" -m pytest -q -p no:cacheprovider "$here/tests/test_gpu_exl2.py" "$here/tests/test_gpu_exl3.py" \
        2>&1 | tee "$out/tests.log" ;;
    roofline)
      for form in exl2 exl3; do
        "$python" "$here/bench/gpu_roofline.py" --format "$form" --processes 3 --out "$out/roofline-$form.json" \
          2>&1 | tee "$out/roofline-$form.log"
      done ;;
    speculation)
      for form in exl2 exl3; do
        "$python" "$here/bench/gpu_speculation.py" --format "$form" --layers 16 --out "$out/speculation-$form.json" \
          2>&1 | tee "$out/speculation-$form.log"
      done ;;
    *) echo "unknown step $step: tests, roofline or speculation" >&2 ;;
  esac
done
snapshot
