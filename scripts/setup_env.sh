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
