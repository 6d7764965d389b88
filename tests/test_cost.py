"""The cost report: operation counts by hand on small networks, energy/latency/area from the table,
linearity in the table, the config section and the ``xbarsim cost`` command."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from xbarsim.cli import main
from xbarsim.config import ChipConfig, ConfigError
from xbarsim.mapping.chip import map_model
from xbarsim.mapping.cost import ENERGY_PARTS, format_cost, measure_cost

TINY = ChipConfig().with_values({"tile.rows": 4, "tile.cols": 4})  # ideal converters: costed at 8 bits
C = TINY.cost


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))


def _totals(model, x):
    return measure_cost(model, x).totals()


def test_two_layer_mlp_counts_energy_latency_and_area_by_hand():
    model = map_model(_mlp(), TINY)
    cost = measure_cost(model, torch.randn(7, 6))
    first, second = cost.layers
    # 6 inputs x 5 outputs on 4x4 tiles: rows 3+3, columns 3+2 -> a 2x2 grid; 5 x 3: rows 3+2 (2), columns 3 (1)
    assert (first.tiles, second.tiles) == (4, 2)
    assert first.counts.as_tuple() == (4, 6 * 2, 5 * 2, 2 * 30)  # tile reads, DAC (n_in x Q), ADC (n_out x P), devices
    assert second.counts.as_tuple() == (2, 5 * 1, 3 * 2, 2 * 15)
    totals = cost.totals()
    assert (totals["vectors"], totals["tile_reads"], totals["dac_conversions"], totals["adc_conversions"]) == (2, 6, 17, 16)
    assert totals["bm_rereads"] == 0
    expected = {"dac": 17 * 8 * C.dac_energy_pj_per_bit, "adc": 16 * C.adc_energy_pj,
                "array": 90 * C.cell_read_energy_fj * 1e-3, "accumulate": 16 * C.accumulate_energy_pj}  # fmt: skip
    for part in ENERGY_PARTS:
        assert totals[f"energy_{part}_pj"] == pytest.approx(expected[part], rel=1e-12)
    assert cost.energy_pj == pytest.approx(sum(expected.values()), rel=1e-12)
    assert cost.energy_pj == pytest.approx(53.125 + 25.0 + 0.164794921875 + 0.3125, rel=1e-12)  # ISAAC's figures
    # each layer: one vector, tiles in parallel, widest tile 3 columns on one ADC
    assert cost.latency_ns == pytest.approx(2 * (C.array_read_latency_ns + 3 * C.adc_latency_ns), rel=1e-12)
    tile_area = 2 * 16 * C.cell_area_um2 + 4 * 8 * C.dac_area_um2_per_bit + 1 * C.adc_area_um2
    assert cost.area_um2 == pytest.approx(6 * tile_area, rel=1e-12)


def test_conv_reads_out_h_times_out_w_vectors_per_image():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    conv = measure_cost(map_model(net, TINY), torch.randn(3, 2, 8, 8)).layers[0]
    # 8x8, kernel 3, stride 2, padding 1 -> 4x4 outputs; 18 inputs on 4-row tiles: 5 row blocks, 1 column block
    assert conv.vectors == 16 and conv.tiles == 5
    assert conv.counts.as_tuple() == (16 * 5, 16 * 18, 16 * 3 * 5, 16 * 2 * 18 * 3)


def test_lstm_reads_its_input_and_hidden_products_every_time_step():
    torch.manual_seed(0)
    steps = 5
    cost = measure_cost(map_model(nn.LSTM(3, 4, batch_first=True), TINY), torch.randn(2, steps, 3))
    (layer,) = cost.layers
    # weight_ih 16x3 and weight_hh 16x4: one row block, four column blocks each
    assert layer.tiles == 8 and layer.vectors == 2 * steps
    assert layer.counts.as_tuple() == (steps * 8, steps * (3 * 4 + 4 * 4), steps * 2 * 16, steps * 2 * (48 + 64))
    assert layer.latency_ns == pytest.approx(2 * steps * (C.array_read_latency_ns + 4 * C.adc_latency_ns))


def test_bound_management_rereads_are_measured_and_costed():
    cfg = ChipConfig.preset("ideal").with_values({
        "tile.dac": {"range": "fixed", "bound": 1.0}, "tile.adc": {"range": "fixed", "bound": 1.5},
        "tile.bound_management": "iterative"})  # fmt: skip
    net = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    model = map_model(net, cfg)
    x = torch.tensor([[1.0] * 4, [0.25] * 4, [0.5] * 4])  # sums 4, 1, 2 against the bound 1.5: 2 + 0 + 1 re-reads
    cost = measure_cost(model, x)
    (layer,) = cost.layers
    assert layer.rereads == 1.0  # 3 re-reads over 3 inputs
    assert layer.counts.as_tuple() == (1 + 1, 4 + 4, 1 + 1, 2 * 4 + 2 * 4)  # the vector, then one re-read of its tile


def test_measuring_leaves_the_chip_counters_and_next_reads_unchanged():
    cfg = ChipConfig.preset("pcm").with_values({"tile.rows": 4, "tile.cols": 4})
    model = map_model(_mlp(), cfg, seed=3)
    x = torch.randn(5, 6)
    before = [(m.tiles.reads, m.tiles.bm_rereads) for m in model.chip.matrices()]
    with torch.no_grad():
        expected = model(x)
    for m, (reads, rereads) in zip(model.chip.matrices(), before):
        m.tiles.reads, m.tiles.bm_rereads = reads, rereads
    measure_cost(model, torch.randn(9, 6))
    assert [(m.tiles.reads, m.tiles.bm_rereads) for m in model.chip.matrices()] == before
    with torch.no_grad():
        assert torch.equal(model(x), expected)  # the same read noise as without the measurement


ENERGY_FIELDS = {"dac_energy_pj_per_bit": "dac", "adc_energy_pj": "adc", "cell_read_energy_fj": "array", "accumulate_energy_pj": "accumulate"}


@given(field=st.sampled_from(sorted(ENERGY_FIELDS)), factor=st.floats(0.0, 50.0))
def test_energy_is_linear_in_each_table_entry(field, factor):
    model = _linear_model()
    base = measure_cost(model, _X).totals()
    cfg = model.chip.cfg
    model.chip.cfg = cfg.with_values({f"cost.{field}": getattr(cfg.cost, field) * factor})
    try:
        scaled = measure_cost(model, _X).totals()
    finally:
        model.chip.cfg = cfg
    part = f"energy_{ENERGY_FIELDS[field]}_pj"
    assert scaled[part] == pytest.approx(factor * base[part], rel=1e-12, abs=1e-12)
    assert scaled["energy_pj"] - base["energy_pj"] == pytest.approx((factor - 1) * base[part], rel=1e-9, abs=1e-9)
    assert scaled["latency_ns"] == base["latency_ns"] and scaled["area_um2"] == base["area_um2"]


_X = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
_MODEL: list = []


def _linear_model():
    if not _MODEL:
        _MODEL.append(map_model(_mlp(), TINY.with_values({"tile.adc": {"bits": 6, "range": "fixed", "bound": 4.0}})))
    return _MODEL[0]


def test_adc_energy_and_area_double_per_bit_and_dac_energy_grows_linearly():
    base = map_model(_mlp(), TINY)
    x = torch.randn(2, 6)
    at = {bits: measure_cost(map_model(_mlp(), TINY.with_values({"tile.adc": {"bits": bits, "range": "fixed", "bound": 4.0},
                                                                   "tile.dac": {"bits": bits, "range": "fixed", "bound": 4.0}})), x)
          for bits in (4, 8)}  # fmt: skip
    t4, t8, ideal = at[4].totals(), at[8].totals(), measure_cost(base, x).totals()
    assert t4["energy_adc_pj"] == pytest.approx(t8["energy_adc_pj"] / 16)
    assert t4["energy_dac_pj"] == pytest.approx(t8["energy_dac_pj"] / 2)
    assert t8["energy_pj"] == pytest.approx(ideal["energy_pj"])  # an ideal converter is costed at 8 bits
    assert at[4].area_um2 < at[8].area_um2


def test_cost_config_validation_and_yaml_override(tmp_path):
    with pytest.raises(ValueError, match="adc_energy_pj"):
        ChipConfig().with_values({"cost.adc_energy_pj": -1.0})
    with pytest.raises(KeyError, match="adc_power"):
        ChipConfig().with_values({"cost.adc_power": 1.0})
    path = tmp_path / "chip.yaml"
    path.write_text("preset: pcm\ncost: {adc_energy_pj: 3.0, columns_per_adc: 8, typo_pj: 1}\n")
    with pytest.raises(ConfigError, match="cost.typo_pj"):
        ChipConfig.from_file(path)
    path.write_text("preset: pcm\ncost: {adc_energy_pj: 3.0, columns_per_adc: 8}\n")
    cfg = ChipConfig.from_file(path)
    assert cfg.cost.adc_energy_pj == 3.0 and cfg.cost.columns_per_adc == 8
    assert cfg.cost.cell_read_energy_fj == ChipConfig().cost.cell_read_energy_fj  # the rest stay ISAAC's
    assert math.isclose(ChipConfig().cost.adc_energy_pj, 2e-3 / 1.28e9 * 1e12)  # ISAAC: 2 mW at 1.28 GS/s


def test_summary_energy_column_per_vector_and_per_inference():
    model = map_model(_mlp(), TINY)
    cost = measure_cost(model, torch.randn(3, 6))
    per_vector = model.summary()
    assert "nJ/MVM" in per_vector
    assert [r.energy_pj_per_vector for r in model.chip.summary()] == pytest.approx([layer.total_energy_pj for layer in cost.layers])
    per_inference = model.chip.format_summary({layer.name: layer.total_energy_pj for layer in cost.layers})
    assert "nJ/inf." in per_inference and f"{cost.energy_pj * 1e-3:.4g}" in per_inference.splitlines()[-2]
    assert "total" in format_cost(cost)


def test_cli_cost_table_and_json_leave_the_chip_file_unchanged(lenet_files, capsys):
    chip = lenet_files / "chip.h5"
    digest = hashlib.sha256(chip.read_bytes()).hexdigest()
    assert main(["cost", str(chip), "--samples", "4"]) == 0
    out = capsys.readouterr().out
    assert "features.0" in out and "classifier.5" in out and "total" in out and "ISAAC" in out
    assert main(["cost", str(chip), "--samples", "4", "--data", "synthetic", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["samples"] == 4 and report["totals"]["tiles"] == sum(layer["tiles"] for layer in report["layers"])
    conv = report["layers"][0]
    assert conv["vectors"] == 64  # LeNet-5's first conv on 8x8 digits: 'same' padding, 8x8 outputs
    assert report["cost_table"]["adc_energy_pj"] == 1.5625
    assert np.isclose(report["totals"]["energy_pj"], sum(sum(layer["energy_pj"].values()) for layer in report["layers"]))
    assert hashlib.sha256(chip.read_bytes()).hexdigest() == digest
    with pytest.raises(SystemExit) as exit_info:
        main(["cost", str(chip), "--samples", "0"])
    assert exit_info.value.code == 2 and "--samples" in capsys.readouterr().err
