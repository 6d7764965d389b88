import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xbarsim.config import ChipConfig
from xbarsim.crossbar.read import patches
from xbarsim.crossbar.tile import TileArray

GEOMETRIES = [  # kernel, stride, padding (top, left), dilation, channels, first channel, image (H, W)
    ((3, 3), (1, 1), (1, 1), (1, 1), 5, 0, (7, 6)),
    ((5, 2), (2, 1), (2, 0), (1, 3), 3, 2, (9, 11)),
    ((1, 1), (2, 2), (0, 0), (1, 1), 8, 0, (4, 4)),
    ((5, 5), (1, 1), (0, 0), (1, 1), 3, 0, (9, 8)),  # LeNet's first layer, smaller
    ((3, 2), (2, 3), (1, 2), (2, 1), 4, 0, (8, 10)),
]
# channels the image has beyond first + channels: with none, a kernel row inside the image is one
# run of memory (``gather_patch`` copies it as one), at the edges and with spare channels it is not
SPARE_CHANNELS = [0, 2]


def _out_size(image, kernel, stride, padding, dilation):
    return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in zip(image, padding, dilation, kernel, stride))


@pytest.mark.parametrize("kernel, stride, padding, dilation, channels, first, image", GEOMETRIES)
@pytest.mark.parametrize("spare", SPARE_CHANNELS)
def test_im2col_matches_torch_unfold(kernel, stride, padding, dilation, channels, first, image, spare):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, first + channels + spare, *image)).astype(np.float32)
    out_size = _out_size(image, kernel, stride, padding, dilation)
    cols = patches.im2col(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), kernel, stride, padding, dilation, out_size, first, channels)
    unfold = F.unfold(torch.from_numpy(x[:, first : first + channels]), kernel, dilation, padding, stride)  # (B, C*kh*kw, L)
    expected = unfold.reshape(2, channels, kernel[0] * kernel[1], -1).permute(0, 3, 2, 1).reshape(cols.shape)
    assert np.array_equal(cols, expected.numpy())


@pytest.mark.parametrize("preset", ["pcm", "rram", "gaussian", "aihwkit", "ideal"])
@pytest.mark.parametrize("kernel, stride, padding, dilation, channels, first, image", GEOMETRIES)
@pytest.mark.parametrize("spare", SPARE_CHANNELS)
def test_patch_mvm_equals_mvm_of_the_im2col_matrix(preset, kernel, stride, padding, dilation, channels, first, image, spare):
    rng = np.random.default_rng(1)
    x = np.ascontiguousarray(rng.standard_normal((3, *image, first + channels + spare)).astype(np.float32))
    out_size = _out_size(image, kernel, stride, padding, dilation)
    cfg = ChipConfig.preset(preset).with_values({"tile.rows": 16, "tile.cols": 8})
    if preset == "aihwkit":  # bound management re-reads patches: a low ADC bound makes it happen
        cfg = cfg.with_values({"tile.adc.bound": 1.0})
    weights = rng.standard_normal((10, kernel[0] * kernel[1] * channels)).astype(np.float32)
    a, b = TileArray.from_weights(weights, cfg, seed=4), TileArray.from_weights(weights, cfg, seed=4)
    cols = patches.im2col(x, kernel, stride, padding, dilation, out_size, first, channels)
    assert np.array_equal(a.mvm_patches(x, kernel, stride, padding, dilation, out_size, first), b.mvm(cols))
    assert a.reads == b.reads == cols.shape[0]
    assert a.bm_rereads == b.bm_rereads and (a.bm_rereads > 0) == (preset == "aihwkit")


@pytest.mark.parametrize("preset", ["pcm", "aihwkit"])
def test_a_patch_read_cut_over_the_pool_equals_the_whole_read(monkeypatch, preset):
    """Inside ``pooled`` a convolution's patches are cut into parts, each gathered, DAC'd, multiplied and
    read on its own thread with its own scratch rows (``readout._read_part``): the same outputs as one read."""
    from xbarsim.crossbar.read import blas, blasthreads

    if not blas.rule().known:
        pytest.skip("no BLAS rule for this BLAS: products are not cut")
    monkeypatch.setattr(blasthreads, "_pool", blasthreads._Pool(3))
    rng = np.random.default_rng(2)
    x = np.ascontiguousarray(rng.standard_normal((16, 32, 32, 64)).astype(np.float32))
    kernel, stride, padding, dilation = (3, 3), (1, 1), (1, 1), (1, 1)
    cfg = ChipConfig.preset(preset).with_values({"tile.adc.bound": 0.5} if preset == "aihwkit" else {})
    weights = (rng.standard_normal((128, 576)) / 24).astype(np.float32)
    whole, cut = TileArray.from_weights(weights, cfg, seed=4), TileArray.from_weights(weights, cfg, seed=4)
    expected = whole.mvm_patches(x, kernel, stride, padding, dilation, (32, 32))
    with blasthreads.pooled():
        parts = blas.batch_parts(16 * 32 * 32, blas.layout(cut.grid.row_edges), 128)
        outputs = cut.mvm_patches(x, kernel, stride, padding, dilation, (32, 32))
    assert len(parts) == 3
    assert np.array_equal(outputs.view(np.uint32), expected.view(np.uint32)) and cut.bm_rereads == whole.bm_rereads
    assert (whole.bm_rereads > 0) == (preset == "aihwkit")
