"""What one input vector costs on a tiled weight matrix: operation counts, energy, latency, area.

The counting model (docs/cost.md):

- a weight is 2N devices (``mapping.devices_per_polarity`` = N): a tile holds 2N devices per cross-point and
  reads them all;
- every tile has one DAC per row and ``ceil(cols / cost.columns_per_adc)`` ADCs, multiplexed over its columns;
- one input vector read by a matrix of P x Q tiles is one read of each tile: a tile with r used rows and
  c used columns converts r inputs (DAC), reads 2 r c devices (G+ and G-), converts c outputs (ADC) and
  accumulates those c outputs digitally (the partial sums of the row blocks and the output register);
- programming (once, not per inference): each pulse and each verify read, priced per device (``programming_cost``);
- a bound-management re-read is one more read of one tile, costed with the matrix's mean tile (r, c);
- the tiles of a matrix work in parallel: a vector takes one array read plus the ADC conversions of the
  busiest ADC of the widest tile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import ChipConfig
from .grid import TileGrid


@dataclass(frozen=True)
class Counts:
    """Operations, as floats (a re-read count per inference is a mean over the measured inputs)."""

    tile_reads: float
    dac_conversions: float
    adc_conversions: float
    device_reads: float

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple())))

    def scaled(self, factor: float) -> Counts:
        return Counts(*(factor * a for a in self.as_tuple()))

    def as_tuple(self) -> tuple[float, float, float, float]:
        return self.tile_reads, self.dac_conversions, self.adc_conversions, self.device_reads


NO_COUNTS = Counts(0.0, 0.0, 0.0, 0.0)


def vector_counts(grid: TileGrid, devices_per_polarity: int = 1) -> Counts:
    """The operations of one input vector through every tile of ``grid`` (2N devices read per weight)."""
    n_p, n_q = grid.shape
    return Counts(float(n_p * n_q), float(grid.n_in * n_q), float(grid.n_out * n_p), float(2 * devices_per_polarity * grid.n_in * grid.n_out))


def reread_counts(grid: TileGrid, devices_per_polarity: int = 1) -> Counts:
    """The operations of one bound-management re-read: one tile of the grid's mean size."""
    n_p, n_q = grid.shape
    rows, cols = grid.n_in / n_p, grid.n_out / n_q
    return Counts(1.0, rows, cols, 2 * devices_per_polarity * rows * cols)


def energy_pj(counts: Counts, cfg: ChipConfig) -> dict[str, float]:
    """Energy of ``counts`` by part (dac, adc, array, accumulate), pJ; each part linear in its table entry."""
    cost, tile = cfg.cost, cfg.tile
    return {
        "dac": counts.dac_conversions * cost.dac_bits(tile.dac.bits) * cost.dac_energy_pj_per_bit,
        "adc": counts.adc_conversions * cost.adc_energy_at(tile.adc.bits),
        "array": counts.device_reads * cost.cell_read_energy_fj * 1e-3,
        "accumulate": counts.adc_conversions * cost.accumulate_energy_pj,
    }


def adcs_per_tile(cfg: ChipConfig) -> int:
    return math.ceil(cfg.tile.cols / cfg.cost.columns_per_adc)


def vector_latency_ns(grid: TileGrid, cfg: ChipConfig) -> float:
    """Time of one input vector (or one re-read) on ``grid``: its tiles read in parallel, then each ADC
    converts its share of the widest tile's columns one after another, ns."""
    widest = int(np.diff(grid.col_edges).max())
    return cfg.cost.array_read_latency_ns + math.ceil(widest / adcs_per_tile(cfg)) * cfg.cost.adc_latency_ns


def tile_area_um2(cfg: ChipConfig) -> dict[str, float]:
    """Area of one whole tile by part (cells, dac, adc), um^2: every tile is built full size."""
    cost, tile = cfg.cost, cfg.tile
    return {
        "cells": 2 * cfg.mapping.devices_per_polarity * tile.rows * tile.cols * cost.cell_area_um2,
        "dac": tile.rows * cost.dac_bits(tile.dac.bits) * cost.dac_area_um2_per_bit,
        "adc": adcs_per_tile(cfg) * cost.adc_area_at(tile.adc.bits),
    }


def programming_cost(pulses: float, reads: float, cfg: ChipConfig) -> dict[str, float]:
    """Energy (pJ) and time (ns) of programming: ``pulses`` pulses and ``reads`` verify reads, one device at a time
    (a pessimistic serial bound: chips program rows or columns in parallel)."""
    cost = cfg.cost
    return {"programming_energy_pj": pulses * cost.pulse_energy_pj,
            "programming_time_ns": pulses * cost.pulse_latency_ns + reads * cost.verify_read_latency_ns}  # fmt: skip
