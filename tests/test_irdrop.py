"""Wire resistance: the exact nodal solver against closed forms, the first-order model against the solver,
the kernel path against the NumPy reference, and the config, sweep and chip-file plumbing."""

import json
import warnings

import h5py
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xbarsim import ChipConfig, load_chip, map_model
from xbarsim.config import ConfigError
from xbarsim.crossbar.laws import irdrop
from xbarsim.crossbar.truth import reference
from xbarsim.crossbar.truth import irdrop_solver as solver
from xbarsim.crossbar.tile import TileArray
from xbarsim.models import data, zoo
from xbarsim.models.checkpoint import save_checkpoint
from xbarsim.models.training import TrainConfig, train
from xbarsim.sweeps.runner import run_sweep
from xbarsim.sweeps.spec import SweepSpec
from xbarsim.sweeps.store import read_results

G_MAX_US = 25.0
R_DEVICE_OHM = 1e6 / G_MAX_US  # R = 1 / g_max: 40 kOhm


def _ladder_lambda(g_us: float, r_ohm: float) -> tuple[float, float]:
    """A line of identical cells, each a device G in series with one segment r of the crossing wire: the shunt
    g' = G / (1 + r G) between series segments r gives node voltages ~ cosh(lambda k), cosh(lambda) = 1 + r g' / 2."""
    g_s = g_us * 1e-6
    shunt = g_s / (1 + r_ohm * g_s)
    return shunt, np.arccosh(1 + r_ohm * shunt / 2)


def test_solver_one_device_is_a_series_circuit():
    # driver -> r -> G -> r -> virtual ground
    assert solver.output_currents(np.array([[25.0]]), [[0.3]], 2.0)[0, 0] == pytest.approx(0.3 * 25.0 / (1 + 2 * 2.0 * 25e-6), rel=1e-12)


def test_solver_one_row_matches_the_ladder_closed_form():
    # word line: u_k = V cosh(lambda (m + 1/2 - k)) / cosh(lambda (m + 1/2)), k = 1..m; column k carries g' u_k
    m, g_us, r_ohm, v = 40, 20.0, 3.0, 0.7
    shunt, lam = _ladder_lambda(g_us, r_ohm)
    k = np.arange(1, m + 1)
    closed = 1e6 * shunt * v * np.cosh(lam * (m + 0.5 - k)) / np.cosh(lam * (m + 0.5))  # uA
    np.testing.assert_allclose(solver.output_currents(np.full((1, m), g_us), [[v]], r_ohm)[0], closed, rtol=1e-10)


def test_solver_one_column_matches_the_ladder_closed_form():
    # bit line, all inputs V: w_k = V - v_k = V cosh(lambda (k - 1/2)) / cosh(lambda (n + 1/2)); output v_n / r
    n, g_us, r_ohm, v = 50, 15.0, 2.5, 0.2
    _, lam = _ladder_lambda(g_us, r_ohm)
    closed = 1e6 * v * (1 - np.cosh(lam * (n - 0.5)) / np.cosh(lam * (n + 0.5))) / r_ohm  # uA
    got = solver.output_currents(np.full((n, 1), g_us), np.full((1, n), v), r_ohm)[0, 0]
    assert got == pytest.approx(closed, rel=1e-10)
    assert got < n * g_us * v  # the drop lowers the current


def test_solver_is_linear_and_tends_to_the_ideal_product():
    rng = np.random.default_rng(1)
    g = rng.uniform(0, G_MAX_US, (6, 9))
    x = rng.uniform(-1, 1, (4, 6))
    effective = solver.effective_conductances(g, 1.5)
    np.testing.assert_allclose(solver.output_currents(g, x, 1.5), x @ effective, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(solver.output_currents(g, x, 1e-9), x @ g, rtol=1e-9, atol=1e-9)
    assert np.array_equal(solver.output_currents(g, x, 0.0), x @ g)


def _patterns(rng, n):
    return {
        "ones": np.ones((1, n)),
        "positive": rng.uniform(0, 1, (16, n)),
        "mixed sign": rng.uniform(-1, 1, (16, n)),
        "sparse": rng.uniform(-1, 1, (16, n)) * (rng.uniform(size=(16, n)) < 0.2),
    }


@pytest.mark.parametrize("r_over_r", [1e-3, 3e-4, 1e-4])
@pytest.mark.parametrize("shape", [(4, 5), (12, 12), (24, 8), (8, 24), (20, 20)])
def test_first_order_model_matches_the_solver(shape, r_over_r):
    """Error <= 0.15 delta^2 of the full-scale output, delta = max r (A + B) (measured: <= ~0.08 delta^2); ignoring the
    wires errs by ~0.5 delta, so a wrong first-order term fails."""
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    g = rng.uniform(0, G_MAX_US, shape)
    r_ohm = r_over_r * R_DEVICE_OHM
    delta = irdrop.attenuation(g, r_ohm).max()
    exact = solver.effective_conductances(g, r_ohm)
    model = irdrop.array_conductances(g, r_ohm)
    for name, x in _patterns(rng, shape[0]).items():
        full_scale = np.abs(x @ g).max()
        model_error = np.abs(x @ model - x @ exact).max() / full_scale
        wires_ignored = np.abs(x @ g - x @ exact).max() / full_scale
        assert model_error <= 0.15 * delta**2, (name, model_error, delta)
        assert model_error <= 0.2 * wires_ignored, (name, model_error, wires_ignored)


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 12), cols=st.integers(1, 12), r_ohm=st.floats(1e-3, 1e3), seed=st.integers(0, 2**31))
def test_wires_only_ever_attenuate_and_more_resistance_attenuates_more(rows, cols, r_ohm, seed):
    g = np.random.default_rng(seed).uniform(0, G_MAX_US, (rows, cols))
    seen = irdrop.array_conductances(g, r_ohm)
    more = irdrop.array_conductances(g, 2 * r_ohm)
    assert np.all(seen <= g) and np.all(more <= seen) and np.all(more >= 0)
    assert np.all(irdrop.attenuation(g, 2 * r_ohm) == pytest.approx(2 * irdrop.attenuation(g, r_ohm), rel=1e-12))
    # the exact network: node voltages lie between 0 and the input, so no response is negative, and with every input
    # at 1 V no cell carries more than G (sneak paths may still give M_ij > G_ij for a tiny G_ij)
    exact = solver.effective_conductances(g, r_ohm)
    assert np.all(exact >= -1e-9 * G_MAX_US) and np.all(exact.sum(axis=0) <= g.sum(axis=0) * (1 + 1e-9))


def _wired(cfg: ChipConfig, r_ohm: float) -> ChipConfig:
    return cfg.with_values({"tile.wire_resistance_ohm": r_ohm})


def test_tiles_read_the_differential_pair_as_two_solved_arrays():
    """End to end with ideal converters: every tile (G+ and G- arrays) against the exact solver."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((30, 40)).astype(np.float32)
    x = rng.uniform(-1, 1, (7, 40)).astype(np.float32)
    cfg = _wired(ChipConfig.preset("ideal").with_values({"tile.rows": 16, "tile.cols": 12}), 20.0)
    tiles = TileArray.from_weights(w, cfg, seed=0)
    dev = cfg.device
    expected = np.zeros((7, 30))
    for tile in tiles.conductances():
        currents = solver.differential_outputs(tile.g_pos, tile.g_neg, x[:, tile.inputs], 20.0)
        expected[:, tile.outputs] += currents / (dev.g_max_us - dev.g_min_us) * tiles.scales[tile.p, tile.outputs]
    ideal = x.astype(np.float64) @ w.T.astype(np.float64)
    got = tiles.mvm(x)
    delta = irdrop.max_attenuation(tiles.g_now, tiles.grid, 20.0)
    scale = np.abs(ideal).max()
    assert 0.01 < delta < 0.2
    assert np.abs(got - expected).max() <= 0.15 * delta**2 * scale + 1e-5 * scale
    assert np.abs(ideal - expected).max() > 10 * np.abs(got - expected).max()


WIRED_CONFIGS = {
    "pcm": ChipConfig.preset("pcm").with_values({"tile.rows": 128, "tile.cols": 100}),
    "pcm per-device": ChipConfig.preset("pcm").with_values({"tile.rows": 128, "tile.cols": 100, "tile.read_noise_path": "per_device"}),
    "gaussian 8-bit": ChipConfig.preset("gaussian").with_values({
        "tile.dac": {"bits": 8, "range": "dynamic"}, "tile.adc": {"bits": 8, "range": "fixed", "bound": 3.0}, "tile.out_noise": 0.05}),
    "bound management": ChipConfig.preset("rram").with_values({
        "tile.dac": {"bits": 7, "range": "fixed", "bound": 1.0}, "tile.adc": {"bits": 8, "range": "fixed", "bound": 0.4},
        "tile.bound_management": "iterative", "tile.out_noise": 0.02, "tile.rows": 100}),
}  # fmt: skip


@pytest.mark.parametrize("name", WIRED_CONFIGS)
def test_kernels_equal_the_numpy_reference_with_wire_resistance(name):
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((230, 300)) / np.sqrt(300)).astype(np.float32)
    x = rng.standard_normal((70, 300)).astype(np.float32)
    tiles = TileArray.from_weights(w, _wired(WIRED_CONFIGS[name], 1.0), seed=11)
    tiles.drift(3600.0)
    tiles.mvm(x[:5])  # the reference must follow the read counter
    expected = reference.mvm(tiles, x, first_vector=5)
    assert np.array_equal(tiles.mvm(x), expected)
    if tiles.cfg.tile.bound_management == "iterative":  # the re-reads ran, and saw the wires too
        assert reference.mvm.rereads > 0


def test_wires_change_the_result_and_bound_management_rereads_see_them():
    rng = np.random.default_rng(6)
    w = rng.standard_normal((64, 100)).astype(np.float32)
    x = rng.standard_normal((40, 100)).astype(np.float32)
    cfg = WIRED_CONFIGS["bound management"].with_values({"device.read_noise": {"kind": "none"}, "tile.out_noise": 0.0,
                                                         "device.write_noise": {"kind": "none"}})  # fmt: skip
    plain = TileArray.from_weights(w, cfg, seed=1).mvm(x)
    wired_tiles = TileArray.from_weights(w, _wired(cfg, 5.0), seed=1)
    wired = wired_tiles.mvm(x)
    assert wired_tiles.bm_rereads > 0
    # noiseless: the wired result is the plain pipeline run on the attenuated conductances
    assert not np.array_equal(wired, plain)
    seen = irdrop.seen_conductances(wired_tiles.g_now, wired_tiles.grid, 5.0)
    np.testing.assert_allclose(wired_tiles.gdiff_t, (seen[0] - seen[1]) / np.float32(cfg.device.g_max_us - cfg.device.g_min_us))


def test_zero_resistance_skips_the_model_and_equals_the_plain_result_bit_for_bit(monkeypatch):
    rng = np.random.default_rng(7)
    w = rng.standard_normal((50, 80)).astype(np.float32)
    x = rng.standard_normal((20, 80)).astype(np.float32)
    cfg = WIRED_CONFIGS["pcm"]
    plain = TileArray.from_weights(w, cfg, seed=2)
    plain.drift(100.0)
    expected = plain.mvm(x)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the wire model ran at 0 ohm")

    monkeypatch.setattr(irdrop, "seen_conductances", must_not_run)
    zero = TileArray.from_weights(w, _wired(cfg, 0.0), seed=2)
    zero.drift(100.0)
    assert np.array_equal(zero.mvm(x), expected)
    assert np.array_equal(reference.mvm(zero, x, first_vector=0), expected)


@pytest.mark.parametrize("value, shown", [(-1.0, "-1.0"), (float("nan"), "nan"), (float("inf"), "inf"), ("2", "'2'"),
                                          (True, "true"), (None, "null"), (5e3, "5000.0")])  # fmt: skip
def test_bad_wire_resistance_names_the_field(value, shown):
    with pytest.raises(ConfigError) as error:
        ChipConfig.from_dict({"preset": "pcm", "tile": {"wire_resistance_ohm": value}})
    assert str(error.value) == f"tile.wire_resistance_ohm: must be a finite number >= 0 and <= 1000.0 (got {shown})"
    assert ChipConfig.preset("pcm").tile.wire_resistance_ohm == 0.0  # off by default
    assert ChipConfig.from_dict({"tile": {"wire_resistance_ohm": 2}}).tile.wire_resistance_ohm == 2.0  # an int is a fine float


def test_a_sweep_can_put_wire_resistance_on_an_axis(tmp_path):
    model = zoo.build("mlp", hidden=(32,))
    train(model, data.digits(), TrainConfig(epochs=2), progress=False)
    save_checkpoint(model, tmp_path / "mlp.pt")
    spec = SweepSpec.model_validate({"name": "wires", "model": {"checkpoint": str(tmp_path / "mlp.pt")}, "data": "digits",
                                     "chip": {"preset": "ideal", "tile": {"rows": 64, "cols": 64}}, "test_samples": 100,
                                     "axes": {"tile.wire_resistance_ohm": [0.0, 300.0]}, "repeats": 1})  # fmt: skip
    run_sweep(spec, tmp_path / "s.h5", "serial", progress=False)
    results = read_results(tmp_path / "s.h5")
    accuracy = dict(zip(results.columns["point_id"].tolist(), results.columns["accuracy"].tolist()))
    assert len(accuracy) == 2 and accuracy[1] < accuracy[0]  # wires of 300 ohm on 25 uS devices cost accuracy
    with pytest.raises(ValueError, match="tile.wire_resistance_ohm"):
        SweepSpec.model_validate({"model": {"zoo": "mlp"}, "axes": {"tile.wire_resistance_ohm": [-1.0]}})


def test_chip_files_keep_the_wire_resistance_and_old_files_load(tmp_path):
    torch.manual_seed(0)
    model = zoo.build("lenet5", image_size=8)
    chip = map_model(model, _wired(ChipConfig.preset("pcm").with_values({"tile.rows": 64, "tile.cols": 48}), 1.5), seed=7)
    path = tmp_path / "chip.h5"
    chip.save(path)
    x = torch.rand(6, 1, 8, 8)
    loaded = load_chip(path)
    assert loaded.chip.cfg.tile.wire_resistance_ohm == 1.5
    with torch.no_grad():
        assert torch.equal(loaded(x), chip(x))
    # a file written before the field existed: its config has no wire_resistance_ohm, and loads with ideal wires
    old = tmp_path / "old.h5"
    map_model(model, ChipConfig.preset("pcm").with_values({"tile.rows": 64, "tile.cols": 48}), seed=7).save(old)
    with h5py.File(old, "r+") as f:
        config = json.loads(f["config"].attrs["json"])
        del config["tile"]["wire_resistance_ohm"]
        f["config"].attrs["json"] = json.dumps(config)
    assert load_chip(old).chip.cfg.tile.wire_resistance_ohm == 0.0


def test_an_attenuation_beyond_the_models_range_warns_once_per_read_epoch_and_not_below():
    rng = np.random.default_rng(5)
    weights = rng.uniform(-1, 1, (512, 512)).astype(np.float32)
    pcm = ChipConfig.preset("pcm")
    with pytest.warns(irdrop.WireModelWarning, match=r"delta = \d\.\d\d on blocks of up to 512x512"):
        TileArray.from_weights(weights, pcm.with_values({"tile.wire_resistance_ohm": 1.0}), seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", irdrop.WireModelWarning)
        TileArray.from_weights(weights, pcm.with_values({"tile.wire_resistance_ohm": 1.0, "tile.rows": 128, "tile.cols": 128}), seed=0)
