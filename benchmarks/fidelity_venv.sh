#!/usr/bin/env bash
# Make the virtual environment that benchmarks/fidelity_aihwkit.py runs in: IBM aihwkit 1.1.0 beside this
# checkout of xbarsim. aihwkit is never a dependency of xbarsim or of its CI: it lives only in this venv.
#
# Usage: bash benchmarks/fidelity_venv.sh [VENV_DIR]        (default /work/venv-aihwkit)
#   TORCH_SPEC=torch==2.13.0 bash benchmarks/fidelity_venv.sh   to use another torch (e.g. a local CPU build)
#
# aihwkit 1.1.0's compiled extension (rpu_base) is built against one torch release, 2.10.0 (the default here:
# PyPI's CUDA build, about 4 GB with its NVIDIA libraries, whose compiled tiles run on the CPU without a GPU);
# with any other torch the benchmark falls back to aihwkit's pure-torch tiles (TorchInferenceRPUConfig), which
# give the same inference model with bound management per batch instead of per vector.
set -euo pipefail

VENV_DIR="${1:-/work/venv-aihwkit}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.10.0}"
REPO_DIR="$(cd "$(dirname "$0")/.." && pwd)"

df -h "$(dirname "$VENV_DIR")"
python3 -m venv "$VENV_DIR"
PIP=("$VENV_DIR/bin/python" -m pip install --disable-pip-version-check)

"${PIP[@]}" "$TORCH_SPEC"
"${PIP[@]}" --no-deps aihwkit==1.1.0
# aihwkit's own runtime needs, then what xbarsim needs at import (its pyproject dependencies, minus torch).
"${PIP[@]}" numpy scipy requests tqdm
"${PIP[@]}" numba pydantic pyyaml h5py scikit-learn matplotlib
"${PIP[@]}" --no-deps -e "$REPO_DIR"

"$VENV_DIR/bin/python" - <<'EOF'
import torch, aihwkit, xbarsim
print("torch", torch.__version__, "| aihwkit", aihwkit.__version__, "| xbarsim", xbarsim.__file__)
try:
    from aihwkit.simulator import rpu_base  # noqa: F401
    print("aihwkit compiled extension: available")
except Exception as error:  # the benchmark then uses the pure-torch tiles
    print("aihwkit compiled extension: unavailable (", type(error).__name__, error, ")")
EOF
