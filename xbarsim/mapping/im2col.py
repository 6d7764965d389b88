"""im2col for channels-last images: every output pixel's receptive field as one row."""

from __future__ import annotations

from numba import njit, prange


@njit(parallel=True, error_model="numpy", cache=True)
def im2col_nhwc(x, kernel, stride, padding, dilation, out_size, first_channel, channels, out):
    """Rows of patches, in (kernel row, kernel column, channel) order.

    x (B, H, W, C) float32, channels-last; kernel/stride/dilation/out_size are (rows, cols) int
    tuples and padding the (top, left) zero padding; the patch takes channels
    [first_channel, first_channel + channels). out (B * out_h * out_w, kh * kw * channels):
    row (b, oh, ow), column (i * kw + j) * channels + c holds
    x[b, oh * sh - pt + i * dh, ow * sw - pl + j * dw, first_channel + c], or 0 outside the image.
    """
    n_batch, height, width = x.shape[0], x.shape[1], x.shape[2]
    kh, kw = kernel
    out_h, out_w = out_size
    pixels = out_h * out_w
    for r in prange(n_batch * pixels):
        b = r // pixels
        oh = (r - b * pixels) // out_w
        ow = r - b * pixels - oh * out_w
        row = out[r]
        for i in range(kh):
            ih = oh * stride[0] - padding[0] + i * dilation[0]
            for j in range(kw):
                iw = ow * stride[1] - padding[1] + j * dilation[1]
                segment = row[(i * kw + j) * channels : (i * kw + j + 1) * channels]
                if 0 <= ih < height and 0 <= iw < width:
                    source = x[b, ih, iw, first_channel : first_channel + channels]
                    for c in range(channels):
                        segment[c] = source[c]
                else:
                    for c in range(channels):
                        segment[c] = 0.0
