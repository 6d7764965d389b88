"""The read path's BLAS products, kept inside the rule under which their bits do not depend on
BLAS's thread count (docs/determinism.md, "BLAS and threads").

NumPy's BLAS is OpenBLAS. The rule, from its source (0.3.2x-0.3.3x; ``driver/level3``,
``interface/gemv.c``, ``param.h``):

- **GEMM** (M >= 2 rows and N >= 2 columns). A product is summed over K in pieces of at most
  GEMM_Q, each piece's sum added into C in float32. A remainder r with GEMM_Q < r < 2 GEMM_Q is
  cut in two: at ``round_up(r // 2, GEMM_UNROLL_M)`` by the one-thread driver (``level3.c``) and
  at ``(r + 1) // 2`` by the threaded one (``level3_thread.c``). Where the cuts differ, so do the
  bits (K = 449-478, 481-510, ...: on the development machine's SkylakeX core, GEMM_Q = 448 and
  GEMM_UNROLL_M = 16). Threads split M and N, never K, so a K of at most GEMM_Q, or a multiple of
  2 GEMM_UNROLL_M (GEMM_Q is one too), is summed alike on any thread count. Longer row blocks are
  padded up to such a K with zero inputs (``BlockLayout``): a zero input adds an exact 0.
- **Matrix-vector products** (M = 1 or N = 1: NumPy calls gemv). OpenBLAS runs them on several
  threads from 115200 * GEMM_MULTITHREAD_THRESHOLD (4) matrix entries on, each thread taking a
  range of outputs whose last 1-3 are summed by other code; below that size they run on one
  thread. ``product`` cuts larger ones into calls below that size.

``tests/test_blas.py`` checks every K from 1 to 1024 at M = 1, 8, 64 and 512 on 1 and 2 threads.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import blasthreads


@dataclass(frozen=True)
class Rule:
    """Which products NumPy's BLAS sums alike on any thread count."""

    core: str  # OpenBLAS's kernel family ("unknown" for another BLAS or a core not in ``CORES``)
    whole_k: int  # a GEMM's K up to this is summed in one piece (GEMM_Q)
    k_multiple: int  # a longer K must be a multiple of this (2 * GEMM_UNROLL_M)
    gemv_entries: int  # a matrix-vector product with fewer matrix entries runs on one thread

    @property
    def known(self) -> bool:
        return self.core != "unknown"

    def padded_k(self, k: int) -> int:
        """The K a GEMM over k rows is padded to: k itself, or the next multiple of k_multiple."""
        return k if k <= self.whole_k else -(-k // self.k_multiple) * self.k_multiple


# OpenBLAS's x86-64 float32 GEMM blocking (param.h: SGEMM_DEFAULT_Q, 2 * SGEMM_DEFAULT_UNROLL_M)
CORES = {"skylakex": (448, 32), "cooperlake": (320, 32), "sapphirerapids": (320, 32), "haswell": (320, 16), "zen": (320, 16)}
GEMV_ENTRIES = 115200 * 4  # interface/gemv.c, with OpenBLAS's default GEMM_MULTITHREAD_THRESHOLD


@functools.cache
def rule() -> Rule:
    """The rule of the BLAS NumPy uses in this process. For another BLAS, or an OpenBLAS core
    whose blocking is not in ``CORES``, nothing is padded and thread-count independence is not
    promised (docs/determinism.md)."""
    info = _numpy_blas_info()
    core = str(info.get("architecture") or "").lower()
    if info.get("internal_api") == "openblas" and core in CORES:
        whole_k, multiple = CORES[core]
        return Rule(core, whole_k, multiple, GEMV_ENTRIES)
    return Rule("unknown", _NEVER, 1, _NEVER)


def numpy_blas_path() -> str:
    """The file of the BLAS library NumPy calls ("" when none was found)."""
    return str(_numpy_blas_info().get("filepath", ""))


@functools.cache
def _numpy_blas_info() -> dict:
    """threadpoolctl's description of NumPy's own BLAS (numpy.libs/ beside the package, or inside it),
    else of the first BLAS loaded ({} when none)."""
    from threadpoolctl import threadpool_info

    numpy_home = Path(np.__file__).resolve().parent
    libraries = [info for info in threadpool_info() if info.get("user_api") == "blas"]
    ours = [info for info in libraries if _is_numpys(Path(info.get("filepath", "")).resolve(), numpy_home)]
    return (ours or libraries or [{}])[0]


_NEVER = 1 << 62


def _is_numpys(library: Path, numpy_home: Path) -> bool:
    return library.parent.name == "numpy.libs" or numpy_home in library.parents


@dataclass(frozen=True)
class BlockLayout:
    """Where each row block's inputs sit in a read's input buffer ``xq`` (B, width): block p in
    columns ``edges[p]`` .. ``edges[p] + rows_p`` and zeros after it up to ``edges[p + 1]`` (its
    padded K). Its product multiplies those columns with the matrix rows ``row_edges[p]`` ..
    ``row_edges[p] + edges[p + 1] - edges[p]``: the rows past the block meet zero inputs, and a
    matrix needs ``tail`` zero rows after its last one for the last block (``with_tail``)."""

    row_edges: np.ndarray  # (P+1,) int64: the blocks' rows in the matrix
    edges: np.ndarray  # (P+1,) int64: the blocks' columns in xq
    tail: int
    shortest: int  # the smallest padded K of a block
    widest: int  # the largest padded K of a block
    spans: tuple[tuple[int, int, int], ...]  # each block's (first column in xq, end column in xq, first matrix row)

    @property
    def width(self) -> int:
        return int(self.edges[-1])

    @property
    def padded(self) -> bool:
        """Whether any block has zero columns (else xq's columns are the matrix's rows)."""
        return self.width != int(self.row_edges[-1])


@functools.lru_cache(maxsize=1024)
def _layout(edges: tuple[int, ...]) -> BlockLayout:
    row_edges = np.asarray(edges, np.int64)
    padded = np.array([rule().padded_k(int(k)) for k in np.diff(row_edges)], np.int64)
    tail = max(0, int((row_edges[:-1] + padded).max()) - int(row_edges[-1]))
    edges = np.concatenate([[0], np.cumsum(padded)]).astype(np.int64)
    spans = tuple((int(edges[p]), int(edges[p + 1]), int(row_edges[p])) for p in range(len(padded)))
    return BlockLayout(row_edges, edges, tail, int(padded.min()), int(padded.max()), spans)


def layout(row_edges: np.ndarray) -> BlockLayout:
    """The layout of a grid's row blocks under this process's ``rule``."""
    return _layout(tuple(int(e) for e in row_edges))


def with_tail(matrix: np.ndarray, tail: int) -> np.ndarray:
    """(rows + tail, cols) float32 C-contiguous: ``matrix``, then ``tail`` zero rows (the storage
    whose first rows are the matrix, as ``block_products`` reads it)."""
    out = tail_buffer(matrix.shape[0], matrix.shape[1], tail)
    out[: matrix.shape[0]] = matrix
    return out


def tail_buffer(rows: int, cols: int, tail: int) -> np.ndarray:
    """(rows + tail, cols) float32 C-contiguous, the last ``tail`` rows zero and the others not yet written
    (``with_tail``'s storage, for a matrix computed into its first rows)."""
    out = np.empty((rows + tail, cols), np.float32)
    out[rows:] = 0.0
    return out


def product(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out = a @ b (float32), a (M, K), b (K, N), out (M, N) C-contiguous, K allowed by ``rule``.
    Under a known rule: on NumPy's BLAS held at one thread, a large GEMM cut into row parts run side by
    side (``blasthreads``), a matrix-vector product too large for one OpenBLAS thread cut as before."""
    the_rule = rule()
    if not the_rule.known:
        np.matmul(a, b, out=out)
        return
    n_rows, k = a.shape
    n_cols = b.shape[1]
    limit = the_rule.gemv_entries
    if n_rows == 1 and n_cols > 1 and n_cols * k >= limit:
        jobs = [functools.partial(np.matmul, a, b[:, c0:c1], out=out[:, c0:c1]) for c0, c1 in _parts(n_cols, k, limit)]
    elif n_cols == 1 and n_rows > 1 and n_rows * k >= limit:
        jobs = [functools.partial(np.matmul, a[r0:r1], b, out=out[r0:r1]) for r0, r1 in _parts(n_rows, k, limit)]
    elif n_rows == 1 or n_cols == 1:
        jobs = [functools.partial(np.matmul, a, b, out=out)]
    else:
        parts = blasthreads.row_parts(n_rows, n_rows * k * n_cols, the_rule.k_multiple)
        jobs = [functools.partial(np.matmul, a[r0:r1], b, out=out[r0:r1]) for r0, r1 in parts]
    blasthreads.run(jobs)


def _parts(n: int, k: int, limit: int) -> list[tuple[int, int]]:
    """Balanced parts of n outputs, each with fewer than ``limit`` / k of them and at least 2
    (one would make NumPy call a dot product instead)."""
    parts = -(-n // max(2, (limit - 1) // k))
    edges = [n * i // parts for i in range(parts + 1)]
    return list(zip(edges[:-1], edges[1:]))


def block_products(xq: np.ndarray, matrix: np.ndarray, blocks: BlockLayout, out: np.ndarray) -> None:
    """out[p] = xq[:, block p's columns] @ matrix[block p's rows] for every row block p, one BLAS
    call each. xq (B, >= blocks.width) in ``blocks``' layout; matrix (n_in + blocks.tail, n_out)
    from ``with_tail``; out (P, B, n_out)."""
    for p, (e0, e1, r0) in enumerate(blocks.spans):
        product(xq[:, e0:e1], matrix[r0 : r0 + e1 - e0], out[p])


def batch_parts(n_rows: int, blocks: BlockLayout, n_cols: int) -> list[tuple[int, int]]:
    """Row ranges of a read's batch of ``n_rows`` vectors that every row block's GEMM (N = ``n_cols``) may
    be cut into as ``product`` cuts one (``blasthreads.row_parts``, sized by the shortest block), so each
    range can run its products and what follows them on its own thread; the whole batch where none is
    cut (outside ``blasthreads.pooled``, or a matrix-vector product)."""
    the_rule = rule()
    if not the_rule.known or n_rows == 1 or n_cols == 1:
        return [(0, n_rows)]
    return blasthreads.row_parts(n_rows, n_rows * blocks.shortest * n_cols, the_rule.k_multiple)


def block_products_of_rows(xq: np.ndarray, matrix: np.ndarray, blocks: BlockLayout, out: np.ndarray, v0: int, v1: int) -> None:
    """``block_products`` for rows v0..v1 of xq and out only, a range of ``batch_parts``: each block's
    product one BLAS call on this thread, as ``product`` computes that part of the whole."""
    for p, (e0, e1, r0) in enumerate(blocks.spans):
        np.matmul(xq[v0:v1, e0:e1], matrix[r0 : r0 + e1 - e0], out=out[p, v0:v1])


def widen(x: np.ndarray, blocks: BlockLayout) -> np.ndarray:
    """x (B, n_in) in ``blocks``' layout (B, width), zeros in the padding; x itself when unpadded."""
    if not blocks.padded:
        return x
    wide = np.zeros((x.shape[0], blocks.width), np.float32)
    for p in range(len(blocks.edges) - 1):
        r0, r1, e0 = int(blocks.row_edges[p]), int(blocks.row_edges[p + 1]), int(blocks.edges[p])
        wide[:, e0 : e0 + r1 - r0] = x[:, r0:r1]
    return wide


def summed_block_products(x_wide: np.ndarray, matrix: np.ndarray, blocks: BlockLayout) -> np.ndarray:
    """(B, n_out) float32: the sum over row blocks p, in order, of x_wide's block p @ matrix's
    block p (``block_products``: x_wide in ``blocks``' layout, matrix from ``with_tail``)."""
    out = np.empty((x_wide.shape[0], matrix.shape[1]), np.float32)
    partial = np.empty_like(out) if len(blocks.edges) > 2 else out
    for p, (e0, e1, r0) in enumerate(blocks.spans):
        product(x_wide[:, e0:e1], matrix[r0 : r0 + e1 - e0], out if p == 0 else partial)
        if p > 0:
            out += partial
    return out


def matmul(x: np.ndarray, w_t: np.ndarray, row_edges: np.ndarray | None = None) -> np.ndarray:
    """x (B, K) @ w_t (K, N) float32 as ``summed_block_products`` makes it over the row blocks of
    ``row_edges`` (one block when None): copies both into the blocks' layout first."""
    blocks = layout(np.array([0, x.shape[1]]) if row_edges is None else row_edges)
    return summed_block_products(widen(np.ascontiguousarray(x, np.float32), blocks), with_tail(w_t, blocks.tail), blocks)
