"""The cost of an inference on a mapped chip, per layer and in total: counts of tiles, input vectors
(MVMs), tile reads, DAC and ADC conversions, device reads and bound-management re-reads, and from
them energy, latency and area (``ChipConfig.cost``; the model in ``crossbar.cost`` and docs/cost.md).

Input vectors and re-reads per inference are *measured*: ``measure_cost`` runs inputs through the
chip and reads every array's counters (a conv layer reads out_h x out_w vectors per image, a
recurrent layer some per time step; re-reads depend on the data), then puts the counters back, so
the chip reads on exactly as it would have.

A transformer's attention multiplies activations by activations (the scores and the context): those
products hold no stored weights and run digitally, in float32. They are counted apart, in
multiply-accumulates (MACs) per inference, beside the analog layers' MACs (input vectors x inputs x
outputs of each matrix), so that the analog share of the work is visible.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from ..crossbar import cost as tile_cost
from ..crossbar.cost import NO_COUNTS, Counts
from .chip import AnalogModel, VirtualChip

ENERGY_PARTS = ("dac", "adc", "array", "accumulate")


@dataclass(frozen=True)
class LayerCost:
    """One analog layer, per inference: energy in pJ by part, latency in ns, area in um^2."""

    name: str
    tiles: int
    vectors: float  # input vectors (MVMs) per inference, summed over the layer's matrices
    rereads: float  # bound-management tile re-reads per inference (mean over the measured inputs)
    counts: Counts  # tile reads, conversions and device reads, re-reads included
    energy_pj: dict[str, float]
    latency_ns: float
    area_um2: float
    macs: float = 0.0  # analog multiply-accumulates per inference: vectors x inputs x outputs of each matrix

    @property
    def total_energy_pj(self) -> float:
        return sum(self.energy_pj.values())


@dataclass(frozen=True)
class ChipCost:
    """Every analog layer's cost and the totals: energies add, layers run one after another, areas add."""

    layers: list[LayerCost]
    samples: int  # inputs the counts were measured on
    digital_macs: dict[str, float] = field(default_factory=dict)  # attention module -> score and context MACs per inference
    programming: dict[str, float] | None = None  # program-and-verify, once: pulses, verify reads, energy (pJ), time (ns)

    @property
    def energy_pj(self) -> float:
        return sum(layer.total_energy_pj for layer in self.layers)

    @property
    def latency_ns(self) -> float:
        return sum(layer.latency_ns for layer in self.layers)

    @property
    def area_um2(self) -> float:
        return sum(layer.area_um2 for layer in self.layers)

    def totals(self) -> dict[str, float]:
        """The whole network per inference (energies in pJ by part, latency in ns, area in um^2)."""
        counts = sum((layer.counts for layer in self.layers), NO_COUNTS)
        return {
            "tiles": sum(layer.tiles for layer in self.layers),
            "vectors": sum(layer.vectors for layer in self.layers),
            "tile_reads": counts.tile_reads,
            "dac_conversions": counts.dac_conversions,
            "adc_conversions": counts.adc_conversions,
            "device_reads": counts.device_reads,
            "bm_rereads": sum(layer.rereads for layer in self.layers),
            **{f"energy_{part}_pj": sum(layer.energy_pj[part] for layer in self.layers) for part in ENERGY_PARTS},
            "energy_pj": self.energy_pj,
            "latency_ns": self.latency_ns,
            "area_um2": self.area_um2,
            "analog_macs": self.analog_macs,
            "digital_macs": sum(self.digital_macs.values()),
            "analog_share": self.analog_share,
        }

    @property
    def analog_macs(self) -> float:
        return sum(layer.macs for layer in self.layers)

    @property
    def analog_share(self) -> float:
        """The fraction of the inference's multiply-accumulates that the tiles do (1 without digital products)."""
        total = self.analog_macs + sum(self.digital_macs.values())
        return self.analog_macs / total if total else 1.0


def chip_cost(chip: VirtualChip, vectors: dict[str, list[float]], rereads: dict[str, list[float]], samples: int,
              digital_macs: dict[str, float] | None = None) -> ChipCost:  # fmt: skip
    """The cost of an inference given, per layer and matrix, the input vectors and re-reads per inference
    (and per attention module, the digital products' MACs per inference)."""
    cfg = chip.cfg
    n_cell = cfg.mapping.devices_per_polarity
    tile_area = sum(tile_cost.tile_area_um2(cfg).values())
    layers = []
    for name, layer in chip.layers.items():
        counts, latency, tiles, macs = NO_COUNTS, 0.0, 0, 0.0
        for matrix, n_vectors, n_rereads in zip(layer.matrices(), vectors[name], rereads[name]):
            grid = matrix.tiles.grid
            counts = counts + tile_cost.vector_counts(grid, n_cell).scaled(n_vectors) + tile_cost.reread_counts(grid, n_cell).scaled(n_rereads)
            latency += (n_vectors + n_rereads) * tile_cost.vector_latency_ns(grid, cfg)
            tiles += grid.shape[0] * grid.shape[1]
            macs += n_vectors * grid.n_in * grid.n_out
        energy = tile_cost.energy_pj(counts, cfg)
        layers.append(LayerCost(name, tiles, sum(vectors[name]), sum(rereads[name]), counts, energy, latency, tiles * tile_area, macs))
    return ChipCost(layers, samples, dict(digital_macs or {}), programming_cost(chip))


def programming_cost(chip: VirtualChip) -> dict[str, float] | None:
    """Program-and-verify's pulses and verify reads over the whole chip (each device's own count, confirming reads
    included) and their energy and time (``crossbar.cost.programming_cost``); None after one-shot programming."""
    report = chip.programming_report()
    if report is None:
        return None
    return {"devices": report["devices"], "converged": report["converged"], "pulses": report["pulses"],
            "verify_reads": report["verify_reads"], **tile_cost.programming_cost(report["pulses"], report["verify_reads"], chip.cfg)}  # fmt: skip


@dataclass(frozen=True)
class Snapshot:
    """Every array's (reads, bm_rereads), in the chip's matrix order, and every attention module's MAC counter."""

    matrices: list[tuple[int, int]]
    macs: dict[str, int]


def counter_snapshot(chip: VirtualChip) -> Snapshot:
    """Every array's read and re-read counters and every attention module's MAC counter now (for ``cost_since``)."""
    return Snapshot([(m.tiles.reads, m.tiles.bm_rereads) for m in chip.matrices()], {n: a.macs for n, a in chip.attention.items()})


def cost_since(chip: VirtualChip, snapshot: Snapshot, samples: int) -> ChipCost:
    """The cost of one inference from the reads since ``snapshot``, made while ``samples`` inputs ran:
    vectors and re-reads per inference are the counts divided by ``samples``."""
    if samples < 1:
        raise ValueError("measuring the cost of an inference needs at least one input sample")
    deltas = iter([(m.tiles.reads - r, m.tiles.bm_rereads - b) for m, (r, b) in zip(chip.matrices(), snapshot.matrices)])
    vectors, rereads = {}, {}
    for name, layer in chip.layers.items():
        per_matrix = [next(deltas) for _ in layer.matrices()]
        vectors[name] = [reads / samples for reads, _ in per_matrix]
        rereads[name] = [extra / samples for _, extra in per_matrix]
    digital = {name: (attention.macs - snapshot.macs[name]) / samples for name, attention in chip.attention.items()}
    return chip_cost(chip, vectors, rereads, samples, digital)


@contextlib.contextmanager
def counters_restored(chip: VirtualChip) -> Iterator[None]:
    """Inside: read the chip freely; on exit every array's read and re-read counters (and every attention
    module's MAC counter) are as on entry."""
    saved = counter_snapshot(chip)
    try:
        yield
    finally:
        for matrix, (reads, rereads) in zip(chip.matrices(), saved.matrices):
            matrix.tiles.reads, matrix.tiles.bm_rereads = reads, rereads
        for name, attention in chip.attention.items():
            attention.macs = saved.macs[name]


@torch.no_grad()
def measure_cost(model: AnalogModel, x: torch.Tensor, batch_size: int = 256) -> ChipCost:
    """Run the inputs ``x`` (samples first) through the chip and cost one inference from the counters
    (``cost_since``). The chip's counters are left as they were (its later reads draw the same noise)."""
    if len(x) == 0:
        raise ValueError("measuring the cost of an inference needs at least one input sample")
    chip = model.chip
    with counters_restored(chip):
        snapshot = counter_snapshot(chip)
        was_training = model.training
        model.eval()
        try:
            for start in range(0, len(x), batch_size):
                model(x[start : start + batch_size])
        finally:
            model.train(was_training)
        return cost_since(chip, snapshot, len(x))


def format_cost(cost: ChipCost) -> str:
    """A table per layer and the totals: counts per inference, energy (nJ), latency (us), area (mm^2)."""
    width = max([24, *(len(layer.name) for layer in cost.layers)])
    head = (f"{'layer':<{width}} {'tiles':>5} {'MVMs':>8} {'tile reads':>11} {'DAC conv.':>11} {'ADC conv.':>11} "
            f"{'BM rereads':>10} {'energy nJ':>10} {'latency us':>10} {'area mm2':>9}")  # fmt: skip
    lines = [head, "-" * len(head)]

    def row(label: str, tiles: int, vectors: float, counts: Counts, rereads: float, energy: float, latency: float, area: float) -> str:
        return (f"{label:<{width}} {tiles:>5} {vectors:>8.6g} {counts.tile_reads:>11.6g} {counts.dac_conversions:>11.4g} "
                f"{counts.adc_conversions:>11.4g} {rereads:>10.4g} {energy * 1e-3:>10.4g} {latency * 1e-3:>10.4g} {area * 1e-6:>9.4g}")  # fmt: skip

    for layer in cost.layers:
        lines.append(row(layer.name, layer.tiles, layer.vectors, layer.counts, layer.rereads, layer.total_energy_pj,
                         layer.latency_ns, layer.area_um2))  # fmt: skip
    totals = cost.totals()
    lines.append("-" * len(head))
    counts = Counts(totals["tile_reads"], totals["dac_conversions"], totals["adc_conversions"], totals["device_reads"])
    lines.append(row("total", int(totals["tiles"]), totals["vectors"], counts, totals["bm_rereads"], cost.energy_pj,
                     cost.latency_ns, cost.area_um2))  # fmt: skip
    parts = ", ".join(f"{part} {totals[f'energy_{part}_pj'] * 1e-3:.4g}" for part in ENERGY_PARTS)
    lines.append(f"energy per inference by part (nJ): {parts}; counts per inference over {cost.samples} input(s)")
    if cost.digital_macs:
        lines.append("digital products (attention scores and context, float32, not on tiles; MACs per inference):")
        lines += [f"  {name:<{width}} {macs:>14,.0f}" for name, macs in cost.digital_macs.items()]
    lines.append(f"MACs per inference: analog {cost.analog_macs:,.0f}, digital {sum(cost.digital_macs.values()):,.0f}; "
                 f"analog share {100 * cost.analog_share:.1f}%")  # fmt: skip
    if cost.programming is not None:
        p = cost.programming
        lines.append(f"programming (once, program-and-verify): {p['pulses']:.6g} pulses and {p['verify_reads']:.6g} verify reads on "
                     f"{p['devices']:.6g} devices ({p['converged']:.2%} converged): {p['programming_energy_pj'] * 1e-6:.4g} uJ, "
                     f"{p['programming_time_ns'] * 1e-9:.4g} s one device at a time")  # fmt: skip
    return "\n".join(lines)
