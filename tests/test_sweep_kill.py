"""A sweep killed with SIGKILL (its whole process group) at many random moments, re-run after each kill,
ends with every row exactly once and identical to an uninterrupted run.

Each run is a real ``xbarsim sweep`` process in its own session. Starting Python and importing torch
takes seconds, so the runs are forked from a helper process that has imported everything once (this
file, run as a script); each fork calls ``setsid`` and then the command line's ``main``.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import yaml

KILLS = 20
ROWS = 100


def _zygote() -> None:
    """Read one argv (JSON) a line; fork a sweep in its own session; print its pid, then its wait status."""
    import numba
    import sklearn.datasets  # noqa: F401 - imported once here (seconds), shared by every fork
    import torch  # noqa: F401

    from xbarsim import cli
    from xbarsim.sweeps import report, runner  # noqa: F401

    numba.njit(lambda x: x + 1)(1)  # Numba's compiler set up once (no parallel kernel: no threads before fork)

    for line in sys.stdin:
        argv = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os.setsid()
            quiet = os.open(os.devnull, os.O_WRONLY)
            os.dup2(quiet, 1)
            os.dup2(quiet, 2)
            code = 1
            try:
                code = cli.main(argv)
            finally:
                os._exit(code)
        print(pid, flush=True)
        print(os.waitpid(pid, 0)[1], flush=True)


if __name__ == "__main__":
    _zygote()
    raise SystemExit(0)


from xbarsim.models import data, zoo  # noqa: E402
from xbarsim.models.checkpoint import save_checkpoint  # noqa: E402
from xbarsim.models.training import TrainConfig, train  # noqa: E402
from xbarsim.sweeps.runner import run_sweep  # noqa: E402
from xbarsim.sweeps.spec import SweepSpec  # noqa: E402
from xbarsim.sweeps.store import read_results  # noqa: E402


def _tiny_spec(tmp_path) -> SweepSpec:
    """ROWS cheap rows: an ideal chip (one config) whose outputs get seeded activation noise, a tiny MLP."""
    model = zoo.build("mlp", hidden=(16,))
    train(model, data.digits(), TrainConfig(epochs=2), progress=False)
    save_checkpoint(model, tmp_path / "tiny.pt")
    return SweepSpec.model_validate({
        "name": "kill", "model": {"checkpoint": str(tmp_path / "tiny.pt")}, "data": "digits", "test_samples": 60,
        "chip": "ideal", "axes": {"activation_noise": "linspace(0, 1, 20)"}, "repeats": ROWS // 20,
    })  # fmt: skip


def _rows(results) -> dict:
    cols = results.columns
    keys = list(zip(cols["point_id"].tolist(), cols["repeat"].tolist()))
    assert len(keys) == len(set(keys)), "a row is stored twice"
    return {k: (a, s, st) for k, a, s, st in zip(keys, cols["accuracy"].tolist(), cols["seed"].tolist(), cols["status"].tolist())}


def _journal_lines(path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigkilled_sweep_resumes_to_every_row_once(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(json.loads(_tiny_spec(tmp_path).model_dump_json()), sort_keys=False))
    run_sweep(SweepSpec.from_file(spec_file), tmp_path / "whole.h5", "serial", progress=False)
    reference = _rows(read_results(tmp_path / "whole.h5"))
    assert len(reference) == ROWS and len({v[0] for v in reference.values()}) > 5  # accuracies vary: a real check

    store, journal = tmp_path / "killed.h5", tmp_path / "killed.h5.journal"
    argv = ["sweep", str(spec_file), "-o", str(store), "--executor", "serial", "--checkpoint-every", "0"]
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    zygote = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    rng = np.random.default_rng(20261126)
    kills, seen = 0, {}
    try:
        while kills < KILLS:
            target = _journal_lines(journal) + int(rng.integers(1, 5))  # kill a few rows into the run ...
            zygote.stdin.write(json.dumps(argv) + "\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            deadline = time.monotonic() + 60
            while _journal_lines(journal) < target and _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.0005)
            time.sleep(rng.uniform(0, 0.015))  # ... at a random instant of a row: evaluating, journaling, writing HDF5
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            status = int(zygote.stdout.readline())
            assert not os.WIFEXITED(status) or os.WEXITSTATUS(status) == 0, "a run failed instead of resuming"
            kills += os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            now = _rows(read_results(store))  # readable after every kill; no row lost, none changed
            assert all(now.get(key) == value for key, value in seen.items())
            assert {k: v for k, v in now.items() if reference[k] != v} == {}, f"rows unlike the uninterrupted run's (kill {kills})"
            if store.exists():  # the HDF5 file is always whole: readable by itself
                shutil.copy(store, tmp_path / "copy.h5")
                assert set(_rows(read_results(tmp_path / "copy.h5"))) <= set(now)
            seen = now
        assert len(seen) < ROWS, "the sweep finished before it was killed enough times"
        zygote.stdin.write(json.dumps(argv) + "\n")
        zygote.stdin.flush()
        zygote.stdout.readline()
        assert int(zygote.stdout.readline()) == 0  # the last run finishes with exit 0
    finally:
        zygote.stdin.close()
        zygote.wait(timeout=60)
    assert _rows(read_results(store)) == reference
    assert not journal.exists() and not (tmp_path / "killed.h5.lock").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file left
