"""The tiled noisy MVM in plain, readable NumPy: the independent truth for the Numba kernels.

Used only by tests. It follows docs/physics.md step by step, with its own NumPy version of the
counter-based normals, and does float32 arithmetic in the same order as the kernels, so the two
agree bit for bit. The block products call NumPy's BLAS with the same shapes as the kernels do
(``blas.block_products``: one call per row block, each zero-padded within BLAS's rule), since
BLAS results depend on the call's shape; a chip without converters or noise reads with the
output scales folded into the conductances, as ``readout`` does.
"""

from __future__ import annotations

import numpy as np

from ..laws import cells, device, irdrop, readnormals, rng
from ..read import blas
from ..read.rereads import BM_ROUNDS
from ..grid import TileGrid
from ..laws.encode import expand_rows
from ..read.lanesum import SQ_LANES
from ..tile import TileArray

_F = np.float32
_U = np.uint64


def hash64(key: np.uint64, counters: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer of key + counter * golden, for a uint64 array of counters."""
    with np.errstate(over="ignore"):
        z = _U(key) + counters.astype(_U) * _U(rng.GOLDEN)
        z = (z ^ (z >> _U(30))) * _U(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U(27))) * _U(0x94D049BB133111EB)
    return z ^ (z >> _U(31))


def log_f32(u: np.ndarray) -> np.ndarray:
    """Cephes logf on float32: log(u) = e ln2 + log(m), m in [sqrt(1/2), sqrt(2))."""
    bits = u.view(np.uint32)
    e = (bits >> np.uint32(23)).astype(np.int32) - np.int32(127)
    m = ((bits & np.uint32(0x007FFFFF)) | np.uint32(0x3F800000)).view(np.float32)
    big = m > _F(2.0) * _F(0.70710678118654752)
    m = np.where(big, m * _F(0.5), m)
    e = np.where(big, e + 1, e)
    x = m - _F(1.0)
    z = x * x
    y = np.full_like(x, _F(7.0376836292e-2))
    for c in (-1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
              -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1):  # fmt: skip
        y = y * x + _F(c) if c > 0 else y * x - _F(-c)
    y = y * x * z
    fe = e.astype(np.float32)
    y = y + fe * _F(-2.12194440e-4)
    y = y - _F(0.5) * z
    return x + y + fe * _F(0.693359375)


def normal_pairs(key: np.uint64, counters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Box-Muller on the hash: 31 bits for the radius, 2 + 24 bits for the angle."""
    h = hash64(key, counters)
    u = ((h >> _U(33)).astype(np.int32).astype(np.float32) + _F(0.5)) * _F(2.0**-31)
    r = np.sqrt(_F(-2.0) * log_f32(u))
    low = (h & _U(0xFFFFFFFF)).astype(np.uint32)
    quadrant = low >> np.uint32(30)
    a = (((low & np.uint32(0x3FFFFFFF)) >> np.uint32(6)).astype(np.float32) * _F(2.0**-24) - _F(0.5)) * _F(np.pi / 2)
    z = a * a
    s = a + a * z * (_F(-1.6666654611e-1) + z * (_F(8.3321608736e-3) + z * _F(-1.9515295891e-4)))
    c = (_F(1.0) - _F(0.5) * z) + z * z * (
        _F(4.166664568298827e-2) + z * (_F(-1.388731625493765e-3) + z * _F(2.443315711809948e-5))
    )
    return _rotated(r, c, s, quadrant)


def fma32(a, b, c) -> np.ndarray:
    """a * b + c for float32 arrays with one rounding, as the CPU's fused multiply-add: a * b is
    exact in float64, the sum's error is exact by TwoSum, and rounding the sum to odd before
    rounding it to float32 rounds the exact value once (53 >= 24 + 2 bits)."""
    product = np.asarray(a, np.float32).astype(np.float64) * np.asarray(b, np.float32).astype(np.float64)
    addend = np.asarray(c, np.float32).astype(np.float64)
    total = product + addend
    back = total - product
    error = (product - (total - back)) + (addend - back)
    even = (total.view(np.int64) & 1) == 0
    odd = np.where((error != 0) & even, np.nextafter(total, np.where(error > 0, np.inf, -np.inf)), total)
    return odd.astype(np.float32)


def read_log_f32(u: np.ndarray) -> np.ndarray:
    """``readnormals.log_f32`` (noise stream version 2): Cephes logf with fused multiply-adds."""
    bits = u.view(np.uint32)
    fe = (bits >> np.uint32(23)).astype(np.int32).astype(np.float32) - _F(127.0)
    m = ((bits & np.uint32(0x007FFFFF)) | np.uint32(0x3F800000)).view(np.float32)
    big = m > _F(2.0) * _F(0.70710678118654752)
    m = np.where(big, m * _F(0.5), m)
    fe = np.where(big, fe + _F(1.0), fe)
    x = m - _F(1.0)
    z = x * x
    p = np.full_like(x, _F(readnormals.LOG_COEFFICIENTS[0]))
    for c in readnormals.LOG_COEFFICIENTS[1:]:
        p = fma32(p, x, _F(c))
    y = p * x * z
    y = fma32(fe, _F(-2.12194440e-4), y)
    y = fma32(_F(-0.5), z, y)
    return fma32(fe, _F(0.693359375), x + y)


def read_normal_pairs(key: np.uint64, counters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``readnormals.normal_pair_from_bits`` on the hash (noise stream version 2)."""
    h = hash64(key, counters)
    u = ((h >> _U(33)).astype(np.int32).astype(np.float32) + _F(0.5)) * _F(2.0**-31)
    r = np.sqrt(_F(-2.0) * read_log_f32(u))
    low = (h & _U(0xFFFFFFFF)).astype(np.uint32)
    a = (((low & np.uint32(0x3FFFFFFF)) >> np.uint32(6)).astype(np.float32) * _F(2.0**-24) - _F(0.5)) * _F(np.pi / 2)
    z = a * a
    s_coef, c_coef = (tuple(_F(c) for c in k) for k in (readnormals.SIN_COEFFICIENTS, readnormals.COS_COEFFICIENTS))
    s = fma32(a * z, fma32(z, fma32(z, s_coef[0], s_coef[1]), s_coef[2]), a)
    c = fma32(z * z, fma32(z, fma32(z, c_coef[0], c_coef[1]), c_coef[2]), fma32(_F(-0.5), z, _F(1.0)))
    return _rotated(r, c, s, low >> np.uint32(30))


def _rotated(r, c, s, quadrant) -> tuple[np.ndarray, np.ndarray]:
    """r times (cos, sin) of the angle whose offset has (c, s), rotated by quadrant * 90 degrees."""
    cos_t = np.choose(quadrant, [c, -s, -c, s])
    sin_t = np.choose(quadrant, [s, c, -s, -c])
    return r * cos_t, r * sin_t


def quantize(v: np.ndarray, bound: np.ndarray, levels: int) -> np.ndarray:
    """Signed symmetric uniform quantizer; levels = 0 only clips."""
    bound = np.asarray(bound, np.float32)
    clipped = np.clip(v, -bound, bound)
    if levels == 0:
        return clipped
    return np.rint(clipped * (_F(levels) / bound)) * (bound / _F(levels))


def dac(x: np.ndarray, grid: TileGrid, mode: str, bounds: np.ndarray, levels: int):
    """Per row block: divide by the block's bound, clip to [-1, 1], quantize.
    Returns (xq (B, n_in), scale (B, P), squared norms of xq blocks (B, P))."""
    n_batch, n_p = x.shape[0], grid.shape[0]
    xq = np.empty_like(x)
    scale = np.ones((n_batch, n_p), np.float32)
    sq = np.zeros((n_batch, n_p), np.float32)
    for p in range(n_p):
        cols = slice(int(grid.row_edges[p]), int(grid.row_edges[p + 1]))
        block = x[:, cols]
        if mode == "none":
            xq[:, cols] = block
        else:
            if mode == "dynamic":
                peak = np.abs(block).max(axis=1)
                scale[:, p] = np.where(peak > 0, peak, _F(1.0))
            else:
                scale[:, p] = bounds[p]
            normalized = block / scale[:, p : p + 1]
            if levels:
                xq[:, cols] = np.rint(np.clip(normalized, -1, 1) * _F(levels)) * (_F(1.0) / _F(levels))
            else:
                xq[:, cols] = np.clip(normalized, -1, 1)
        sq[:, p] = lane_sum_of_squares(xq[:, cols])
    return xq, scale, sq


def lane_sum_of_squares(v: np.ndarray) -> np.ndarray:
    """Row sums of v**2 in the kernel's order: element i into lane i % SQ_LANES, lanes in order."""
    n_batch, n = v.shape
    padded = np.zeros((n_batch, -(-n // SQ_LANES) * SQ_LANES), np.float32)
    padded[:, :n] = v * v
    lanes = np.zeros((n_batch, SQ_LANES), np.float32)
    for group in padded.reshape(n_batch, -1, SQ_LANES).transpose(1, 0, 2):
        lanes = lanes + group
    total = np.zeros(n_batch, np.float32)
    for lane in range(SQ_LANES):
        total = total + lanes[:, lane]
    return total


def mvm(tiles: TileArray, x: np.ndarray, first_vector: int, noise_seed: int | None = None) -> np.ndarray:
    """What ``tiles.mvm(x)`` returns when ``tiles.reads == first_vector``; does not change tiles.
    Also sets ``mvm.rereads`` to the bound-management re-reads it made. ``noise_seed``: draw the
    read noise from this seed's streams instead of the chip's, without the drift-compensation
    gain (a compensation probe read, ``compensation.probe_seed``)."""
    cfg, grid = tiles.cfg, tiles.grid
    dev = cfg.device
    x = np.asarray(x, np.float32)
    mvm.rereads = 0
    seed = tiles.seed if noise_seed is None else noise_seed
    drift_gain = tiles.gain if noise_seed is None else None
    n_batch, n_out = x.shape[0], grid.n_out
    n_p = grid.shape[0]
    half = (n_out + 1) // 2

    xq, dac_scale, sq = dac(x, grid, cfg.tile.dac.range, tiles.dac_bounds, cfg.tile.dac.levels)
    g_min, g_max = cells.span(cfg)  # a cell of N devices per polarity spans N device ranges
    span = _F(g_max - g_min)
    # converter units: normalized conductances, or (weight_scale none) raw weight units
    unscaled = cfg.mapping.weight_scale == "none"
    gain = np.repeat(tiles.scales, np.diff(grid.row_edges), axis=0) if unscaled else None
    out_scales = np.ones_like(tiles.scales) if unscaled else tiles.scales
    programmed = tiles.programmed()
    devices_now = tiles.devices_now(programmed)  # (N, 2, n_in, n_out) uS
    g_read = cells.epoch_conductances(devices_now, programmed, dev, tiles.t_s, tiles.seed, tiles.epoch)
    if cfg.tile.wire_resistance_ohm > 0:  # the first-order model, itself tested against the exact nodal solver
        g_read = irdrop.seen_conductances(g_read, grid, cfg.tile.wire_resistance_ohm)
    g_t = (g_read[0] - g_read[1]) / span
    if unscaled:
        g_t = g_t * gain
    sigma = cells.read_noise_std(devices_now, programmed, dev, tiles.t_s)  # (2, n_in, n_out), uS, per read
    per_device = cfg.tile.read_noise_path == "per_device"
    noiseless = not per_device and not np.any(sigma > 0) and cfg.tile.out_noise == 0
    if noiseless and cfg.tile.dac.range == "none" and cfg.tile.adc.range == "none":
        g_scaled = g_t * expand_rows(out_scales, grid)  # exact: the scales folded in, a GEMM per row block
        out = blas.matmul(x, g_scaled, grid.row_edges)
        return out if drift_gain is None else out * drift_gain
    y = np.empty((n_p, n_batch, n_out), np.float32)
    blocks = blas.layout(grid.row_edges)
    blas.block_products(blas.widen(xq, blocks), blas.with_tail(g_t, blocks.tail), blocks, y)

    sigma_t = (sigma[0] / span, sigma[1] / span) if gain is None else (sigma[0] / span * gain, sigma[1] / span * gain)
    span2 = _F((g_max - g_min) ** 2)
    var_t = (sigma[0] * sigma[0] + sigma[1] * sigma[1]) / span2
    var_t = var_t if gain is None else var_t * (gain * gain)
    var_const = _F(2.0) * sigma.flat[0] * sigma.flat[0] / span2 if device.read_noise_is_constant(dev) and gain is None else None
    if per_device:
        purpose = rng.PURPOSE_OUTPUT
        for p in range(n_p):
            key = rng.stream_key(seed, rng.PURPOSE_READ_DEVICE, p)
            r0, r1 = int(grid.row_edges[p]), int(grid.row_edges[p + 1])
            vectors = np.arange(first_vector, first_vector + n_batch, dtype=np.uint64)[:, None]
            for i in range(r0, r1):
                counters = (vectors * _U(r1 - r0) + _U(i - r0)) * _U(n_out) + np.arange(n_out, dtype=np.uint64)
                z_pos, z_neg = read_normal_pairs(key, counters)
                noise = sigma_t[0][i] * z_pos - sigma_t[1][i] * z_neg
                nonzero = xq[:, i] != 0
                y[p, nonzero] = y[p, nonzero] + xq[nonzero, i : i + 1] * noise[nonzero]
        read_var = np.zeros_like(y)
    else:
        purpose = rng.PURPOSE_READ
        if var_const is not None:
            read_var = (var_const * sq.T)[:, :, None] * np.ones(n_out, np.float32)
        else:
            read_var = np.empty((n_p, n_batch, n_out), np.float32)
            blas.block_products(blas.widen(xq * xq, blocks), blas.with_tail(var_t, blocks.tail), blocks, read_var)
    out_var = _F(cfg.tile.out_noise**2)

    bound_col = tiles.adc_bounds[:, grid.col_block_of()]
    adc_out = np.empty((n_p, n_batch, n_out), np.float32)
    saturated = np.zeros((n_batch, n_p, grid.shape[1]), bool)
    for p in range(n_p):
        # output j < half takes the first normal of counter j, output j >= half the second of
        # j - half; with zero variance the noise adds exactly 0 (the kernel then skips drawing)
        key = rng.stream_key(seed, purpose, p)
        counters = np.arange(first_vector, first_vector + n_batch, dtype=np.uint64)[:, None] * _U(half)
        z0, z1 = read_normal_pairs(key, counters + np.arange(half, dtype=np.uint64))
        z = np.concatenate([z0, z1], axis=1)[:, :n_out]
        v = y[p] + np.sqrt(read_var[p] + out_var) * z
        for q in range(grid.shape[1]):
            cols = slice(int(grid.col_edges[q]), int(grid.col_edges[q + 1]))
            saturated[:, p, q] = np.any(np.abs(v[:, cols]) > bound_col[p, cols], axis=1)
        if cfg.tile.adc.range != "none":
            v = quantize(v, bound_col[p], cfg.tile.adc.levels)
        adc_out[p] = v
    unit_scale = np.repeat(dac_scale[:, :, None], grid.shape[1], axis=2)  # (B, P, Q)
    if cfg.tile.bound_management == "iterative":
        noise = (sigma_t, None) if per_device else (None, var_const if var_const is not None else var_t)
        mvm.rereads = _bound_management(tiles, seed, x, first_vector, saturated, dac_scale, g_t, noise, out_var, adc_out, unit_scale)
    out = np.zeros((n_batch, n_out), np.float32)
    col_block = grid.col_block_of()
    for p in range(n_p):
        out = out + (adc_out[p] * unit_scale[:, p, col_block]) * out_scales[p]
    return out if drift_gain is None else out * drift_gain  # drift compensation, digital


def _bound_management(tiles: TileArray, seed: int, x, first_vector, saturated, dac_scale, g_t, noise, out_var, adc_out,
                      unit_scale) -> int:  # fmt: skip
    """aihwkit's iterative bound management, in rounds as ``rereads`` runs it: round n reads every
    tile (p, q) of vector b still saturated at input scale dac_scale[b, p] * 2^n, while an output
    exceeds the ADC bound and the reduction is within the limits. The vectors of row block p read
    in a round form one BLAS product (``blas.product``, as the kernels call it). Writes the final
    ADC outputs into adc_out (P, B, n_out) and each tile's last input scale into unit_scale
    (B, P, Q); returns the number of tile re-reads. The noise comes from ``seed``'s re-read streams."""
    cfg, grid = tiles.cfg, tiles.grid
    tile = cfg.tile
    levels = tile.dac.levels
    limit = _F(min(tile.bm_max_factor, tile.bm_max_res * levels) if levels > 0 else tile.bm_max_factor)
    n_out, (n_p, n_q) = grid.n_out, grid.shape
    blocks = blas.layout(grid.row_edges)
    g_rows = blas.with_tail(g_t, blocks.tail)
    (sigma_t, var) = noise
    var_rows = blas.with_tail(var, blocks.tail) if np.ndim(var) == 2 else None
    noisy = (sigma_t is None and var is not None and np.any(var > 0)) or out_var > 0
    vectors = np.flatnonzero(saturated.any(axis=(1, 2)))
    active = saturated[vectors].copy()  # (K, P, Q)
    rereads = 0
    reduction, tile_round = _F(1.0), 0
    while reduction <= limit:
        reduction, tile_round = reduction * _F(2.0), tile_round + 1
        for p in range(n_p):
            chosen = [k for k in range(len(vectors)) if active[k, p].any()]
            if not chosen:
                continue
            r0, r1 = int(grid.row_edges[p]), int(grid.row_edges[p + 1])
            width = int(blocks.edges[p + 1] - blocks.edges[p])
            xq = np.zeros((len(chosen), width), np.float32)
            for n, k in enumerate(chosen):
                block = x[vectors[k], r0:r1] / (dac_scale[vectors[k], p] * reduction)
                if tile.dac.range == "none":
                    xq[n, : r1 - r0] = block
                elif levels:
                    xq[n, : r1 - r0] = np.rint(np.clip(block, -1, 1) * _F(levels)) * (_F(1.0) / _F(levels))
                else:
                    xq[n, : r1 - r0] = np.clip(block, -1, 1)
            acc = np.empty((len(chosen), n_out), np.float32)
            blas.product(xq, g_rows[r0 : r0 + width], acc)
            variance = np.zeros_like(acc)
            if var_rows is not None:
                blas.product(xq * xq, var_rows[r0 : r0 + width], variance)
            for n, k in enumerate(chosen):
                b = vectors[k]
                for q in np.flatnonzero(active[k, p]).tolist():
                    c0, c1 = int(grid.col_edges[q]), int(grid.col_edges[q + 1])
                    round_base = (_U(first_vector + b) * _U(n_q) + _U(q)) * _U(BM_ROUNDS) + _U(tile_round)
                    v = acc[n, c0:c1].copy()
                    if sigma_t is not None:
                        key = rng.stream_key(seed, rng.PURPOSE_BM_DEVICE, p)
                        for i in range(r1 - r0):
                            if xq[n, i] == 0:
                                continue
                            counters = (round_base * _U(r1 - r0) + _U(i)) * _U(n_out) + np.arange(c0, c1, dtype=np.uint64)
                            z_pos, z_neg = read_normal_pairs(key, counters)
                            v = v + xq[n, i] * (sigma_t[0][r0 + i, c0:c1] * z_pos - sigma_t[1][r0 + i, c0:c1] * z_neg)
                    read_var = variance[n, c0:c1]
                    if var_rows is None and sigma_t is None and var is not None:
                        sq = _F(0.0)
                        for i in range(r1 - r0):
                            sq = _F(sq + xq[n, i] * xq[n, i])
                        read_var = np.full(c1 - c0, var * sq, np.float32)
                    if noisy:
                        half = (c1 - c0 + 1) // 2  # a pair per two outputs of the tile
                        z0, z1 = read_normal_pairs(rng.stream_key(seed, rng.PURPOSE_BM_READ, p), round_base * _U((n_out + 1) // 2) + np.arange(half, dtype=np.uint64))
                        v = v + np.sqrt(read_var + out_var) * np.concatenate([z0, z1])[: c1 - c0]
                    adc_out[p, b, c0:c1] = quantize(v, tiles.adc_bounds[p, q], levels=tile.adc.levels)
                    unit_scale[b, p, q] = dac_scale[b, p] * reduction
                    active[k, p, q] = bool(np.any(np.abs(v) > tiles.adc_bounds[p, q])) and reduction <= limit
                    rereads += 1
    return rereads
