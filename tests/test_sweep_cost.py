"""The sweep metric ``cost``: energy and latency per inference stored beside accuracy, reported and
plotted against accuracy over ADC bits and tile size."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from xbarsim.cli import main
from xbarsim.mapping.chip import map_model
from xbarsim.mapping.cost import measure_cost
from xbarsim.models import data, zoo
from xbarsim.models.checkpoint import load_network, save_checkpoint
from xbarsim.sweeps.report import format_report
from xbarsim.sweeps.runner import run_sweep
from xbarsim.sweeps.spec import SweepSpec
from xbarsim.sweeps.store import read_results

SAMPLES = 20


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sweep_cost") / "mlp.pt"
    save_checkpoint(zoo.build("mlp", hidden=(48,)), path)
    return str(path)


def _spec(checkpoint, **changes) -> SweepSpec:
    spec = {"name": "cost", "model": {"checkpoint": checkpoint}, "chip": "pcm", "test_samples": SAMPLES, "repeats": 1,
            "axes": {"tile.adc.bits": [4, 8], "tile.rows": [32, 64]}, "metrics": ["accuracy", "cost"]}  # fmt: skip
    spec.update(changes)
    return SweepSpec.model_validate(spec)


def test_cost_metrics_are_stored_reported_and_plotted(checkpoint, tmp_path, capsys):
    spec = _spec(checkpoint)
    run_sweep(spec, tmp_path / "c.h5", "serial", progress=False)
    with h5py.File(tmp_path / "c.h5") as f:
        assert {"metric_accuracy", "metric_energy_per_inference", "metric_latency"} <= set(f["rows"])
    results = read_results(tmp_path / "c.h5")
    cols = results.columns
    assert np.all(cols["energy_per_inference"] > 0) and np.all(cols["latency"] > 0)
    # the stored energy is the cost of the same chip measured on the same inputs (pcm: no re-reads)
    split = data.load("digits")
    network = load_network(checkpoint)
    for i, point in enumerate(spec.points()):
        cfg = spec.chip_config().with_values(point)
        cost = measure_cost(map_model(network, cfg, seed=int(cols["seed"][i])), split.x_test[:SAMPLES])
        assert cols["energy_per_inference"][i] == pytest.approx(cost.energy_pj * 1e-3, rel=1e-12)
        assert cols["latency"][i] == pytest.approx(cost.latency_ns * 1e-3, rel=1e-12)
    by_point = {(p["tile.adc.bits"], p["tile.rows"]): e for p, e in zip(spec.points(), cols["energy_per_inference"])}
    assert by_point[(8, 64)] > by_point[(4, 64)] and by_point[(8, 32)] > by_point[(4, 32)]  # ADC energy doubles per bit
    assert "energy nJ" in format_report(results) and "latency us" in format_report(results)
    assert main(["report", str(tmp_path / "c.h5"), "--plot", str(tmp_path / "c.png"), "--csv", str(tmp_path / "c.csv")]) == 0
    assert (tmp_path / "c_energy.png").is_file() and "c_energy.png" in capsys.readouterr().out
    assert "energy_per_inference" in (tmp_path / "c.csv").read_text().splitlines()[0]


def test_a_sweep_without_the_cost_metric_stores_no_cost(checkpoint, tmp_path):
    run_sweep(_spec(checkpoint, metrics=["accuracy"], axes={"tile.adc.bits": [4]}), tmp_path / "a.h5", "serial", progress=False)
    assert "energy_per_inference" not in read_results(tmp_path / "a.h5").columns
    with h5py.File(tmp_path / "a.h5") as f:
        assert "metric_energy_per_inference" not in f["rows"]


def test_the_cost_metric_needs_the_mapped_chip(checkpoint):
    with pytest.raises(ValueError, match="cost metric needs the mapped chip"):
        _spec(checkpoint, noise="weight", axes={"noise_level": [0.0, 0.1]})
