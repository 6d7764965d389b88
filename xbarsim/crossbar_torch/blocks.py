"""Row blocks as a batch dimension: an input batch (B, n_in) as (P, B, R) and a conductance matrix
(n_in, n_out) as (P, R, n_out), so that every block product of a read is one batched GEMM.

Balanced tiles differ in height by at most one row; a shorter block is padded with zero inputs and zero
conductances, which change no sum. Blocks of equal height (576 inputs on 512-row tiles: 2 x 288) are
views, not copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..crossbar.grid import TileGrid


@dataclass(frozen=True)
class RowBlocks:
    """The row blocks of a grid on a device: ``sizes`` (P,) rows per block, ``height`` the largest, and
    ``gather`` (P * height,) int64 positions of every padded row among the n_in rows (n_in: a zero row),
    or None when every block has ``height`` rows."""

    sizes: tuple[int, ...]
    height: int
    gather: torch.Tensor | None

    @classmethod
    def of(cls, grid: TileGrid, device: torch.device) -> RowBlocks:
        sizes = tuple(int(s) for s in np.diff(grid.row_edges))
        height = max(sizes)
        if all(size == height for size in sizes):
            return cls(sizes, height, None)
        index = np.full((len(sizes), height), grid.n_in, np.int64)
        for p, (start, size) in enumerate(zip(grid.row_edges[:-1].tolist(), sizes)):
            index[p, :size] = np.arange(start, start + size)
        return cls(sizes, height, torch.from_numpy(index.reshape(-1)).to(device))

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, n_in) -> (P, B, height): block p of every vector (a view when no block is padded)."""
        n_batch = x.shape[0]
        if self.gather is not None:
            x = torch.cat([x, x.new_zeros(n_batch, 1)], dim=1)[:, self.gather]
        return x.view(n_batch, len(self.sizes), self.height).transpose(0, 1)

    def matrix(self, a: torch.Tensor) -> torch.Tensor:
        """a (n_in, n_out) -> (P, height, n_out), zero rows where a block is padded."""
        if self.gather is not None:
            a = torch.cat([a, a.new_zeros(1, a.shape[1])], dim=0)[self.gather]
        return a.reshape(len(self.sizes), self.height, a.shape[1])


def blocked(tiles) -> tuple[RowBlocks, dict[str, torch.Tensor | None]]:
    """The row blocks of ``tiles`` and its read arrays as (P, height, n_out) blocks: ``gdiff``, ``var``
    (VAR_MATRIX read variance), ``sigma_pos``/``sigma_neg`` (per-device stds); made again whenever a new
    read epoch gave the tiles new arrays."""
    cached = tiles.__dict__.get("_torch_blocks")
    if cached is not None and cached[0] is tiles.gdiff_t:
        return cached[1], cached[2]
    layout = RowBlocks.of(tiles.grid, tiles.gdiff_t.device)
    sigma = tiles.read_sigma_t
    arrays = {
        "gdiff": layout.matrix(tiles.gdiff_t),
        "var": None if tiles.read_var_t is None else layout.matrix(tiles.read_var_t),
        "sigma_pos": None if sigma is None else layout.matrix(sigma[0]),
        "sigma_neg": None if sigma is None else layout.matrix(sigma[1]),
    }
    tiles._torch_blocks = (tiles.gdiff_t, layout, arrays)
    return layout, arrays
