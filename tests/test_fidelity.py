"""Bound management, unscaled mapping, per-epoch read noise and the aihwkit preset."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from xbarsim.config import ChipConfig
from xbarsim.presets import PRESET_SOURCES
from xbarsim.crossbar.truth import reference
from xbarsim.crossbar.tile import TileArray
from xbarsim.models.hwa import hwa_matmul

IDEAL = ChipConfig.preset("ideal")


def _clean_bm(rows=512, cols=512, adc_bound=1.5, **extra):
    """Ideal devices, an unquantized DAC with bound 1 and an unquantized ADC: counts by hand."""
    return IDEAL.with_values({
        "tile.rows": rows, "tile.cols": cols, "tile.dac": {"range": "fixed", "bound": 1.0},
        "tile.adc": {"range": "fixed", "bound": adc_bound}, "tile.bound_management": "iterative", **extra})  # fmt: skip


# ------------------------------------------------------------------ bound management
def test_saturated_vectors_are_read_again_at_half_scale_and_counted():
    tiles = TileArray.from_weights(np.ones((1, 4), np.float32), _clean_bm(), seed=0)
    x = np.array([[1, 1, 1, 1], [0.25] * 4, [0.5] * 4], np.float32)
    # sums 4, 1, 2 against the ADC bound 1.5: vector 0 reads at 1, 1/2 (2 > 1.5), 1/4 (1): 2 re-reads;
    # vector 1 is inside (no re-read); vector 2 reads at 1, 1/2 (1): 1 re-read
    y = tiles.mvm(x)
    np.testing.assert_array_equal(y[:, 0], [4.0, 1.0, 2.0])
    assert tiles.bm_rereads == 3
    assert np.array_equal(y, reference.mvm(tiles, x, first_vector=0)) and reference.mvm.rereads == 3
    without = TileArray.from_weights(np.ones((1, 4), np.float32), _clean_bm(**{"tile.bound_management": "none"}), 0)
    np.testing.assert_array_equal(without.mvm(x)[:, 0], [1.5, 1.0, 1.5])  # clipped
    assert without.bm_rereads == 0


def test_bound_management_stops_at_aihwkit_limits():
    x = np.ones((1, 4), np.float32)
    w = np.ones((1, 4), np.float32)
    # max_bm_factor 1.5: the read at 1/2 (reduction 2 > 1.5) is the last; its 2 is clipped to 1.5, times 2
    tiles = TileArray.from_weights(w, _clean_bm(**{"tile.bm_max_factor": 1.5}), 0)
    assert tiles.mvm(x)[0, 0] == 3.0 and tiles.bm_rereads == 1
    # max_bm_res with a 3-bit DAC (3 levels): reduction may grow while <= 0.7 * 3 = 2.1, so reads at 1, 1/2, 1/4
    cfg = _clean_bm(adc_bound=0.1, **{"tile.dac": {"bits": 3, "range": "fixed", "bound": 1.0}, "tile.bm_max_res": 0.7})
    tiles = TileArray.from_weights(w, cfg, 0)
    y = tiles.mvm(x)
    assert tiles.bm_rereads == 2
    # at 1/4 the inputs quantize to rint(0.25 * 3) / 3 = 1/3: sum 4/3, clipped to 0.1, times 4
    np.testing.assert_allclose(y[0, 0], 0.4, rtol=1e-6)


def test_only_the_saturated_tiles_are_read_again():
    w = np.ones((2, 8), np.float32)
    w[1] = 0.1
    cfg = _clean_bm(rows=4, cols=1, **{"mapping.weight_scale": "none"})  # 2 row blocks x 2 column tiles, weight units
    tiles = TileArray.from_weights(w, cfg, 0)
    x = np.ones((1, 8), np.float32)
    y = tiles.mvm(x)
    # output 0: each of its 2 tiles sums 4 -> 2 re-reads each; output 1's tiles sum 0.4: none
    assert tiles.bm_rereads == 4
    np.testing.assert_allclose(y[0], [8.0, 0.8], rtol=1e-6)


def test_saturating_layer_comes_back_unclipped_within_quantization():
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((64, 512)) * 0.1).astype(np.float32)
    x = rng.standard_normal((40, 512)).astype(np.float32)
    base = ChipConfig.preset("aihwkit").with_values({"device.write_noise": {"kind": "none"}, "device.read_noise": {"kind": "none"},
                                                     "device.drift": {"kind": "none"}, "tile.out_noise": 0.0,
                                                     "tile.adc.bound": 1.0, "drift_compensation": "none"})  # fmt: skip
    exact = x.astype(np.float64) @ w.T.astype(np.float64)
    assert np.abs(exact / np.abs(x).max(axis=1, keepdims=True)).max() > 2  # the first read saturates
    managed = TileArray.from_weights(w, base, 0)
    clipped = TileArray.from_weights(w, base.with_values({"tile.bound_management": "none"}), 0)
    err = np.abs(managed.mvm(x) - exact)
    # DAC step 1/63 and ADC step 2/255 of the reduced range, reduction <= 16 (0.25 * 63 = 15.75)
    scale = np.abs(x).max(axis=1, keepdims=True) * 16
    bound = scale * (0.5 / 255 + 0.5 / 63 * np.abs(w).sum(axis=1)[None])
    assert np.all(err <= bound) and managed.bm_rereads > 0
    assert np.abs(clipped.mvm(x) - exact).max() > 5 * err.max()


# ------------------------------------------------------------------ weight_scale none
def test_unscaled_mapping_puts_the_converters_in_weight_units():
    w = np.array([[2.0, -1.0], [0.5, 0.25]], np.float32)
    x = np.array([[0.3, 0.2]], np.float32)
    adc = {"bits": 3, "range": "fixed", "bound": 1.0}  # 3 levels a side: steps of 1/3
    unscaled = TileArray.from_weights(w, IDEAL.with_values({"mapping.weight_scale": "none", "tile.adc": adc}), 0)
    per_tile = TileArray.from_weights(w, IDEAL.with_values({"mapping.weight_scale": "tile", "tile.adc": adc}), 0)
    # devices: the tile's abs-max 2 maps onto g_max in both (w = 2 -> 25 uS, -1 -> 12.5 uS on G-)
    assert np.array_equal(unscaled.g_target, per_tile.g_target)
    assert unscaled.g_target[0, 0, 0] == 25.0 and unscaled.g_target[1, 1, 0] == 12.5
    # none: the ADC sees 0.4 and 0.2 (weight units): rint(1.2) / 3 and rint(0.6) / 3
    np.testing.assert_allclose(unscaled.mvm(x)[0], [1 / 3, 1 / 3], rtol=1e-6)
    # tile: it sees 0.4 / 2 and 0.2 / 2: rint(0.6) / 3 * 2 and rint(0.3) / 3 * 2
    np.testing.assert_allclose(per_tile.mvm(x)[0], [2 / 3, 0.0], rtol=1e-6, atol=1e-7)


def test_unscaled_output_noise_is_in_weight_units():
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((20, 60)) * 0.3).astype(np.float32)
    x = np.repeat(rng.standard_normal((1, 60)).astype(np.float32), 5000, axis=0)
    for mode, expected_std in (("none", 0.05), ("layer", 0.05 * np.abs(w).max())):
        tiles = TileArray.from_weights(w, IDEAL.with_values({"mapping.weight_scale": mode, "tile.out_noise": 0.05}), 0)
        std = tiles.mvm(x).astype(np.float64).std(axis=0)
        assert np.all(np.abs(std / expected_std - 1) < 5 * np.sqrt(1 / 10000))


# ------------------------------------------------------------------ per-epoch read noise
def _epoch_cfg(**extra):
    return IDEAL.with_values({"device.read_noise": {"kind": "pcm", "time": "per_epoch"}, **extra})


def test_per_epoch_noise_is_frozen_within_an_epoch_and_new_in_the_next():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((30, 50)).astype(np.float32)
    x = np.repeat(rng.standard_normal((1, 50)).astype(np.float32), 4, axis=0)
    tiles = TileArray.from_weights(w, _epoch_cfg(), 5)
    first = tiles.mvm(x)
    assert np.all(first == first[0]) and np.array_equal(tiles.mvm(x), first)  # frozen across reads
    assert not np.allclose(first[0], x[0] @ w.T, rtol=1e-4)  # but noisy
    tiles.new_read_epoch()
    second = tiles.mvm(x)
    assert tiles.epoch == 1 and np.all(second == second[0]) and not np.array_equal(second, first)
    tiles.drift(100.0)
    assert tiles.epoch == 2 and not np.array_equal(tiles.mvm(x), second)
    tiles.program(5)  # epoch 0 again: the same deviations
    assert tiles.epoch == 0 and np.array_equal(tiles.mvm(x), first)


@pytest.mark.parametrize("t_s, drift", [(0.0, "none"), (86400.0, "none"), (3.15e7, "none"), (3.15e7, "pcm")])
def test_per_epoch_noise_has_the_pcm_variance_at_time_t(t_s, drift):
    rng = np.random.default_rng(4)
    magnitude = rng.uniform(0.3, 1.0, (12, 40))  # |w| / max|w| >= 0.3: the clamp at 0 never acts
    w = (magnitude * rng.choice([-1.0, 1.0], magnitude.shape)).astype(np.float32)
    w[:, 0] = 1.0
    x = rng.standard_normal((1, 40)).astype(np.float32)
    tiles = TileArray.from_weights(w, _epoch_cfg(**{"device.drift": {"kind": drift}, "mapping.weight_scale": "layer"}), 7)
    epochs = 1500
    outputs = np.empty((epochs, 12))
    for _ in range(epochs):
        tiles.drift(t_s)  # every drift starts a new epoch
        outputs[tiles.epoch - 1] = tiles.mvm(x)[0]
    # std per device: |G(t)| Q(G_prog) sqrt(ln((t + t0 + t_read) / (2 t_read))), Q of the programmed state
    g_t, g_prog = tiles.g_now.astype(np.float64), tiles.g_prog.astype(np.float64)
    q = np.minimum(0.0088 / np.maximum((g_prog / 25.0) ** 0.65, 1e-3), 0.2)
    std = g_t * q * np.sqrt(np.log((t_s + 20.0 + 250e-9) / (2 * 250e-9)))
    var_w = (std[0] ** 2 + std[1] ** 2) / 25.0**2 * tiles.scales[0].astype(np.float64) ** 2  # (in, out), weight units
    expected = (x[0].astype(np.float64) ** 2) @ var_w
    ratio = outputs.var(axis=0) / expected
    assert abs(ratio.mean() - 1) < 4 * np.sqrt(2 / epochs / 12)
    assert np.all(np.abs(ratio - 1) < 5 * np.sqrt(2 / epochs))


def test_combined_read_noise_adds_a_per_read_part_to_the_per_epoch_part():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((10, 30)).astype(np.float32)
    x = np.repeat(rng.standard_normal((1, 30)).astype(np.float32), 3000, axis=0)
    combined = {"kind": "combined", "parts": [{"kind": "pcm", "time": "per_epoch"}, {"kind": "additive", "sigma": 0.4}]}
    both = TileArray.from_weights(w, IDEAL.with_values({"device.read_noise": combined}), 1).mvm(x).astype(np.float64)
    epoch_only = TileArray.from_weights(w, _epoch_cfg(), 1).mvm(x[:1]).astype(np.float64)
    white = TileArray.from_weights(w, IDEAL.with_values({"device.read_noise": {"kind": "additive", "sigma": 0.4}}), 1)
    np.testing.assert_allclose(both.mean(axis=0), epoch_only[0], atol=5 * np.sqrt(both.var(axis=0).max() / 3000))
    white_var = white.mvm(x).astype(np.float64).var(axis=0)
    assert np.all(np.abs(both.var(axis=0) / white_var - 1) < 5 * np.sqrt(4 / 3000))


# ------------------------------------------------------------------ kernels against the reference
NEW_PATHS = {
    "aihwkit": ChipConfig.preset("aihwkit").with_values({"tile.rows": 128, "tile.cols": 100, "tile.adc.bound": 0.5}),
    "aihwkit per-device": ChipConfig.preset("aihwkit").with_values({
        "tile.rows": 128, "tile.cols": 100, "tile.adc.bound": 0.5, "tile.read_noise_path": "per_device",
        "device.read_noise": {"kind": "combined", "parts": [{"kind": "pcm", "time": "per_epoch"}, {"kind": "pcm", "time": "per_read"}]}}),
    "bm additive unscaled": ChipConfig.preset("gaussian").with_values({
        "tile.rows": 128, "tile.cols": 100, "tile.dac": {"bits": 6, "range": "fixed", "bound": 2.0},
        "tile.adc": {"bits": 6, "range": "fixed", "bound": 0.3}, "tile.bound_management": "iterative",
        "tile.out_noise": 0.02, "mapping.weight_scale": "none"}),
    "bm no DAC": ChipConfig.preset("gaussian").with_values({
        "tile.rows": 128, "tile.cols": 100, "tile.adc": {"range": "fixed", "bound": 1.0},
        "tile.bound_management": "iterative"}),
    "bm calibrated": ChipConfig.preset("rram").with_values({
        "tile.dac": {"bits": 5, "range": "calibrated", "bound": 1.0}, "tile.adc": {"bits": 6, "range": "calibrated", "bound": 1.0},
        "tile.bound_management": "iterative"}),
    "pcm per-epoch additive per-read": ChipConfig.preset("pcm").with_values({
        "tile.rows": 128, "device.read_noise": {"kind": "combined", "parts": [
            {"kind": "pcm", "time": "per_epoch"}, {"kind": "additive", "sigma": 0.3}]}}),
}  # fmt: skip


@pytest.mark.parametrize("name", NEW_PATHS)
@pytest.mark.parametrize("n_batch", [3, 70])
def test_new_paths_equal_the_numpy_reference_bit_for_bit(name, n_batch):
    rng = np.random.default_rng(n_batch)
    w = (rng.standard_normal((230, 300)) / np.sqrt(300)).astype(np.float32)
    x = (rng.standard_normal((n_batch, 300)) * 2).astype(np.float32)
    tiles = TileArray.from_weights(w, NEW_PATHS[name], seed=11)
    if tiles.cfg.tile.adc.range == "calibrated":
        n_p, n_q = tiles.grid.shape
        tiles.set_ranges(dac=np.linspace(0.8, 2.5, n_p), adc=np.linspace(0.2, 0.6, n_p * n_q).reshape(n_p, n_q))
    tiles.drift(3600.0)
    tiles.new_read_epoch()
    tiles.mvm(np.ones((5, 300), np.float32))
    before = tiles.bm_rereads
    expected = reference.mvm(tiles, x, first_vector=5)
    assert np.array_equal(tiles.mvm(x), expected)
    assert tiles.bm_rereads - before == reference.mvm.rereads
    if tiles.cfg.tile.bound_management == "iterative":
        assert reference.mvm.rereads > 0


def test_new_paths_give_the_same_bits_whatever_the_thread_count():
    script = textwrap.dedent("""
        import hashlib, numpy as np
        from xbarsim import ChipConfig, TileArray
        rng = np.random.default_rng(0)
        w = (rng.standard_normal((90, 600)) / 20).astype(np.float32)
        x = (rng.standard_normal((200, 600)) * 2).astype(np.float32)
        for path in ("output_referred", "per_device"):
            cfg = ChipConfig.preset("aihwkit").with_values({"tile.rows": 256, "tile.adc.bound": 0.5, "tile.read_noise_path": path})
            tiles = TileArray.from_weights(w, cfg, seed=3)
            tiles.drift(86400.0)
            small = tiles.mvm(x[:3])
            print(hashlib.sha256(small.tobytes() + tiles.mvm(x).tobytes()).hexdigest(), tiles.bm_rereads)
    """)
    digests = []
    for threads in ("1", "2"):
        env = {**os.environ, "NUMBA_NUM_THREADS": threads}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        digests.append(out.stdout.split())
    assert digests[0] == digests[1] and len(digests[0]) == 4 and int(digests[0][1]) > 0


# ------------------------------------------------------------------ the aihwkit preset
def test_aihwkit_preset_equals_aihwkit_defaults():
    cfg = ChipConfig.preset("aihwkit")
    # aihwkit 1.1, src/aihwkit/simulator/parameters/io.py IOParameters defaults (InferenceRPUConfig.forward):
    inp_res, out_res = 1 / (2**7 - 2), 1 / (2**9 - 2)  # inp_res, out_res
    assert cfg.tile.dac.range == "dynamic"  # noise_management = NoiseManagementType.ABS_MAX, inp_bound = 1
    assert 2 / (2 * cfg.tile.dac.levels) == pytest.approx(inp_res * 2)  # 63 steps a side of [-1, 1]
    assert cfg.tile.adc.range == "fixed" and cfg.tile.adc.bound == 12.0  # out_bound = 12.0
    assert 1 / (2 * cfg.tile.adc.levels) == pytest.approx(out_res)  # 255 steps a side
    assert cfg.tile.out_noise == 0.06  # out_noise = 0.06
    assert cfg.tile.bound_management == "iterative"  # bound_management = BoundManagementType.ITERATIVE
    assert (cfg.tile.bm_max_factor, cfg.tile.bm_max_res) == (1000.0, 0.25)  # max_bm_factor, max_bm_res
    # src/aihwkit/simulator/parameters/mapping.py MappingParameter (InferenceRPUConfig.mapping):
    assert cfg.mapping.weight_scale == "none"  # weight_scaling_omega = 0.0
    assert cfg.mapping.bias == "digital"  # digital_bias = True
    assert (cfg.tile.rows, cfg.tile.cols) == (512, 512)  # max_input_size = max_output_size = 512
    # src/aihwkit/inference/noise/pcm.py PCMLikeNoiseModel(g_max=25) defaults:
    dev = cfg.device
    assert (dev.g_min_us, dev.g_max_us, dev.t0_s) == (0.0, 25.0, 20.0)  # SinglePairConductanceConverter, t_0
    assert (dev.write_noise.c0, dev.write_noise.c1, dev.write_noise.c2) == (0.26348, 1.9650, -1.1731)  # prog_coeff
    assert dev.write_noise.scale == dev.read_noise.scale == dev.drift.scale == 1.0  # *_noise_scale, drift_scale
    assert dev.read_noise.t_read_s == 250e-9 and dev.read_noise.q_coeff == 0.0088  # t_read; Q = 0.0088 / g^0.65
    assert (dev.read_noise.q_exponent, dev.read_noise.q_max) == (0.65, 0.2)
    assert dev.read_noise.time == "per_epoch"  # applied once in apply_drift_noise_to_conductance(t_inference)
    assert dev.drift.kind == "pcm" and dev.faults.p_on == dev.faults.p_off == 0.0
    assert cfg.drift_compensation == "global"  # InferenceRPUConfig.drift_compensation = GlobalDriftCompensation()
    assert set(PRESET_SOURCES["aihwkit"]) and ChipConfig.preset("pcm").device.read_noise.time == "per_epoch"


def test_aihwkit_names_for_input_scaling_are_accepted():
    tile = IDEAL.with_values({"tile.dac": {"bits": 7, "range": "abs_max"}}).tile
    assert tile.dac.range == "dynamic"
    assert IDEAL.with_values({"tile.dac": {"bits": 7, "range": "constant", "bound": 2.0}}).tile.dac.range == "fixed"
    with pytest.raises(ValueError, match="needs an ADC bound"):
        IDEAL.with_values({"tile.bound_management": "iterative"})


# ------------------------------------------------------------------ hardware-aware training
def test_hwa_follows_bound_management_and_unscaled_mapping():
    rng = np.random.default_rng(6)
    w = (rng.standard_normal((12, 150)) * 0.1).astype(np.float32)
    x = (rng.standard_normal((1, 150)) * 3).astype(np.float32)
    cfg = ChipConfig.preset("aihwkit").with_values({"device.write_noise": {"kind": "none"}, "device.drift": {"kind": "none"},
                                                    "device.read_noise": {"kind": "pcm", "time": "per_read"}, "tile.rows": 64, "tile.adc.bound": 0.6,
                                                    "drift_compensation": "none"})  # fmt: skip
    repeats = 3000
    xs = np.repeat(x, repeats, axis=0)
    kernel = TileArray.from_weights(w, cfg, 0).mvm(xs).astype(np.float64)
    torch.manual_seed(0)
    with torch.no_grad():
        torch_out = hwa_matmul(torch.from_numpy(xs), torch.from_numpy(w), cfg).numpy().astype(np.float64)
    exact = x[0] @ w.T
    assert np.abs(kernel.mean(0) - exact).max() < 0.05 * np.abs(exact).max()  # bound management: not clipped at 0.6
    np.testing.assert_allclose(torch_out.mean(0), kernel.mean(0), atol=5 * np.sqrt(kernel.var(0).max() / repeats) + 0.01)
    assert abs(torch_out.var(0).sum() / kernel.var(0).sum() - 1) < 0.1


# ------------------------------------------------------------------ a whole chip
def test_chip_read_epochs_survive_a_chip_file_and_rereads_add_up_per_layer(tmp_path):
    from xbarsim import load_chip, map_model

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.ReLU(), torch.nn.Linear(30, 10))
    cfg = ChipConfig.preset("aihwkit").with_values({"tile.adc.bound": 0.5})
    chip = map_model(net, cfg, seed=3)
    x = torch.randn(16, 40) * 3
    with torch.no_grad():
        first = chip(x)
        chip.new_read_epoch()
        assert not torch.equal(chip(x), first)  # new per-epoch deviations
        chip.save(tmp_path / "chip.h5")
        loaded = load_chip(tmp_path / "chip.h5", net)
        assert torch.equal(loaded(x), chip(x))  # the same epoch, the same read counter
    per_layer = chip.chip.bm_rereads()
    assert set(per_layer) == {"0", "2"} and per_layer["0"] > 0
    assert per_layer["0"] == sum(m.tiles.bm_rereads for m in chip.chip.layers["0"].matrices())
    assert all(m.tiles.epoch == 1 for m in loaded.chip.matrices())
