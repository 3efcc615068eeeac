#!/bin/bash
# Lays out a task environment the way official SWE-bench images do, without conda (which cannot be
# installed offline): PREFIX/bin holds a base interpreter without the repository's dependencies (first
# on the image's PATH), PREFIX/envs/testbed the test environment, and `source PREFIX/bin/activate`,
# `source PREFIX/etc/profile.d/conda.sh` and `conda activate NAME` switch between them as conda's do.
# usage: install.sh PREFIX WHEELHOUSE REQUIREMENT...
set -euo pipefail
prefix=$1 wheels=$2
shift 2

python3 -m venv --without-pip "$prefix"
python3 -m venv "$prefix/envs/testbed"
"$prefix/envs/testbed/bin/pip" install --quiet --disable-pip-version-check --no-index --find-links "$wheels" "$@"
# The repository at /testbed imports from anywhere in the test environment, as after `pip install -e .`.
site=$("$prefix/envs/testbed/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
echo /testbed >"$site/testbed.pth"

mkdir -p "$prefix/etc/profile.d"
cat >"$prefix/etc/profile.d/conda.sh" <<SHIM
# A stand-in for conda's shell hook: \`conda activate NAME\` and \`conda deactivate\`, nothing else.
# Safe under \`set -u\`, as the eval scripts that source it run.
_CONDA_ROOT=$prefix
conda() {
  case "\${1-}" in
    activate) __conda_activate "\${2-base}" ;;
    deactivate) __conda_deactivate ;;
    *) echo "conda: only 'conda activate ENV' and 'conda deactivate' are available here" >&2; return 1 ;;
  esac
}
__conda_deactivate() {
  [ -n "\${CONDA_PREFIX-}" ] || return 0
  local path=":\$PATH:"
  path=\${path/:\$CONDA_PREFIX\/bin:/:}
  path=\${path#:}
  export PATH=\${path%:}
  unset CONDA_PREFIX CONDA_DEFAULT_ENV CONDA_PROMPT_MODIFIER
  export CONDA_SHLVL=0
}
__conda_activate() {
  local env_prefix=\$_CONDA_ROOT
  [ "\$1" = base ] || env_prefix=\$_CONDA_ROOT/envs/\$1
  if [ ! -x "\$env_prefix/bin/python" ]; then
    echo "EnvironmentNameNotFound: Could not find conda environment: \$1" >&2
    return 1
  fi
  __conda_deactivate
  export PATH="\$env_prefix/bin:\$PATH" CONDA_PREFIX="\$env_prefix" CONDA_DEFAULT_ENV="\$1"
  export CONDA_SHLVL=1 CONDA_PROMPT_MODIFIER="(\$1) "
  hash -r
}
SHIM

cat >"$prefix/bin/activate" <<SHIM
# \`source $prefix/bin/activate [ENV]\`: defines \`conda\` and activates ENV (default: base).
. "$prefix/etc/profile.d/conda.sh"
conda activate "\${1-base}"
SHIM
# marks a prefix laid out by this script (so a host install is recognised and never mistaken for conda)
echo "atlas testbed layout" >"$prefix/.atlas-testbed"
