"""Sweeps as real processes: one killed with SIGKILL (its whole process group) at many random moments,
re-run after each kill, ends with every row exactly once and identical to an uninterrupted run; a
second sweep into a store that one is writing is refused, and the first finishes unharmed.

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
import pytest
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


from xbarsim.cli import main  # noqa: E402
from xbarsim.models import data, zoo  # noqa: E402
from xbarsim.models.checkpoint import save_checkpoint  # noqa: E402
from xbarsim.models.training import TrainConfig, train  # noqa: E402
from xbarsim.sweeps.runner import run_sweep  # noqa: E402
from xbarsim.sweeps.spec import SweepSpec  # noqa: E402
from xbarsim.sweeps.store import read_results  # noqa: E402


class Forks:
    """Sweeps forked by the helper process: ``start(argv)`` gives the pid, ``wait()`` its wait status."""

    def __init__(self):
        env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
        self.zygote = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def start(self, argv: list[str]) -> int:
        self.zygote.stdin.write(json.dumps(argv) + "\n")
        self.zygote.stdin.flush()
        return int(self.zygote.stdout.readline())

    def wait(self) -> int:
        return int(self.zygote.stdout.readline())

    def close(self) -> None:
        self.zygote.stdin.close()
        self.zygote.wait(timeout=60)


@pytest.fixture(scope="module")
def forks():
    forks = Forks()
    yield forks
    forks.close()


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    """ROWS cheap rows: an ideal chip (one config) whose outputs get seeded activation noise, a tiny MLP."""
    folder = tmp_path_factory.mktemp("kill")
    model = zoo.build("mlp", hidden=(16,))
    train(model, data.digits(), TrainConfig(epochs=2), progress=False)
    save_checkpoint(model, folder / "tiny.pt")
    spec = {"name": "kill", "model": {"checkpoint": str(folder / "tiny.pt")}, "data": "digits", "test_samples": 60,
            "chip": "ideal", "axes": {"activation_noise": "linspace(0, 1, 20)"}, "repeats": ROWS // 20}  # fmt: skip
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder / "spec.yaml"


@pytest.fixture(scope="module")
def reference(spec_file, tmp_path_factory):
    """The rows of an uninterrupted run, in this process."""
    store = tmp_path_factory.mktemp("whole") / "whole.h5"
    run_sweep(SweepSpec.from_file(spec_file), store, "serial", progress=False)
    rows = _rows(read_results(store))
    assert len(rows) == ROWS and len({v[0] for v in rows.values()}) > 5  # accuracies vary: a real check
    return rows


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


def _wait_for_rows(journal, lines: int, pid: int) -> None:
    deadline = time.monotonic() + 60
    while _journal_lines(journal) < lines and _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.0005)


def test_sigkilled_sweep_resumes_to_every_row_once(forks, spec_file, reference, tmp_path):
    store, journal = tmp_path / "killed.h5", tmp_path / "killed.h5.journal"
    argv = ["sweep", str(spec_file), "-o", str(store), "--executor", "serial", "--checkpoint-every", "0"]
    rng = np.random.default_rng(20261126)
    kills, seen = 0, {}
    while kills < KILLS:
        target = _journal_lines(journal) + int(rng.integers(1, 5))  # kill a few rows into the run ...
        pid = forks.start(argv)
        _wait_for_rows(journal, target, pid)
        time.sleep(rng.uniform(0, 0.015))  # ... at a random instant of a row: evaluating, journaling, writing HDF5
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        status = forks.wait()
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
    forks.start(argv)
    assert forks.wait() == 0  # the last run finishes with exit 0
    assert _rows(read_results(store)) == reference
    assert not journal.exists() and not (tmp_path / "killed.h5.lock").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_a_second_sweep_into_a_running_store_is_refused_and_the_first_finishes(forks, spec_file, reference, tmp_path, capsys):
    store, journal = tmp_path / "busy.h5", tmp_path / "busy.h5.journal"
    pid = forks.start(["sweep", str(spec_file), "-o", str(store), "--executor", "serial"])
    _wait_for_rows(journal, 3, pid)
    assert _alive(pid), "the first sweep ended too soon for this test"
    assert main(["sweep", str(spec_file), "-o", str(store), "--executor", "serial"]) == 2
    refusal = capsys.readouterr().err
    assert f"{store}: another sweep is writing this store (pid {pid}" in refusal and len(refusal.splitlines()) == 1
    assert main(["report", str(store)]) == 0  # a live store reads from its journal
    assert "unfinished: " in capsys.readouterr().out
    assert forks.wait() == 0  # the first sweep, undisturbed
    assert _rows(read_results(store)) == reference
    assert not journal.exists() and not (tmp_path / "busy.h5.lock").exists()
