import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from xbarsim.config import ChipConfig
from xbarsim.crossbar.laws import compensation
from xbarsim.crossbar.truth import reference
from xbarsim.crossbar.grid import balanced_edges
from xbarsim.crossbar.tile import TileArray


def _data(n_out, n_in, n_batch, seed=0):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)
    x = rng.standard_normal((n_batch, n_in)).astype(np.float32)
    return w, x


@given(
    n_in=st.integers(1, 300), n_out=st.integers(1, 300), n_batch=st.integers(1, 70),
    rows=st.sampled_from([1, 7, 32, 64, 100, 512]), cols=st.sampled_from([1, 16, 50, 128, 512]),
    scale=st.sampled_from(["column", "tile", "layer"]), seed=st.integers(0, 2**31),
)  # fmt: skip
def test_ideal_chip_reproduces_the_matrix_product(n_in, n_out, n_batch, rows, cols, scale, seed):
    cfg = ChipConfig.preset("ideal").with_values({"tile.rows": rows, "tile.cols": cols, "mapping.weight_scale": scale})
    w, x = _data(n_out, n_in, n_batch, seed)
    y = TileArray.from_weights(w, cfg, seed=seed).mvm(x)
    exact = x.astype(np.float64) @ w.T.astype(np.float64)
    assert y.dtype == np.float32 and y.shape == (n_batch, n_out)
    assert np.abs(y - exact).max() <= 1e-5 * max(np.abs(exact).max(), 1e-30)


def test_balanced_tiling():
    assert list(balanced_edges(1000, 512)) == [0, 500, 1000]
    assert list(balanced_edges(1025, 512)) == [0, 342, 684, 1025]
    assert list(balanced_edges(512, 512)) == [0, 512]


def test_results_do_not_depend_on_tile_size_without_noise():
    w, x = _data(200, 300, 20)
    outs = [TileArray.from_weights(w, ChipConfig.preset("ideal").with_values({"tile.rows": r, "tile.cols": c}), 0).mvm(x)
            for r, c in [(512, 512), (64, 64), (100, 33)]]  # fmt: skip
    for out in outs[1:]:
        np.testing.assert_allclose(out, outs[0], rtol=0, atol=1e-5 * np.abs(outs[0]).max())


CONFIGS = {
    "ideal": ChipConfig.preset("ideal"),
    "pcm": ChipConfig.preset("pcm").with_values({"tile.rows": 128, "tile.cols": 100}),
    "pcm per-device": ChipConfig.preset("pcm").with_values({"tile.rows": 128, "tile.cols": 100, "tile.read_noise_path": "per_device"}),
    "rram": ChipConfig.preset("rram"),
    "gaussian": ChipConfig.preset("gaussian").with_values({"tile.rows": 200, "tile.out_noise": 0.1}),
    "gaussian per-device": ChipConfig.preset("gaussian").with_values({"tile.read_noise_path": "per_device", "tile.out_noise": 0.1}),
    "calibrated 6-bit": ChipConfig.preset("rram").with_values({
        "tile.dac": {"bits": 6, "range": "calibrated", "bound": 1.0},
        "tile.adc": {"bits": 6, "range": "calibrated", "bound": 4.0},
        "mapping.weight_scale": "tile"}),
    "clip only": ChipConfig.preset("gaussian").with_values({
        "tile.dac": {"range": "fixed", "bound": 1.5}, "tile.adc": {"range": "fixed", "bound": 2.0}}),
    # one row block
    "one tile, additive": ChipConfig.preset("gaussian").with_values({"tile.out_noise": 0.05}),
    "one tile, pcm": ChipConfig.preset("pcm").with_values({"device.read_noise": {"kind": "pcm", "time": "per_read"}}),
    "one tile, per-device": ChipConfig.preset("pcm").with_values({"tile.read_noise_path": "per_device"}),
    "bound management": ChipConfig.preset("aihwkit").with_values({"tile.rows": 128, "tile.cols": 100, "tile.adc.bound": 0.3}),
    "bound management, one tile": ChipConfig.preset("aihwkit").with_values({"tile.adc.bound": 0.5}),
    "bound management, per-device": ChipConfig.preset("aihwkit").with_values({
        "tile.rows": 128, "tile.adc.bound": 0.3, "tile.read_noise_path": "per_device"}),
    "unscaled weights": ChipConfig.preset("pcm").with_values({"tile.rows": 128, "mapping.weight_scale": "none"}),
    "ideal tiles": ChipConfig.preset("ideal").with_values({"tile.rows": 128, "tile.cols": 100}),  # products only
    "ideal, dynamic DAC": ChipConfig.preset("ideal").with_values({"tile.rows": 128, "tile.dac": {"bits": 6, "range": "dynamic"}}),
}  # fmt: skip


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("n_batch", [1, 3, 70])
def test_kernels_equal_the_numpy_reference_bit_for_bit(name, n_batch):
    w, x = _data(230, 300, n_batch, seed=n_batch)
    tiles = TileArray.from_weights(w, CONFIGS[name], seed=11)
    if tiles.cfg.tile.dac.range == "calibrated":
        n_p, n_q = tiles.grid.shape
        tiles.set_ranges(dac=np.linspace(0.8, 2.5, n_p), adc=np.linspace(1.0, 6.0, n_p * n_q).reshape(n_p, n_q))
    tiles.drift(3600.0)
    tiles.mvm(np.ones((5, 300), np.float32))  # the reference must follow the read counter
    rereads = tiles.bm_rereads
    expected = reference.mvm(tiles, x, first_vector=5)
    assert np.array_equal(tiles.mvm(x), expected)
    assert tiles.bm_rereads - rereads == reference.mvm.rereads
    if name.startswith("bound management") and n_batch == 70:
        assert reference.mvm.rereads > 0  # the re-reads were exercised


@pytest.mark.parametrize("preset", ["pcm", "aihwkit", "ideal"])
def test_a_grid_of_many_tiles_equals_the_reference(preset):
    w, x = _data(300, 700, 40, seed=3)
    tiles = TileArray.from_weights(w, ChipConfig.preset(preset).with_values({"tile.rows": 128, "tile.cols": 128}), seed=2)
    assert tiles.grid.shape == (6, 3)
    tiles.drift(86400.0)
    assert np.array_equal(tiles.mvm(x[:1]), reference.mvm(tiles, x[:1], first_vector=0))
    assert np.array_equal(tiles.mvm(x), reference.mvm(tiles, x, first_vector=1))


def test_the_drift_compensation_probe_read_equals_the_reference():
    w, _ = _data(90, 200, 1)
    for mode in ("global", "column"):
        cfg = ChipConfig.preset("pcm").with_values({"tile.rows": 128, "drift_compensation": mode})
        tiles = TileArray.from_weights(w, cfg, seed=7)
        tiles.drift(3e5)
        probe = compensation.probe_inputs(tiles.seed, 200)
        outputs = reference.mvm(tiles, probe, 0, noise_seed=compensation.probe_seed(tiles.seed, tiles.t_s))
        level = compensation.response_level(outputs, mode)
        assert np.array_equal(tiles.gain, compensation.gain(tiles.reference, level))
        assert tiles.reads == 0 and tiles.gain.size == (90 if mode == "column" else 1)


def test_a_vectors_noise_draws_do_not_depend_on_the_batch_split():
    # weights k/2 with |w| <= 1 and integer inputs: every product is exact in float32, so any two
    # splits of a batch must give the same bits, and the noise draws are all that could differ
    rng = np.random.default_rng(0)
    w = rng.integers(-2, 3, (130, 700)).astype(np.float32) / 2
    w[0, 0] = 1.0
    x = rng.integers(-3, 4, (150, 700)).astype(np.float32)
    cfg = ChipConfig.preset("ideal").with_values({
        "tile.rows": 256, "tile.cols": 64, "mapping.weight_scale": "layer", "device.read_noise": {"kind": "additive", "sigma": 0.3},
        "tile.out_noise": 0.05, "tile.adc": {"bits": 8, "range": "fixed", "bound": 40.0}})  # fmt: skip
    whole, pieces = TileArray.from_weights(w, cfg, seed=5), TileArray.from_weights(w, cfg, seed=5)
    assert np.array_equal(whole.weights(), w)
    expected = whole.mvm(x)
    got = np.concatenate([pieces.mvm(x[:1]), pieces.mvm(x[1:7]), pieces.mvm(x[7:100]), pieces.mvm(x[100:])])
    assert np.array_equal(got, expected)
    assert whole.reads == pieces.reads == 150
    assert np.array_equal(whole.mvm(x[:20]), reference.mvm(whole, x[:20], first_vector=150))


def test_any_batch_split_gives_the_same_outputs_up_to_float32_rounding():
    w, x = _data(130, 700, 150)
    cfg = ChipConfig.preset("pcm").with_values({"tile.rows": 256, "tile.cols": 64})
    unquantized = cfg.with_values({"tile.adc": {"range": "none"}})  # an ADC step would magnify a rounding difference
    whole, pieces = TileArray.from_weights(w, unquantized, seed=5), TileArray.from_weights(w, unquantized, seed=5)
    whole.drift(1e5)
    pieces.drift(1e5)
    expected = whole.mvm(x)
    got = np.concatenate([pieces.mvm(x[:1]), pieces.mvm(x[1:7]), pieces.mvm(x[7:100]), pieces.mvm(x[100:])])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    # with the ADC, every piece is what the reference gives for those vectors
    whole = TileArray.from_weights(w, cfg, seed=5)
    whole.drift(1e5)
    expected = whole.mvm(x)
    pieces = TileArray.from_weights(w, cfg, seed=5)
    pieces.drift(1e5)
    for start, stop in ((0, 1), (1, 7), (7, 100), (100, 150)):
        assert np.array_equal(pieces.mvm(x[start:stop]), reference.mvm(pieces, x[start:stop], first_vector=start))
    assert whole.reads == pieces.reads == 150
    # the next call gets fresh noise, and another seed other noise
    assert not np.array_equal(whole.mvm(x), expected)
    other = TileArray.from_weights(w, cfg, seed=6)
    other.drift(1e5)
    assert not np.array_equal(other.mvm(x), expected)


def test_same_seed_same_bits_whatever_the_thread_count():
    script = textwrap.dedent("""
        import hashlib, numpy as np
        from xbarsim import ChipConfig, TileArray
        rng = np.random.default_rng(0)
        w = rng.standard_normal((90, 600)).astype(np.float32)
        x = rng.standard_normal((200, 600)).astype(np.float32)
        for preset, path in (("pcm", "output_referred"), ("pcm", "per_device"), ("ideal", "output_referred")):
            cfg = ChipConfig.preset(preset).with_values({"tile.rows": 256, "tile.read_noise_path": path})
            tiles = TileArray.from_weights(w, cfg, seed=3)
            tiles.drift(86400.0)
            small = tiles.mvm(x[:3])  # a serial kernel first, before any thread pool exists
            print(hashlib.sha256(tiles.mvm(x[3]).tobytes() + small.tobytes() + tiles.mvm(x).tobytes()).hexdigest())
    """)
    digests = []
    for threads in ("1", "2"):  # Numba's and BLAS's threads
        env = {**os.environ, "NUMBA_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        digests.append(out.stdout.split())
    assert digests[0] == digests[1] and len(digests[0]) == 3


def _repeated_outputs(cfg, w, x_row, repeats, seed=2):
    tiles = TileArray.from_weights(w, cfg, seed=seed)
    return tiles, tiles.mvm(np.repeat(x_row[None], repeats, axis=0)).astype(np.float64)


def test_read_noise_variance_per_output_matches_the_formula():
    sigma_us, out_noise = 0.4, 0.05
    cfg = ChipConfig.preset("ideal").with_values({
        "device.read_noise": {"kind": "additive", "sigma": sigma_us}, "tile.out_noise": out_noise, "tile.rows": 64})  # fmt: skip
    w, x = _data(40, 150, 1)
    tiles, y = _repeated_outputs(cfg, w, x[0], 6000)
    # per row block p: var = (sum_i x_i^2 * 2 sigma^2 / span^2 + out_noise^2) * scale_pj^2
    span = 25.0
    expected = np.zeros(40)
    for p, (a, b) in enumerate(zip(tiles.grid.row_edges[:-1], tiles.grid.row_edges[1:])):
        expected += (np.sum(x[0, a:b].astype(np.float64) ** 2) * 2 * sigma_us**2 / span**2 + out_noise**2) * tiles.scales[p] ** 2
    ratio = y.var(axis=0) / expected
    assert abs(ratio.mean() - 1) < 0.02
    assert np.all(np.abs(ratio - 1) < 5 * np.sqrt(2 / 6000))
    np.testing.assert_allclose(y.mean(axis=0), x[0] @ w.T, atol=5 * np.sqrt(expected.max() / 6000))


def test_pcm_read_noise_variance_matches_the_formula():
    cfg = ChipConfig.preset("ideal").with_values({"device.read_noise": {"kind": "pcm", "time": "per_read"}})
    w, x = _data(30, 200, 1, seed=4)
    tiles, y = _repeated_outputs(cfg, w, x[0], 6000)
    g = tiles.g_now.astype(np.float64)
    gh = g / 25.0
    q = np.minimum(0.0088 / np.maximum(gh**0.65, 1e-3), 0.2)
    std = g * q * np.sqrt(np.log((20 + 250e-9) / (2 * 250e-9)))  # t = 0: right after programming
    var_w = (std[0] ** 2 + std[1] ** 2) / 25.0**2 * tiles.scales[0] ** 2  # (n_in, n_out), weight units
    expected = (x[0].astype(np.float64) ** 2) @ var_w
    ratio = y.var(axis=0) / expected
    assert abs(ratio.mean() - 1) < 0.02
    assert np.all(np.abs(ratio - 1) < 5 * np.sqrt(2 / 6000))


def test_per_device_and_output_referred_read_noise_agree_in_distribution():
    base = ChipConfig.preset("ideal").with_values({"device.read_noise": {"kind": "pcm", "scale": 3.0, "time": "per_read"}, "tile.rows": 100})
    w, x = _data(20, 250, 1, seed=8)
    _, fast = _repeated_outputs(base, w, x[0], 4000)
    _, honest = _repeated_outputs(base.with_values({"tile.read_noise_path": "per_device"}), w, x[0], 4000)
    for j in range(0, 20, 4):
        assert stats.ks_2samp(fast[:, j], honest[:, j]).pvalue > 1e-3
    assert abs(fast.var(axis=0).sum() / honest.var(axis=0).sum() - 1) < 0.05
    np.testing.assert_allclose(fast.mean(axis=0), honest.mean(axis=0), atol=0.05 * np.sqrt(fast.var(axis=0).max()))


def test_drift_scales_the_weights_by_the_power_law():
    cfg = ChipConfig.preset("ideal").with_values({"device.drift": {"kind": "power_law", "nu_mean": 0.06}})
    w, _ = _data(50, 60, 1)
    tiles = TileArray.from_weights(w, cfg, seed=0)
    tiles.drift(86400.0)
    np.testing.assert_allclose(tiles.weights(), w * ((86400 + 20) / 20) ** -0.06, rtol=2e-6, atol=1e-7)
    tiles.drift(0.0)
    np.testing.assert_allclose(tiles.weights(), w, rtol=2e-6, atol=1e-7)


def test_programming_changes_the_weights_and_reprogramming_is_reproducible():
    w, _ = _data(64, 64, 1)
    tiles = TileArray.from_weights(w, ChipConfig.preset("pcm"), seed=1)
    first = tiles.weights()
    assert 0.01 < np.abs(first - w).mean() / np.abs(w).mean() < 0.3
    tiles.program(2)
    assert not np.array_equal(tiles.weights(), first)
    tiles.program(1)
    assert np.array_equal(tiles.weights(), first)


def test_conductances_cover_the_matrix_tile_by_tile():
    w, _ = _data(130, 300, 1)
    tiles = TileArray.from_weights(w, ChipConfig.preset("ideal").with_values({"tile.rows": 128, "tile.cols": 64}), 0)
    parts = tiles.conductances()
    assert len(parts) == 3 * 3 and {(t.p, t.q) for t in parts} == {(p, q) for p in range(3) for q in range(3)}
    assert sum(t.g_pos.size for t in parts) == 300 * 130
    for t in parts:
        assert t.g_pos.shape == (t.inputs.stop - t.inputs.start, t.outputs.stop - t.outputs.start)
        assert t.g_pos.min() >= 0 and t.g_pos.max() <= 25 and np.all((t.g_pos == 0) | (t.g_neg == 0))


def test_bad_inputs_get_clear_errors():
    w, x = _data(10, 20, 4)
    tiles = TileArray.from_weights(w, ChipConfig.preset("pcm"), 0)
    x[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        tiles.mvm(x)
    with pytest.raises(ValueError, match=r"shape \(batch, 20\)"):
        tiles.mvm(np.zeros((4, 21), np.float32))
    bad_w = w.copy()
    bad_w[0, 0] = np.inf
    with pytest.raises(ValueError, match="weights contain NaN or Inf"):
        TileArray.from_weights(bad_w, ChipConfig.preset("pcm"))
    with pytest.raises(ValueError, match="2-D"):
        TileArray.from_weights(np.zeros(5), ChipConfig.preset("pcm"))
    with pytest.raises(ValueError, match="only 'calibrated' ranges"):
        tiles.set_ranges(adc=np.ones((1, 1)))
    with pytest.raises(ValueError, match="drift time"):
        tiles.drift(float("nan"))


def test_an_array_given_a_noisy_config_reads_with_its_noise():
    w, x = _data(40, 70, 6)
    tiles = TileArray.from_weights(w, ChipConfig.preset("ideal"), 0)
    clean = tiles.mvm(x)
    tiles.cfg = tiles.cfg.with_values({"tile.out_noise": 0.1})  # as calibration's replace_config does
    noisy = tiles.mvm(x)
    assert np.array_equal(noisy, reference.mvm(tiles, x, first_vector=6))
    assert 0.02 < np.std((noisy - clean) / tiles.scales[0]) < 0.2


def test_a_chip_without_converters_or_noise_refuses_nan_too():
    w, x = _data(10, 20, 4)
    tiles = TileArray.from_weights(w, ChipConfig.preset("ideal"), 0)
    assert tiles.g_direct is not None  # the one-GEMM read
    x[1, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        tiles.mvm(x)


def test_single_vector_in_single_vector_out():
    w, x = _data(10, 20, 1)
    tiles = TileArray.from_weights(w, ChipConfig.preset("ideal"), 0)
    y = tiles.mvm(x[0].astype(np.float64))
    assert y.shape == (10,) and y.dtype == np.float32
    np.testing.assert_allclose(y, x[0] @ w.T, rtol=1e-5, atol=1e-6)
