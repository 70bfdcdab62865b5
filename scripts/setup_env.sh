#!/usr/bin/env bash
# Make a virtual environment with designgym installed (editable, with the test tools).
#
#   bash scripts/setup_env.sh [VENV_DIR]      (default .venv)
#
# Without an NVIDIA GPU, torch's CPU build is installed first, so that the open torch requirement
# of pyproject.toml is already met and pip does not pull several GB of CUDA packages.
#   TORCH_VERSION      the CPU build's version (default 2.13.0)
#   TORCH_INDEX_URL    an extra package index for it, such as PyTorch's CPU wheel index
#   PYTHON             the interpreter for the venv (default python3; needs >= 3.10)
#
# The tests of studies shared over PostgreSQL start a throw-away server of their own; where its
# programs (initdb, postgres) are missing they are installed with apt-get when this runs as root,
# else the command to run is printed. SKIP_POSTGRES=1 leaves them out.
set -euo pipefail

venv=${1:-.venv}
python=${PYTHON:-python3}
torch_version=${TORCH_VERSION:-2.13.0}

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "designgym needs Python >= 3.10; $("$python" --version 2>&1) found. Set PYTHON=python3.11 (or newer)." >&2
    exit 1
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet)

if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        echo "setup: NVIDIA GPU found; torch with CUDA comes with designgym's requirements"
    else
        echo "setup: no GPU found; installing torch==$torch_version (CPU build) first"
        "${pip[@]}" "torch==$torch_version" ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"}
    fi
fi

echo "setup: installing designgym and its requirements into $venv"
"${pip[@]}" -e ".[dev]"
"$venv/bin/python" -c 'import designgym, torch; print(f"setup: designgym {designgym.__version__}, torch {torch.__version__}, envs: {len(designgym.list_envs())}")'

has_postgres() {
    command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}
if [ "${SKIP_POSTGRES:-0}" != 1 ] && ! has_postgres; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing the PostgreSQL server (Debian package postgresql) for the shared-study tests"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends postgresql >/dev/null \
            || echo "setup: could not install PostgreSQL; the shared-study tests will be skipped" >&2
    else
        echo "setup: PostgreSQL server not found; to run the shared-study tests: sudo apt-get install postgresql" >&2
    fi
fi
