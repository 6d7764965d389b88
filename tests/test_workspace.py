"""Work buffers and the views a read keeps of them: reused, dropped when a buffer grows, per thread."""

import threading

import numpy as np

from xbarsim.config import ChipConfig
from xbarsim.crossbar.truth import reference
from xbarsim.crossbar.read import workspace
from xbarsim.crossbar.tile import TileArray


def test_kept_views_come_back_until_a_buffer_grows():
    workspace.release()
    small = workspace.buffer("a", (2, 3))
    assert workspace.views(("k",)) is None
    kept = workspace.keep(("k",), (small, None))
    assert workspace.views(("k",)) is kept
    workspace.buffer("a", (1, 6))  # fits: nothing dropped, same memory
    assert workspace.views(("k",)) is kept
    assert np.shares_memory(workspace.buffer("a", (6,)), small)
    workspace.buffer("a", (4, 4))  # grows: the kept views would hold the old buffer
    assert workspace.views(("k",)) is None
    workspace.keep(("k",), (small,))
    workspace.release()
    assert workspace.views(("k",)) is None


def test_at_most_max_kept_sets_are_kept():
    workspace.release()
    for k in range(workspace.MAX_KEPT + 1):
        workspace.keep((k,), ())
    assert workspace.views((workspace.MAX_KEPT,)) == ()
    assert workspace.views((0,)) is None
    workspace.release()


def test_views_are_kept_per_thread():
    workspace.release()
    workspace.keep(("k",), ())
    seen = []
    thread = threading.Thread(target=lambda: seen.append(workspace.views(("k",))))
    thread.start()
    thread.join()
    assert seen == [None] and workspace.views(("k",)) == ()
    workspace.release()


def test_reads_of_alternating_shapes_equal_the_reference():
    # batch sizes that grow and shrink the buffers, two arrays of other shapes and paths in between:
    # a kept view of a dropped or resized buffer would give wrong outputs
    rng = np.random.default_rng(3)
    w_a, w_b = rng.standard_normal((40, 90)).astype(np.float32), rng.standard_normal((70, 50)).astype(np.float32)
    cfg = ChipConfig.preset("pcm").with_values({"tile.rows": 64, "tile.cols": 32})
    arrays = {"a": TileArray.from_weights(w_a, cfg, seed=1),
              "b": TileArray.from_weights(w_b, cfg.with_values({"tile.bound_management": "iterative"}), seed=2)}  # fmt: skip
    for name, batch in (("a", 1), ("a", 300), ("b", 1), ("a", 1), ("b", 500), ("a", 7), ("b", 1), ("a", 300)):
        tiles = arrays[name]
        x = rng.standard_normal((batch, tiles.grid.n_in)).astype(np.float32)
        first = tiles.reads
        assert np.array_equal(tiles.mvm(x), reference.mvm(tiles, x, first_vector=first)), (name, batch)
