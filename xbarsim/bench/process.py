"""Running a benchmark job (``bench.worker``) in a fresh Python process, imports in a chosen order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..errors import XbarsimError

# what a process imports before the job: a user's script imports torch first
PRELUDES = {
    "torch": "import torch\nimport xbarsim.crossbar.tile\n",
    "xbarsim": "import xbarsim.crossbar.tile\nimport torch\n",
    "torch-only": "import torch\n",  # the torch baseline: xbarsim's kernels never load
}


def run_job(job: str, params: dict, prelude: str) -> dict:
    """Run ``worker.JOBS[job](params)`` in a fresh interpreter after ``PRELUDES[prelude]``; its result."""
    code = PRELUDES[prelude] + "from xbarsim.bench.worker import main\nmain()\n"
    package_parent = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (package_parent, os.environ.get("PYTHONPATH"))))}
    done = subprocess.run([sys.executable, "-c", code, job, json.dumps(params)], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no error output"]
        raise XbarsimError(f"benchmark job {job!r} ({params}) failed with exit code {done.returncode}: {tail[0]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
