"""A convolution's input vectors on a torch device: the im2col rows of ``crossbar.read.patches``, from ``unfold``.

Row (b, oh, ow) holds the receptive field of output pixel (oh, ow) of image b in (kernel row, kernel
column, channel) order, zeros outside the image, then ``ones`` inputs fixed at 1 (a bias stored in rows).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def im2col(x_nhwc: torch.Tensor, kernel, stride, padding, dilation, out_size, first_channel: int, channels: int,
           ones: int = 0) -> torch.Tensor:  # fmt: skip
    """(B * out_h * out_w, kh * kw * channels + ones) float32 of image x_nhwc (B, H, W, C), channels
    first_channel .. first_channel + channels - 1; padding is (top, left), the far sides padded as far as
    the output size needs."""
    (kh, kw), (sh, sw), (top, left), (dh, dw), (out_h, out_w) = kernel, stride, padding, dilation, out_size
    image = x_nhwc[..., first_channel : first_channel + channels].permute(0, 3, 1, 2)
    height, width = (out_h - 1) * sh + dh * (kh - 1) + 1, (out_w - 1) * sw + dw * (kw - 1) + 1  # rows and columns read
    bottom, right = max(0, height - top - image.shape[2]), max(0, width - left - image.shape[3])
    image = F.pad(image, (left, right, top, bottom))[:, :, :height, :width]
    cols = F.unfold(image, (kh, kw), dilation=(dh, dw), stride=(sh, sw))  # (B, C * kh * kw, L), channel-major
    batch = x_nhwc.shape[0]
    rows = cols.view(batch, channels, kh, kw, -1).permute(0, 4, 2, 3, 1).reshape(batch * out_h * out_w, -1)
    if ones:
        rows = torch.cat([rows, rows.new_ones(rows.shape[0], ones)], dim=1)
    return rows
