import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from xbarsim.config import ChipConfig
from xbarsim.crossbar.read import converters, lanesum
from xbarsim.crossbar.truth import reference
from xbarsim.crossbar.grid import TileGrid

finite_f32 = st.floats(-1e4, 1e4, allow_nan=False, width=32)
values = arrays(np.float32, st.integers(1, 200), elements=finite_f32)
bits = st.integers(2, 16)
bounds = st.floats(0.0009765625, 1024.0, width=32)


@given(values, bits, bounds)
def test_quantizer_outputs_lie_on_the_grid_inside_the_range(v, n_bits, bound):
    levels = 2 ** (n_bits - 1) - 1
    q = converters.quantize_array(v, bound, levels)
    k = q.astype(np.float64) * levels / np.float32(bound)
    assert np.all(np.abs(k - np.rint(k)) < 1e-3 + 4e-7 * np.abs(k)), "not on the grid"  # float32 step * k
    assert np.all(np.abs(np.rint(k)) <= levels)
    assert np.all(np.abs(q) <= np.float32(bound) * (1 + 1e-6))


@given(values, bits, bounds)
def test_quantizer_is_monotone_and_idempotent(v, n_bits, bound):
    levels = 2 ** (n_bits - 1) - 1
    v = np.sort(v)
    q = converters.quantize_array(v, bound, levels)
    assert np.all(np.diff(q) >= 0)
    assert np.array_equal(converters.quantize_array(q, bound, levels), q)


@given(values, bits, bounds)
def test_quantizer_error_is_at_most_half_a_step_inside_the_range(v, n_bits, bound):
    levels = 2 ** (n_bits - 1) - 1
    bound = np.float32(bound)
    q = converters.quantize_array(v, bound, levels)
    inside = np.abs(v) <= bound
    step = float(bound) / levels
    assert np.all(np.abs(q[inside].astype(np.float64) - v[inside]) <= 0.5 * step * (1 + 1e-4) + 1e-6 * float(bound))


@given(values, st.sampled_from([0, 1, 7, 127]), bounds)
def test_kernel_quantizer_equals_the_reference(v, levels, bound):
    assert np.array_equal(converters.quantize_array(v, bound, levels), reference.quantize(v, np.float32(bound), levels))


@pytest.mark.parametrize("dac", [
    {"bits": None, "range": "none"},
    {"bits": None, "range": "fixed", "bound": 0.7},
    {"bits": 8, "range": "fixed", "bound": 1.5},
    {"bits": 4, "range": "dynamic"},
    {"bits": None, "range": "dynamic"},
    {"bits": 6, "range": "calibrated", "bound": 2.0},
])  # fmt: skip
@pytest.mark.parametrize("n_batch", [1, 9, 70])
@pytest.mark.parametrize("twin, threads", [("parallel", 0), ("parallel", 1), ("serial", 0)])
def test_dac_kernel_equals_the_reference(dac, n_batch, twin, threads):
    cfg = ChipConfig.preset("ideal").with_values({"tile.dac": dac}).tile.dac
    grid = TileGrid.for_matrix(300, 10, 128, 128)
    rng = np.random.default_rng(n_batch)
    x = (rng.standard_normal((n_batch, 300)) * 2).astype(np.float32)
    x[0, 100:200] = 0.0  # an all-zero block keeps scale 1 in dynamic mode
    bounds = np.array([0.5, 1.0, 3.0], np.float32) if dac["range"] == "calibrated" else np.full(3, dac.get("bound") or 1, np.float32)
    xq = np.zeros_like(x)
    scale = np.zeros((n_batch, 3), np.float32)
    sq = np.zeros((n_batch, 3), np.float32)
    squares = np.zeros_like(x)
    kernel = converters.dac_into_parallel if twin == "parallel" else converters.dac_into_serial
    before = numba.get_num_threads()
    numba.set_num_threads(threads or before)
    try:
        bad = kernel(x, grid.row_edges, grid.row_edges, converters.dac_mode(cfg), bounds, cfg.levels, True, True, xq, scale, sq, squares,
                     0, n_batch)
    finally:
        numba.set_num_threads(before)
    ref_xq, ref_scale, ref_sq = reference.dac(x, grid, cfg.range, bounds, cfg.levels)
    assert bad == 0
    assert np.array_equal(xq, ref_xq) and np.array_equal(scale, ref_scale) and np.array_equal(sq, ref_sq)
    assert np.array_equal(squares, ref_xq * ref_xq)
    if dac["range"] == "dynamic":  # every non-zero block uses its full range
        peaks = np.array([np.abs(xq[:, a:b]).max(axis=1) for a, b in zip(grid.row_edges[:-1], grid.row_edges[1:])]).T
        assert np.all((peaks == 1) | (scale == 1))


def test_dac_counts_blocks_with_nan_or_inf():
    grid = TileGrid.for_matrix(20, 4, 10, 4)
    x = np.ones((3, 20), np.float32)
    x[0, 3] = np.nan
    x[2, 15] = -np.inf
    out = np.zeros_like(x), np.zeros((3, 2), np.float32), np.zeros((3, 2), np.float32), np.zeros_like(x[:1])
    assert converters.dac_into_serial(x, grid.row_edges, grid.row_edges, converters.DAC_DYNAMIC, np.ones(2, np.float32), 127, False, False, *out, 0, 3) == 2


@numba.njit
def _lane_sums(values, rows, starts, stops):
    out = np.empty(len(rows), np.float32)
    for k in range(len(rows)):
        out[k] = lanesum.sum_of_squares_by_lane(values, rows[k], starts[k], stops[k])
    return out


@given(arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(0, 80)), elements=finite_f32), st.data())
def test_the_lane_sum_of_squares_equals_the_reference_on_any_run(values, data):
    n_rows, n = values.shape
    rows = np.array(data.draw(st.lists(st.integers(0, n_rows - 1), min_size=1, max_size=5)))
    starts = np.array([data.draw(st.integers(0, n)) for _ in rows])
    stops = np.array([data.draw(st.integers(int(start), n)) for start in starts])
    expected = [reference.lane_sum_of_squares(values[row : row + 1, start:stop])[0] for row, start, stop in zip(rows, starts, stops)]
    assert np.array_equal(_lane_sums(values, rows, starts, stops), np.array(expected, np.float32))


def test_the_lane_sum_adds_in_lanes_not_in_sequence():
    # 33 values of 2^-13 but a 1 in lane 15: the lanes before it sum 31 tiny squares before they meet
    # the 1 (1 + 31 * 2^-26 rounds to 1 + 4 * 2^-23); in sequence only 15 add up before it (1 + 2 * 2^-23)
    values = np.full((1, 33), 2.0**-13, np.float32)
    values[0, 15] = 1.0
    lanes = _lane_sums(values, np.array([0]), np.array([0]), np.array([33]))[0]
    assert lanes == np.float32(1.0 + 4 * 2.0**-23) == reference.lane_sum_of_squares(values)[0]
    sequential = np.float32(0.0)
    for v in values[0]:
        sequential = np.float32(sequential + v * v)
    assert sequential == np.float32(1.0 + 2 * 2.0**-23)


def test_rows_with_nan_or_inf_are_counted():
    x = np.ones((5, 37), np.float32)
    x[1, 36] = np.nan
    x[3, 0] = -np.inf
    x[4, 5] = np.float32(3e38)  # large but finite
    assert converters.count_nonfinite_rows(x) == 2
