"""Sweep throughput: points per second of a LeNet-5 digits sweep on 1 and 2 local worker
processes (the scaling ratio), and the extra time per point of the Dask executor against the
process pool. ``python benchmarks/bench_sweep.py``; about two minutes on 2 cores."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from xbarsim.models import data, zoo
from xbarsim.models.checkpoint import save_checkpoint
from xbarsim.models.training import TrainConfig, train
from xbarsim.sweeps.runner import run_sweep
from xbarsim.sweeps.spec import SweepSpec


def main() -> int:
    folder = Path(tempfile.mkdtemp(prefix="xbarsim-bench-sweep-"))
    model = zoo.build("lenet5", image_size=8)
    train(model, data.digits(), TrainConfig(epochs=10), progress=False)
    save_checkpoint(model, folder / "lenet5.pt")
    spec = SweepSpec.model_validate({
        "name": "bench", "model": {"checkpoint": str(folder / "lenet5.pt")}, "chip": "pcm",
        "axes": {"device.read_noise.scale": [0.5, 1, 2, 4], "tile.adc.bits": [4, 6, 8], "drift.t": [0, 86400]},
        "repeats": 20,
    })  # fmt: skip
    n = len(spec.points()) * spec.repeats
    timings = {}
    for label, executor, workers in [("serial", "serial", 1), ("processes x1", "processes", 1),
                                     ("processes x2", "processes", 2), ("dask:local x2", "dask:local", 2)]:  # fmt: skip
        start = time.perf_counter()
        run_sweep(spec, folder / f"{label.replace(' ', '_').replace(':', '_')}.h5", executor, workers, progress=False)
        timings[label] = time.perf_counter() - start
    print(f"LeNet-5 on digits, pcm chips, {n} (point, repeat) evaluations of 359 test images each:\n")
    print("| executor | wall time | points/s |\n|---|---|---|")
    for label, seconds in timings.items():
        print(f"| {label} | {seconds:.1f} s | {n / seconds:.1f} |")
    print(f"\nscaling 2 vs 1 worker processes: {timings['processes x1'] / timings['processes x2']:.2f}x")
    print(f"Dask overhead vs the process pool (2 workers): {1000 * (timings['dask:local x2'] - timings['processes x2']) / n:+.0f} ms per point "
          f"(worker start-up included)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
