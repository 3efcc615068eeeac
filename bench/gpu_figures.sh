#!/usr/bin/env bash
# The GPU figures of docs/performance.md, in steps that each fit in about ten minutes on an H100:
#
#   bash bench/gpu_figures.sh OUT_DIR profile       where an EXL2 and an EXL3 decode step's time goes
#   bash bench/gpu_figures.sh OUT_DIR tests         GPU tests of both runtimes (speculation included)
#   bash bench/gpu_figures.sh OUT_DIR roofline      32B-shape EXL2 and EXL3, 3 processes each
#   bash bench/gpu_figures.sh OUT_DIR speculation   30-turn replay, none / ngram / draft, 1 and 8 agents
#
# roofline and speculation take a format too (roofline-exl3, speculation-exl2), to run one only.
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

formats() {  # the formats a step names: roofline-exl3 -> exl3, roofline -> both
  case $1 in *-exl2) echo exl2 ;; *-exl3) echo exl3 ;; *) echo exl2 exl3 ;; esac
}

for step in "$@"; do
  snapshot
  case $step in
    profile)
      for model in "exl2 --shape tiny" "exl2 --shape tiny --atlas-attention" \
        "exl2 --shape qwen32b --layers 8 --atlas-attention" "exl3 --shape qwen32b --layers 8" \
        "exl2 --shape qwen32b --layers 16 --engine" "exl2 --shape qwen32b --layers 16 --engine --speculation ngram" \
        "exl2 --shape qwen32b --layers 64 --engine"; do
        # shellcheck disable=SC2086  # the model's words are separate arguments
        "$python" "$here/bench/gpu_profile.py" --format $model 2>&1 | tee -a "$out/profile.log"
      done ;;
    tests)
      "$python" -m pytest -q -rA -p no:cacheprovider "$here/tests/test_gpu_exl2.py" "$here/tests/test_gpu_exl3.py" \
        2>&1 | tee "$out/tests.log" ;;
    roofline | roofline-exl2 | roofline-exl3)
      for form in $(formats "$step"); do
        "$python" "$here/bench/gpu_roofline.py" --format "$form" --processes 3 --runs 3 --tokens 256 \
          --warmup-tokens 256 --warmup-s 3 --out "$out/roofline-$form.json" 2>&1 | tee "$out/roofline-$form.log"
      done ;;
    speculation | speculation-exl2 | speculation-exl3)
      for form in $(formats "$step"); do
        "$python" "$here/bench/gpu_speculation.py" --format "$form" --layers 16 --out "$out/speculation-$form.json" \
          2>&1 | tee "$out/speculation-$form.log"
      done ;;
    *) echo "unknown step $step: profile, tests, roofline[-FORMAT] or speculation[-FORMAT]" >&2 ;;
  esac
done
snapshot
