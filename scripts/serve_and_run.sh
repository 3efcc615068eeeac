#!/usr/bin/env bash
# Serve a local model and run the agent against it in one go:
#   scripts/serve_and_run.sh MODEL [atlas run options...]
# e.g. scripts/serve_and_run.sh exl2:models/qwen2.5-coder-32b-4.65bpw --runtime local -i atlas__textkit-1
# Starts `atlas serve MODEL` on $PORT (default 8000), waits until /v1/models answers, runs
# `atlas run --model openai:http://127.0.0.1:$PORT/v1/NAME ...`, prints the server's /metrics and
# stops the server. $ATLAS is the command that runs Atlas (default .venv/bin/atlas).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 MODEL [atlas run options...]" >&2; exit 2; }
model=$1
shift
port=${PORT:-8000}
read -r -a atlas <<<"${ATLAS:-.venv/bin/atlas}"
base=http://127.0.0.1:$port
log=${SERVE_LOG:-serve.log}

"${atlas[@]}" serve "$model" --port "$port" --agents "${AGENTS:-1}" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT

fetch() { python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"; }
for _ in $(seq 1 "${SERVE_WAIT_S:-600}"); do
  kill -0 "$server" 2>/dev/null || { echo "atlas serve exited; its log ($log):" >&2; tail -5 "$log" >&2; exit 1; }
  models=$(fetch "$base/v1/models" 2>/dev/null) && break
  sleep 1
done
[ -n "${models:-}" ] || { echo "atlas serve did not answer on $base within ${SERVE_WAIT_S:-600} s" >&2; exit 1; }
name=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["data"][0]["id"])' "$models")
echo "serving $name on $base" >&2

"${atlas[@]}" run --model "openai:$base/v1/$name" "$@"
fetch "$base/metrics" | grep -v '^#'
