import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from xbarsim.cli import main
from xbarsim.models import data, zoo
from xbarsim.models.checkpoint import save_checkpoint
from xbarsim.models.training import TrainConfig, train
from xbarsim.sweeps import runner
from xbarsim.sweeps.report import format_report, noise_curves, summarize
from xbarsim.sweeps.runner import run_sweep
from xbarsim.sweeps.spec import SweepSpec, parse_values
from xbarsim.sweeps.store import ResultRow, StoreError, SweepStore, read_results


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "mlp.pt"
    model = zoo.build("mlp", hidden=(64,))
    train(model, data.digits(), TrainConfig(epochs=8), progress=False)
    save_checkpoint(model, path)
    return str(path)


def _spec(checkpoint, **changes) -> SweepSpec:
    spec = {"name": "test", "model": {"checkpoint": checkpoint}, "data": "digits", "chip": "pcm", "test_samples": 150,
            "axes": {"device.read_noise.scale": [0.5, 4.0], "tile.adc.bits": [4, 8]}, "repeats": 2}  # fmt: skip
    spec.update(changes)
    return SweepSpec.model_validate(spec)


def _by_key(results) -> dict:
    cols = results.columns
    return {(int(p), int(r)): (float(a), int(s)) for p, r, a, s in zip(cols["point_id"], cols["repeat"], cols["accuracy"], cols["seed"])}


def test_spec_expands_grid_and_zip():
    spec = SweepSpec.model_validate({"model": {"zoo": "mlp"}, "axes": {"tile.adc.bits": [4, 6, 8], "drift.t": [0, 60]}})
    points = spec.points()
    assert len(points) == 6 and points[:2] == [{"tile.adc.bits": 4, "drift.t": 0}, {"tile.adc.bits": 4, "drift.t": 60}]
    zipped = SweepSpec.model_validate({"model": {"zoo": "mlp"}, "mode": "zip", "axes": {"tile.adc.bits": [4, 8], "drift.t": [0, 60]}})
    assert zipped.points() == [{"tile.adc.bits": 4, "drift.t": 0}, {"tile.adc.bits": 8, "drift.t": 60}]
    assert parse_values("logspace(-2, 1, 13)")[0] == pytest.approx(0.01) and len(parse_values("linspace(0,1,5)")) == 5
    assert spec.digest() != zipped.digest()


@pytest.mark.parametrize("axes, message", [
    ({"tile.adc.bits": [0]}, "axis tile.adc.bits: must be an integer >= 2 and <= 24 or null (got 0)"),
    ({"tile.adc.bitz": [4]}, "axis tile.adc.bitz"),
    ({"device.nope.sigma": [1]}, "axis device.nope.sigma"),
    ({"drift.t": [-5]}, "axis drift.t: each value must be from 0 to 1e.12 s (about 31,700 years), got -5"),
    ({"drift.t": [1e300]}, "axis drift.t: each value must be from 0 to 1e.12 s (about 31,700 years), got 1e.300"),
    ({"activation_noise": "logspace(0, 1)"}, "use a list, logspace"),
])  # fmt: skip
def test_bad_axes_are_refused_before_anything_runs(axes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SweepSpec.model_validate({"model": {"zoo": "mlp"}, "axes": axes})
    with pytest.raises(ValueError, match="zipped axes"):
        SweepSpec.model_validate({"model": {"zoo": "mlp"}, "mode": "zip", "axes": {"tile.adc.bits": [4], "drift.t": [0, 1]}})
    with pytest.raises(ValueError, match="midpoint metric needs an activation_noise axis"):
        SweepSpec.model_validate({"model": {"zoo": "mlp"}, "axes": {"drift.t": [0]}, "metrics": ["midpoint"]})


def test_executors_give_identical_results(checkpoint, tmp_path):
    spec = _spec(checkpoint)
    results = {}
    for executor in ("serial", "processes", "dask:local"):
        run_sweep(spec, tmp_path / f"{executor.replace(':', '_')}.h5", executor, workers=2, progress=False)
        results[executor] = _by_key(read_results(tmp_path / f"{executor.replace(':', '_')}.h5"))
    assert len(results["serial"]) == 8
    assert results["serial"] == results["processes"] == results["dask:local"]


@pytest.mark.parametrize("recipe, message", [
    ({"qat": {"bits": 40}}, "train: QAT bits must be 2..16, got 40"),
    ({"qat": {"bitz": 4}}, "qat.bitz: unknown field (allowed: bits, symmetric, activation_scale)"),
    ({"qat": 4}, "qat: must be a mapping"),
    ({"epochs": "3"}, "epochs: must be an integer (got '3')"),
    ({"lr": float("nan")}, "lr: must be a finite number"),
    ({"hwa": "nopreset"}, "'nopreset' is neither a preset"),
    ({"optimizer": "sgd"}, "optimizer: unknown field"),
])  # fmt: skip
def test_a_bad_training_recipe_is_refused_naming_its_field(recipe, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SweepSpec.model_validate({"model": {"zoo": "mlp", "train": recipe}, "axes": {"tile.adc.bits": [4]}})


def test_a_qat_recipe_trains_once_and_every_executor_sees_the_same_network(tmp_path):
    spec = SweepSpec.model_validate({
        "model": {"zoo": "mlp", "kwargs": {"hidden": [32]}, "train": {"epochs": 2, "qat": {"bits": 4}, "hwa": "pcm"}},
        "data": "digits", "chip": "pcm", "test_samples": 100, "repeats": 1, "axes": {"tile.adc.bits": [4, 8]}})  # fmt: skip
    recipe = spec.model.recipe(seed=3)
    assert (recipe.qat.bits, recipe.hwa.device.read_noise.kind, recipe.seed) == (4, "pcm", 3)
    results = {}
    for executor in ("serial", "processes"):
        run_sweep(spec, tmp_path / f"{executor}.h5", executor, workers=2, progress=False)
        results[executor] = _by_key(read_results(tmp_path / f"{executor}.h5"))
    assert len(results["serial"]) == 2 and results["serial"] == results["processes"]


def test_killed_sweep_resumes_with_every_point_once(checkpoint, tmp_path):
    spec = _spec(checkpoint, axes={"device.read_noise.scale": [0.5, 1, 2, 4], "tile.adc.bits": [4, 6, 8]}, repeats=3)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(json.loads(spec.model_dump_json())))
    store = tmp_path / "killed.h5"
    journal = tmp_path / "killed.h5.journal"
    process = subprocess.Popen([sys.executable, "-m", "xbarsim.cli", "sweep", str(spec_file), "-o", str(store), "--executor", "serial"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and (not journal.exists() or len(journal.read_text().splitlines()) < 8):
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    partial = len(journal.read_text().splitlines())
    assert 8 <= partial < 36, "the sweep should have been killed half-way"
    run_sweep(spec, store, "serial", progress=False)
    resumed = read_results(store)
    keys = list(zip(resumed.columns["point_id"], resumed.columns["repeat"]))
    assert len(keys) == len(set(keys)) == 36  # every point exactly once
    assert not journal.exists()  # complete: the journal is gone
    run_sweep(spec, tmp_path / "whole.h5", "serial", progress=False)
    assert _by_key(resumed) == _by_key(read_results(tmp_path / "whole.h5"))


def test_a_raising_point_is_retried_then_stored_as_failed(checkpoint, tmp_path, monkeypatch):
    spec = _spec(checkpoint)
    calls = {"bad": 0}
    real = runner.evaluate

    def flaky(payload, point, seed):
        if point == {"device.read_noise.scale": 4.0, "tile.adc.bits": 4} and seed == 0:
            calls["bad"] += 1
            raise RuntimeError("device on fire")
        return real(payload, point, seed)

    monkeypatch.setattr(runner, "evaluate", flaky)
    run_sweep(spec, tmp_path / "s.h5", "serial", retries=2, progress=False)
    results = read_results(tmp_path / "s.h5")
    failed = results.columns["status"] == "failed"
    assert calls["bad"] == 3 and failed.sum() == 1
    assert "RuntimeError: device on fire" in results.columns["error"][failed][0]
    assert (results.columns["status"] == "ok").sum() == 7
    assert (tmp_path / "s.h5.journal").exists()  # incomplete: kept
    assert "incomplete: 1 of 8 rows failed; re-run the sweep into this store to retry them" in format_report(results)
    monkeypatch.setattr(runner, "evaluate", real)
    run_sweep(spec, tmp_path / "s.h5", "serial", progress=False)  # a re-run retries the failed point only
    results = read_results(tmp_path / "s.h5")
    assert len(results.columns["point_id"]) == 8 and (results.columns["status"] == "ok").all()


def test_a_store_of_another_spec_is_refused(checkpoint, tmp_path):
    run_sweep(_spec(checkpoint, repeats=1), tmp_path / "s.h5", "serial", progress=False)
    with pytest.raises(StoreError, match=r"s.h5 holds results of a different sweep spec"):
        run_sweep(_spec(checkpoint, repeats=2), tmp_path / "s.h5", "serial", progress=False)


def test_a_store_damaged_by_a_crash_is_rebuilt_from_its_journal(checkpoint, tmp_path):
    spec = _spec(checkpoint, repeats=1)
    with SweepStore(tmp_path / "s.h5", spec, checkpoint_s=0) as store:  # the HDF5 file is rewritten at every row
        store.add(ResultRow(0, 0, 0, 0.1, "ok", {"accuracy": 0.5}))
        store.add(ResultRow(2, 0, 0, 0.1, "ok", {"accuracy": 0.75}))
    raw = (tmp_path / "s.h5").read_bytes()
    (tmp_path / "s.h5").write_bytes(raw[: len(raw) // 3])
    with SweepStore(tmp_path / "s.h5", spec) as rebuilt:
        assert rebuilt.done() == {(0, 0), (2, 0)}
        rebuilt.add(ResultRow(1, 0, 0, 0.1, "ok", {"accuracy": 0.25}))
        rebuilt.add(ResultRow(3, 0, 0, 0.1, "ok", {"accuracy": 1.0}))
        rebuilt.finish()
    assert _by_key(read_results(tmp_path / "s.h5")) == {(0, 0): (0.5, 0), (1, 0): (0.25, 0), (2, 0): (0.75, 0), (3, 0): (1.0, 0)}
    assert not (tmp_path / "s.h5.journal").exists() and not (tmp_path / "s.h5.lock").exists()
    (tmp_path / "other.h5").write_bytes(b"junk")
    with pytest.raises(StoreError, match="other.h5: not a readable sweep store"):
        SweepStore(tmp_path / "other.h5", spec)


def test_report_plots_csv_and_midpoints(checkpoint, tmp_path, capsys):
    spec = _spec(checkpoint, axes={"tile.adc.bits": [4, 8], "activation_noise": "logspace(-2, 1, 7)"}, repeats=2,
                 metrics=["accuracy", "midpoint"])  # fmt: skip
    run_sweep(spec, tmp_path / "n.h5", "serial", progress=False)
    results = read_results(tmp_path / "n.h5")
    assert len(summarize(results)) == 14 and set(noise_curves(results)) == {"tile.adc.bits=4", "tile.adc.bits=8"}
    assert "midpoint noise level (activation noise after every module (additive), on the mapped chip; level: sigma):" in format_report(results)
    assert main(["report", str(tmp_path / "n.h5"), "--plot", str(tmp_path / "n.pdf"), "--csv", str(tmp_path / "n.csv")]) == 0
    assert (tmp_path / "n_noise.pdf").is_file() and (tmp_path / "n.pdf").is_file()
    assert len((tmp_path / "n.csv").read_text().splitlines()) == 29
    assert np.isfinite(results.columns["accuracy"]).all()
