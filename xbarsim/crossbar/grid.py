"""Splitting a weight matrix into a grid of tiles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def balanced_edges(n: int, max_size: int) -> np.ndarray:
    """Edges (k+1,) of the fewest parts of size <= max_size, sizes differing by at most one
    (1000 rows on 512-row tiles -> 500 + 500, not 512 + 488)."""
    if n < 1 or max_size < 1:
        raise ValueError(f"need n >= 1 and max_size >= 1, got n={n}, max_size={max_size}")
    parts = -(-n // max_size)
    sizes = np.full(parts, n // parts, dtype=np.int64)
    sizes[: n % parts] += 1
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


@dataclass(frozen=True)
class TileGrid:
    """Tiles of an (n_in x n_out) matrix: row blocks over inputs, column blocks over outputs."""

    row_edges: np.ndarray  # (P+1,) int64
    col_edges: np.ndarray  # (Q+1,) int64

    @classmethod
    def for_matrix(cls, n_in: int, n_out: int, rows: int, cols: int) -> TileGrid:
        return cls(balanced_edges(n_in, rows), balanced_edges(n_out, cols))

    @property
    def n_in(self) -> int:
        return int(self.row_edges[-1])

    @property
    def n_out(self) -> int:
        return int(self.col_edges[-1])

    @property
    def shape(self) -> tuple[int, int]:
        """(row blocks P, column blocks Q)."""
        return len(self.row_edges) - 1, len(self.col_edges) - 1

    def col_block_of(self) -> np.ndarray:
        """(n_out,) int64: the column block of every output."""
        return np.repeat(np.arange(self.shape[1]), np.diff(self.col_edges))

    def tile_slices(self, p: int, q: int) -> tuple[slice, slice]:
        """(input slice, output slice) of tile (p, q)."""
        return (
            slice(int(self.row_edges[p]), int(self.row_edges[p + 1])),
            slice(int(self.col_edges[q]), int(self.col_edges[q + 1])),
        )
