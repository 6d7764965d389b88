"""The robustness studies in benchmarks/ are reproducible, and the CIFAR-10 one runs end to end
on CIFAR-shaped data. Each runs in its own process: a study fixes torch's global settings."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _table(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("|")]


def test_a_quick_study_gives_the_same_table_twice(tmp_path):
    args = ("--quick", "--models", "mlp", "--plot", str(tmp_path / "nm.png"), "--json", str(tmp_path / "nm.json"))
    first, second = _run("noisy_machines_digits.py", *args), _run("noisy_machines_digits.py", *args)
    table = _table(first)
    assert len(table) == 2 + 3 and table == _table(second)
    assert [row.split("|")[2].strip() for row in table[2:]] == ["plain", "noise injection", "distillation + noise injection"]
    assert (tmp_path / "nm.png").stat().st_size > 0 and "run time" in first
    # the JSON holds every training seed's value behind each cell, and what made the table
    record = json.loads((tmp_path / "nm.json").read_text())
    env = record["environment"]
    assert {"xbarsim", "torch", "numpy", "torch_threads", "numba_threads"} <= set(env) and env["torch_threads"] == 1
    midpoint = record["results"]["MLP"]["noise injection"]["midpoint"]
    values = [row["value"] for row in midpoint["per_seed"]]
    assert [row["seed"] for row in midpoint["per_seed"]] == [0, 1] and midpoint["of"] == 2
    if len(values) == 2:  # the cell is their mean ± standard error, as printed
        assert midpoint["mean"] == pytest.approx(np.mean(values)) and midpoint["error"] == pytest.approx(np.std(values, ddof=1) / np.sqrt(2))
        row = next(r for r in table if "| noise injection |" in r)
        assert f"{midpoint['mean']:.3f} ± {midpoint['error']:.3f}" in row


def test_the_cifar10_study_runs_on_cifar_shaped_data(tmp_path):
    out = _run("hardening_cifar10.py", "--data", "synthetic", "--quick", "--epochs", "1", "--width", "0.0625", "--plot", str(tmp_path / "h.png"),
               "--json", str(tmp_path / "h.json"))  # never the study's own results/hardening_cifar10.json
    assert "synthetic: 319 train / 81 test" in out and "estimated run time" in out
    rows = [row.split("|")[1:3] for row in _table(out)[2:]]
    assert [(m.strip(), t.strip()) for m, t in rows] == [
        (m, t) for m in ("LeNet-5", "VGG-11", "ResNet-18")
        for t in ("plain", "noisy training", "QAT 8-bit, dynamic scale", "QAT 8-bit, constant scale (4)")
    ]  # fmt: skip
    assert (tmp_path / "h.png").stat().st_size > 0


def test_the_cifar10_study_refuses_other_data():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "hardening_cifar10.py"), "--data", "digits", "--estimate"],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode != 0 and "--data: use cifar10:PATH or synthetic" in done.stderr


def test_the_language_model_study_runs_quick(tmp_path):
    out = _run("chargpt_pydoc.py", "--quick", "--train-windows", "32", "--chips", "1", "--plot", str(tmp_path / "lm.png"),
               "--json", str(tmp_path / "lm.json"))
    rows = [[cell.strip() for cell in row.split("|")[1:-1]] for row in _table(out)[2:]]
    assert [row[:2] + row[3:4] for row in rows] == [[m, t, adc] for m in ("chargpt", "LSTM") for t in ("float32", "+ float fine-tuning", "+ HWA fine-tuning")
                                              for adc in ("fixed ADC bound", "calibrated ADC")]  # fmt: skip
    for row in rows:  # float BPC and the chip's at three times, means over the 2 training seeds: below uniform guessing (log2 97 = 6.6 bits)
        values = [float(cell.split(" ± ")[0]) for cell in (row[2], *row[4:7])]
        assert all(0 < v < 6.6 for v in values), row
    assert "training seeds 0, 1;" in out and "1 chips per cell" in out and (tmp_path / "lm.png").stat().st_size > 0
    record = json.loads((tmp_path / "lm.json").read_text())  # every seed's float BPC and chip BPC behind each cell
    cell = record["results"]["LSTM"]["+ HWA fine-tuning"]
    assert [r["seed"] for r in cell["float_bpc"]["per_seed"]] == [0, 1] and cell["float_bpc"]["n"] == 2
    gap = cell["chips"]["calibrated ADC"]["gap_after_programming"]
    per_seed = [np.mean(r["bpc"][0]) - f["value"] for r, f in zip(cell["chips"]["calibrated ADC"]["per_seed"], cell["float_bpc"]["per_seed"])]
    assert [r["value"] for r in gap["per_seed"]] == pytest.approx(per_seed) and gap["mean"] == pytest.approx(np.mean(per_seed))
