"""Running a sweep: executors behind one interface, retries, and the store.

- ``serial``: in this process;
- ``processes`` (default): a local pool, one worker per core, each with one thread for Numba,
  BLAS and torch so the machine is not oversubscribed; with ``device="cuda"``, one worker per GPU,
  worker k on GPU k (more workers than GPUs share them in turn);
- ``dask:local`` (a ``distributed.LocalCluster``) or ``tcp://host:8786`` (an existing scheduler).
The payload (network, data, base config) reaches each worker once. A point that raises is
retried, then stored as failed with its error; the sweep goes on.

Before any file is made, a sweep checks its size, its executor, that no other sweep writes the
store, and that its data set and model load and run together: a sweep that cannot start leaves
nothing behind. Rows go to the store (``store.py``) as they finish, so a killed sweep resumes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from ..errors import XbarsimError
from ..limits import DEFAULT_MAX_WORK, check_work
from .evaluate import Payload, build_payload, evaluate, load_inputs, sweep_work
from .lock import check_unlocked
from .spec import DEFAULT_MAX_ROWS, SweepSpec
from .store import CHECKPOINT_S, FAILED, OK, ResultRow, SweepStore

SINGLE_THREAD_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
Task = tuple[int, int, int]  # point_id, repeat, seed

_payload: Payload | None = None  # a worker's copy


def _install(payload: Payload, devices=None) -> None:
    """A worker's set-up: its payload, on the device it takes from ``devices`` (a queue of device names; None: the payload's)."""
    global _payload
    _payload = payload.on_device(None if devices is None else devices.get())
    import torch

    torch.set_num_threads(1)


def _run_task(point: dict, seed: int) -> dict[str, float]:
    return evaluate(_payload, point, seed)


def _run_with(payload: Payload, point: dict, seed: int) -> dict[str, float]:
    """For Dask: the payload arrives as a (cached) argument; threads are limited at first use."""
    if _payload is not payload:
        _install(payload)
        import numba

        numba.set_num_threads(1)
    return evaluate(payload, point, seed)


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """Environment variables for processes started inside (their libraries read them at import)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Outcome:
    def __init__(self, task: Task, wall_s: float, metrics: dict | None = None, error: str = ""):
        self.task, self.wall_s, self.metrics, self.error = task, wall_s, metrics, error


def _serial(payload: Payload, points: list[dict], tasks: list[Task], workers: int) -> Iterator[Outcome]:
    payload.on_device()
    for task in tasks:
        start = time.perf_counter()
        try:
            metrics = evaluate(payload, points[task[0]], task[2])
            yield Outcome(task, time.perf_counter() - start, metrics)
        except Exception as exc:  # noqa: BLE001 - a failing point is recorded, the sweep goes on
            yield Outcome(task, time.perf_counter() - start, error=f"{type(exc).__name__}: {exc}")


def _processes(payload: Payload, points: list[dict], tasks: list[Task], workers: int) -> Iterator[Outcome]:
    context = get_context("spawn")
    devices = context.Queue()
    for device in worker_devices(payload.device, workers):
        devices.put(device)
    with _environment(SINGLE_THREAD_ENV), ProcessPoolExecutor(workers, context, _install, (payload, devices)) as pool:
        yield from _drain(pool.submit, points, tasks, workers, _run_task)


def worker_devices(device: str, workers: int) -> list[str]:
    """The device of each of ``workers`` workers: with "cuda" (no index) worker k gets GPU k mod the GPU count,
    with any other device every worker gets that one."""
    if device != "cuda":
        return [device] * workers
    import torch

    return [f"cuda:{k % torch.cuda.device_count()}" for k in range(workers)]


def default_workers(device: str) -> int:
    """Workers of a ``processes`` sweep by default: one per core on the CPU, one per GPU with "cuda", else one."""
    if device == "cpu":
        return os.cpu_count() or 1
    import torch

    return torch.cuda.device_count() if device == "cuda" else 1


def _dask(address: str, payload: Payload, points: list[dict], tasks: list[Task], workers: int) -> Iterator[Outcome]:
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if address == "dask:local":
            with _environment(SINGLE_THREAD_ENV):
                cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                           dashboard_address=None, silence_logs=logging.ERROR))  # fmt: skip
            client = stack.enter_context(Client(cluster))
        else:
            client = stack.enter_context(Client(address))
        remote = client.scatter(payload, broadcast=True)
        submit = lambda fn, point, seed: client.submit(fn, remote, point, seed, pure=False)  # noqa: E731
        yield from _drain(submit, points, tasks, workers, _run_with)


def _drain(submit, points, tasks, workers, fn) -> Iterator[Outcome]:
    """Keep about two tasks per worker in flight; yield outcomes as they finish."""
    pending, queue = {}, list(tasks)
    while queue or pending:
        while queue and len(pending) < 2 * workers:
            task = queue.pop(0)
            pending[submit(fn, points[task[0]], task[2])] = (task, time.perf_counter())
        done, _ = wait(list(pending), return_when=FIRST_COMPLETED) if not _is_dask(pending) else _dask_wait(pending)
        for future in done:
            task, start = pending.pop(future)
            try:
                yield Outcome(task, time.perf_counter() - start, future.result())
            except Exception as exc:  # noqa: BLE001
                yield Outcome(task, time.perf_counter() - start, error=f"{type(exc).__name__}: {exc}")


def _is_dask(pending) -> bool:
    return bool(pending) and type(next(iter(pending))).__module__.startswith("distributed")


def _dask_wait(pending):
    from distributed import wait as dask_wait

    result = dask_wait(list(pending), return_when="FIRST_COMPLETED")
    return result.done, result.not_done


def run_sweep(spec: SweepSpec, store_path, executor: str = "processes", workers: int | None = None, retries: int = 1,
              progress: bool = True, max_rows: int = DEFAULT_MAX_ROWS, checkpoint_s: float = CHECKPOINT_S,
              max_work: int = DEFAULT_MAX_WORK, device: str = "cpu", backend: str | None = None) -> SweepStore:  # fmt: skip
    """Evaluate every missing (point, repeat) of ``spec`` into the store at ``store_path``.

    Everything is checked before any file is made: the size (``max_rows``), the executor, the device, that no
    other sweep writes the store, the data set, the model and that it runs on the data, and the work the whole
    sweep asks for (``max_work`` network evaluations, training included). A sweep that fails there leaves
    nothing behind. The HDF5 file is rewritten whole every ``checkpoint_s`` seconds.
    The chips run on ``device`` ("cuda": with ``processes``, one worker per GPU) with tile ``backend``
    (None: the spec's chip config's runtime.backend); rows agree across devices to float32 rounding.
    """
    spec.check_size(max_rows)
    start = _executor(executor)
    _check_device(device, executor, backend, spec)
    if workers is not None and workers < 1:
        raise XbarsimError(f"workers must be >= 1 (got {workers})")
    if retries < 0 or not checkpoint_s >= 0:
        raise XbarsimError(f"retries and checkpoint_s must be >= 0 (got {retries} and {checkpoint_s})")
    store_path = Path(store_path)
    if store_path.is_dir():
        raise XbarsimError(f"{store_path} is a folder: name the store's file (e.g. {store_path / 'sweep.h5'})")
    check_unlocked(store_path)
    inputs = load_inputs(spec)
    evaluations, parts = sweep_work(spec, inputs)
    check_work(evaluations, max_work, f"sweep {spec.name!r}", parts)
    with SweepStore(store_path, spec, checkpoint_s) as store:
        points = spec.points()
        done = store.done()
        tasks = [(p, r, spec.seed_of(r)) for p in range(len(points)) for r in range(spec.repeats) if (p, r) not in done]
        if tasks:
            payload = build_payload(spec, inputs, progress=progress, device=device, backend=backend)
            _evaluate_into(store, start, payload, points, tasks, workers or default_workers(device), retries, progress)
        store.finish()
    return store


def _evaluate_into(store: SweepStore, start, payload: Payload, points: list[dict], tasks: list[Task], workers: int,
                   retries: int, progress: bool) -> None:  # fmt: skip
    spec = store.spec
    attempts: dict[Task, int] = {}
    with tqdm(total=spec.row_count(), initial=spec.row_count() - len(tasks), desc=spec.name, unit="pt",
              disable=not progress, file=sys.stderr) as bar:  # fmt: skip
        while tasks:
            failed = []
            for outcome in start(payload, points, tasks, workers):
                task = outcome.task
                if outcome.metrics is None and attempts.get(task, 0) < retries:
                    attempts[task] = attempts.get(task, 0) + 1
                    failed.append(task)
                    continue
                status = OK if outcome.metrics is not None else FAILED
                store.add(ResultRow(task[0], task[1], task[2], outcome.wall_s, status, outcome.metrics or {}, outcome.error))
                bar.update()
            tasks = failed


def _check_device(device: str, executor: str, backend: str | None, spec: SweepSpec) -> None:
    """Refuse a device this machine lacks, a backend that cannot run there, or a device for Dask's workers."""
    from ..crossbar_torch.backend import select

    select(backend, device, spec.chip_config())
    if device != "cpu" and executor not in ("serial", "processes"):
        raise XbarsimError(f"--device {device} needs the serial or processes executor (a Dask worker chooses its own device)")


def _executor(name: str):
    if name == "serial":
        return _serial
    if name == "processes":
        return _processes
    if name == "dask:local" or name.startswith("tcp://"):
        if importlib.util.find_spec("distributed") is None:
            raise XbarsimError(f"executor {name!r} needs dask.distributed: pip install 'xbarsim[dask]'")
        return lambda *args: _dask(name, *args)
    raise XbarsimError(f"unknown executor {name!r}: use serial, processes, dask:local or tcp://host:port")
