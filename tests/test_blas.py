"""BLAS products whose bits do not depend on BLAS's thread count (read/blas.py, docs/determinism.md)."""

import multiprocessing
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from xbarsim.crossbar.read import blas, blasthreads

RULE = blas.rule()
known = pytest.mark.skipif(not RULE.known, reason=f"no BLAS rule for this BLAS ({RULE.core})")


def _bits(func, threads: int) -> np.ndarray:
    with threadpool_limits(threads, user_api="blas"):
        return func().view(np.uint32)


def _cuts(k: int, threaded: bool) -> list[int]:
    """OpenBLAS's pieces of a GEMM over k (driver/level3/level3.c and level3_thread.c)."""
    cuts, done = [], 0
    q, unroll = RULE.whole_k, RULE.k_multiple // 2
    while done < k:
        left = k - done
        if left >= 2 * q:
            left = q
        elif left > q:
            left = (left + 1) // 2 if threaded else -(-(left // 2) // unroll) * unroll
        cuts.append(left)
        done += left
    return cuts


@known
@pytest.mark.parametrize("m, n", [(1, 600), (8, 600), (64, 64), (512, 64)])
def test_every_k_up_to_1024_gives_the_same_bits_on_one_and_two_threads(m, n):
    """A row block of K rows read by ``block_products``, as the read path does. Each shape is large
    enough for OpenBLAS to use both threads over most of the range (at M = 1, gemv would from
    K = 768 on: n * K >= 460800)."""
    rng = np.random.default_rng(m)
    a = rng.standard_normal((m, 1024)).astype(np.float32)
    b = blas.with_tail(rng.standard_normal((1024, n)).astype(np.float32), RULE.k_multiple)
    out = np.empty((1, m, n), np.float32)
    differ = []
    for k in range(1, 1025):
        blocks = blas.layout(np.array([0, k]))
        x = blas.widen(np.ascontiguousarray(a[:, :k]), blocks)
        one, two = (_bits(lambda: (blas.block_products(x, b, blocks, out), out.copy())[1], t) for t in (1, 2))
        if not np.array_equal(one, two):
            differ.append(k)
    assert differ == []


@known
def test_the_padding_is_needed_where_the_source_says_the_cuts_differ():
    """NumPy's plain GEMM changes bits between 1 and 2 threads exactly where the one-thread and the
    threaded driver cut K differently (the rule ``blas`` follows), and nowhere else."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((64, 1024)).astype(np.float32)
    b = rng.standard_normal((1024, 64)).astype(np.float32)
    predicted = [k for k in range(1, 1025) if _cuts(k, False) != _cuts(k, True)]
    differ = [k for k in range(1, 1025) if not np.array_equal(*(_bits(lambda: a[:, :k] @ b[:k], t) for t in (1, 2)))]
    assert differ == predicted and len(predicted) > 100
    assert all(_cuts(RULE.padded_k(k), False) == _cuts(RULE.padded_k(k), True) for k in range(1, 4097))


@known
@pytest.mark.parametrize("m, n", [(1, 2000), (3000, 1), (1, 1)])
def test_matrix_vector_products_too_large_for_one_thread_are_cut(m, n):
    rng = np.random.default_rng(2)
    k = 400
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    assert np.array_equal(*(_bits(lambda: blas.matmul(a, b), threads) for threads in (1, 2)))
    plain = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(blas.matmul(a, b), plain, rtol=1e-4, atol=1e-3)


def test_layout_pads_long_blocks_and_keeps_short_ones():
    edges = np.array([0, 461, 922, 1382, 1843, 2304])  # a 3x3x256 convolution on 512-row tiles
    layout = blas.layout(edges)
    padded = [RULE.padded_k(k) for k in np.diff(edges)]
    assert np.array_equal(np.diff(layout.edges), padded)
    assert layout.tail == max(0, 1843 + padded[-1] - 2304)
    short = blas.layout(np.array([0, 100, 200]))
    assert not short.padded and short.tail == 0 and np.array_equal(short.edges, [0, 100, 200])


def test_block_products_equal_float64_products_and_ignore_the_padding():
    rng = np.random.default_rng(3)
    edges = np.array([0, 461, 922, 1382])
    layout = blas.layout(edges)
    x = rng.standard_normal((5, 1382)).astype(np.float32)
    g = rng.standard_normal((1382, 70)).astype(np.float32)
    wide = blas.widen(x, layout)
    wide_garbage = wide.copy()
    y = np.empty((3, 5, 70), np.float32)
    blas.block_products(wide, blas.with_tail(g, layout.tail), layout, y)
    for p in range(3):
        r0, r1 = edges[p], edges[p + 1]
        np.testing.assert_allclose(y[p], x[:, r0:r1].astype(np.float64) @ g[r0:r1], rtol=1e-4, atol=1e-4)
    # whatever the rows past a block hold, zero inputs meet them
    g_other = blas.with_tail(g, layout.tail)
    g_other[1382:] = 7.0
    y2 = np.empty_like(y)
    blas.block_products(wide_garbage, g_other, layout, y2)
    assert np.array_equal(y, y2)


# ------------------------------------------------------------------ the read path on padded row blocks
PADDED_PATHS = {
    "pcm (variance GEMM)": {},
    "additive": {"device.read_noise": {"kind": "additive", "sigma": 0.5}},
    "per device": {"tile.read_noise_path": "per_device"},
    "bound management": {"tile.bound_management": "iterative", "tile.adc.bound": 1.0},
    "converter-free": {"tile.dac": {"bits": None, "range": "none"}, "tile.adc": {"bits": None, "range": "none"},
                       "tile.out_noise": 0.0, "device.read_noise": {"kind": "none"}},
}  # fmt: skip


def _padded_tiles(path: str):
    from xbarsim.config import ChipConfig
    from xbarsim.crossbar.tile import TileArray

    cfg = ChipConfig.preset("pcm").with_values({"tile.rows": 470, "tile.cols": 100, **PADDED_PATHS[path]})
    w = (np.random.default_rng(4).standard_normal((150, 930)) / 30).astype(np.float32)
    tiles = TileArray.from_weights(w, cfg, seed=5)  # two row blocks of 465 rows
    tiles.drift(3600.0)
    return tiles


@pytest.mark.parametrize("path", PADDED_PATHS)
@pytest.mark.parametrize("n_batch", [1, 70])
def test_padded_row_blocks_equal_the_reference_and_do_not_depend_on_blas_threads(path, n_batch):
    from xbarsim.crossbar.truth import reference

    x = np.random.default_rng(6).standard_normal((n_batch, 930)).astype(np.float32)
    outputs = []
    for threads in (1, 2):
        tiles = _padded_tiles(path)
        expected = reference.mvm(tiles, x, first_vector=0)
        with threadpool_limits(threads, user_api="blas"):
            outputs.append(tiles.mvm(x))
        assert np.array_equal(outputs[-1], expected)
    assert np.array_equal(outputs[0].view(np.uint32), outputs[1].view(np.uint32))
    if RULE.known:
        assert blas.layout(tiles.grid.row_edges).padded
    assert (tiles.g_direct is not None) == (path == "converter-free") and (tiles.bm_rereads > 0) == (path == "bound management")


# ------------------------------------------------------------------ products cut over xbarsim's pool
def _three_thread_pool(monkeypatch):
    """A pool of 3 threads whatever this machine has (the cuts, not the speed, are under test)."""
    monkeypatch.setattr(blasthreads, "_pool", blasthreads._Pool(3))


@known
@pytest.mark.parametrize("m, k, n", [(4160, 128, 128), (100, 448, 512), (257, 500, 130), (20000, 27, 64), (1100, 1024, 16),
                                     (300, 961, 64), (70, 4000, 64)])  # fmt: skip
def test_a_gemm_cut_over_the_pool_gives_the_bits_of_the_whole_on_one_and_two_threads(monkeypatch, m, k, n):
    """Inside ``pooled`` a large GEMM is cut into row parts (each on one OpenBLAS thread); its bits
    equal the whole product's outside, with OpenBLAS on 1 or 2 threads."""
    _three_thread_pool(monkeypatch)
    rng = np.random.default_rng(m + k + n)
    blocks = blas.layout(np.array([0, k]))
    x = blas.widen(rng.standard_normal((m, k)).astype(np.float32), blocks)
    g = blas.with_tail(rng.standard_normal((k, n)).astype(np.float32), blocks.tail)
    out = np.empty((1, m, n), np.float32)
    whole = [_bits(lambda: (blas.block_products(x, g, blocks, out), out.copy())[1], t) for t in (1, 2)]
    with blasthreads.pooled():
        cut = len(blasthreads.row_parts(m, m * blocks.width * n, RULE.k_multiple))
        blas.block_products(x, g, blocks, out)
    assert cut >= 2
    assert np.array_equal(whole[0], whole[1]) and np.array_equal(out.view(np.uint32), whole[0])


@known
@pytest.mark.parametrize("path", PADDED_PATHS)
def test_a_read_cut_over_the_pool_gives_the_bits_of_the_whole_read(monkeypatch, path):
    """Inside ``pooled`` a read's batch is cut into parts that each run their products and noise/ADC pass
    on their own thread (``blas.batch_parts``); its outputs, saturations and re-reads are the whole read's."""
    from xbarsim.crossbar.truth import reference

    _three_thread_pool(monkeypatch)
    x = np.random.default_rng(7).standard_normal((700, 930)).astype(np.float32)
    whole = _padded_tiles(path)
    expected = whole.mvm(x)
    tiles = _padded_tiles(path)
    with blasthreads.pooled():
        parts = blas.batch_parts(len(x), blas.layout(tiles.grid.row_edges), tiles.grid.n_out)
        cut = tiles.mvm(x)
    assert len(parts) == 3 and parts[0][0] == 0 and parts[-1][1] == len(x)
    assert np.array_equal(cut.view(np.uint32), expected.view(np.uint32)) and tiles.bm_rereads == whole.bm_rereads
    assert np.array_equal(cut, reference.mvm(_padded_tiles(path), x, first_vector=0))


@known
def test_pooled_holds_numpys_blas_at_one_thread_and_gives_its_threads_back():
    library = blasthreads._hold()._library
    with threadpool_limits(2, user_api="blas"):
        before = library.get_num_threads()
        with blasthreads.pooled():
            with blasthreads.pooled():
                inside = library.get_num_threads()
            still = library.get_num_threads()
        assert (before, inside, still, library.get_num_threads()) == (2, 1, 1, 2)


@known
def test_own_threads_lends_the_held_blas_its_threads_and_sets_the_pool_aside(monkeypatch):
    _three_thread_pool(monkeypatch)
    library = blasthreads._hold()._library
    with threadpool_limits(2, user_api="blas"):
        with blasthreads.own_threads():  # outside pooled: nothing changes
            outside = (library.get_num_threads(), blasthreads.pooling())
        with blasthreads.pooled():
            held = (library.get_num_threads(), blasthreads.pooling(), len(blasthreads.row_parts(4096, 1 << 30, 32)))
            with blasthreads.own_threads(), blasthreads.own_threads():
                lent = (library.get_num_threads(), blasthreads.pooling(), len(blasthreads.row_parts(4096, 1 << 30, 32)))
            again = (library.get_num_threads(), blasthreads.pooling())
        after = library.get_num_threads()
    assert outside == (2, False)
    assert held == (1, True, 3)
    assert lent == (2, False, 1)
    assert again == (1, True)
    assert after == 2


@known
def test_a_blas_limit_of_one_thread_runs_the_parts_on_the_calling_thread(monkeypatch):
    _three_thread_pool(monkeypatch)
    seen = []
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((4160, 128)).astype(np.float32), rng.standard_normal((128, 128)).astype(np.float32)
    out = np.empty((4160, 128), np.float32)
    monkeypatch.setattr(blasthreads._Pool, "run", lambda self, groups: seen.append(len(groups)) or blasthreads._run_all(
        [job for group in groups for job in group]))  # fmt: skip
    with threadpool_limits(1, user_api="blas"), blasthreads.pooled():
        blas.product(a, b, out)
    with threadpool_limits(2, user_api="blas"), blasthreads.pooled():
        blas.product(a, b, out)
    assert seen == [2]
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)


def _product_in_child(queue) -> None:
    rng = np.random.default_rng(10)
    a, b = rng.standard_normal((4160, 128)).astype(np.float32), rng.standard_normal((128, 128)).astype(np.float32)
    out = np.empty((4160, 128), np.float32)
    with blasthreads.pooled():
        blas.product(a, b, out)
    queue.put(out.tobytes())


@known
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_makes_its_own_pool():
    """Threads do not survive a fork: a child that inherited the parent's pool must not wait on it."""
    context = multiprocessing.get_context("fork")
    with blasthreads.pooled():
        blasthreads._the_pool()
    queue = context.Queue()
    child = context.Process(target=_product_in_child, args=(queue,))
    child.start()
    got = queue.get(timeout=60)
    child.join(timeout=60)
    expected = multiprocessing.Queue()
    _product_in_child(expected)
    assert child.exitcode == 0 and got == expected.get(timeout=10)
