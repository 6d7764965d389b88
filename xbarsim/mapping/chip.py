"""map_model: a trained network onto a virtual chip; VirtualChip and AnalogModel."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import heap
from ..config import ChipConfig
from ..crossbar import cost as tile_cost
from ..crossbar.backend import NUMBA, TileBackend
from ..crossbar.laws import cells, rng
from ..crossbar_torch.backend import select
from ..errors import XbarsimError
from ..limits import check_drift_time, check_seed
from ..progress import progress_bar
from ..models import netspec
from ..models.attention import SplitAttention
from .blocks import DenoisingBlock, apply_block, block_key
from .chipfile import BlockRecord, ChipRecord, LayerRecord, MatrixRecord, write_chip
from .fold import fold_batchnorm, set_submodule
from .layers import UNMAPPABLE, AnalogLayer, analog_type_for
from .matrix import AnalogMatrix
from .serial import network_section
from .transformer import attention_modules, is_attention, prepare_encoders, projection_names, split_selected


def matrix_seed(chip_seed: int, index: int) -> int:
    """The seed of a chip's index-th weight matrix (in mapping order)."""
    return int(rng.stream_key(chip_seed, rng.PURPOSE_MATRIX, index))


@dataclass(frozen=True)
class LayerSummary:
    name: str
    kind: str
    shape: str  # e.g. "64x576 (x2 groups)"
    tiles: int
    utilization: float  # used devices / devices of the tiles
    devices: int  # devices holding weights (G+ and G-)
    energy_pj_per_vector: float  # one input vector through every matrix of the layer (cfg.cost), pJ


@dataclass
class ModelSource:
    """How to rebuild the network's structure: a description as data (``netspec``), or None when
    only the user's model can (a class of their own); ``origin`` ("module:Class") only words
    messages; the (layer, BatchNorm) pairs that were folded."""

    network: dict[str, Any] | None
    origin: str
    folded: list[list[str]] = field(default_factory=list)

    @classmethod
    def of(cls, model: nn.Module, folded: Iterable[Iterable[str]]) -> ModelSource:
        return cls(netspec.describe(model), f"{type(model).__module__}:{type(model).__qualname__}", [list(p) for p in folded])


class VirtualChip:
    """Every analog layer of a mapped network and the tiles they hold; ``attention``: the network's split
    attention modules by name, whose score and context products run digitally (``macs`` counts them)."""

    def __init__(self, cfg: ChipConfig, seed: int, layers: dict[str, AnalogLayer], attention: dict[str, SplitAttention] | None = None,
                 backend: TileBackend = NUMBA):  # fmt: skip
        self.cfg = cfg
        self.seed = seed
        self.layers = layers
        self.attention = attention or {}
        self.backend = backend  # what the arrays compute with, and where (``backend.name``, ``backend.device``)

    def matrices(self) -> Iterator[AnalogMatrix]:
        for layer in self.layers.values():
            yield from layer.matrices()

    @property
    def t_s(self) -> float:
        """Seconds since programming that the chip is at now."""
        return next(self.matrices()).tiles.t_s

    def to(self, backend: TileBackend) -> None:
        """Move every array (and digital bias) onto ``backend`` (``crossbar_torch.backend.select``), in place:
        copies of the same read arrays (nothing is programmed again); the read counters, epochs, ranges and
        compensation stay."""
        for matrix in self.matrices():
            matrix.to(backend)
        self.backend = backend

    def program(self, seed: int | None = None) -> None:
        """(Re)program every device (new write errors and faults for a new seed); resets drift."""
        self.seed = self.seed if seed is None else check_seed(seed)
        for index, matrix in enumerate(self.matrices()):
            matrix.tiles.program(matrix_seed(self.seed, index))
            heap.release()

    def drift(self, t_s: float) -> None:
        """Move every device to t_s seconds after programming (0 to ``limits.MAX_DRIFT_S``)."""
        t_s = check_drift_time(t_s)
        for matrix in self.matrices():
            matrix.tiles.drift(t_s)
            heap.release()

    def new_read_epoch(self) -> None:
        """Start a new read epoch on every array: fresh per-epoch read-noise deviations at the same
        time (and a fresh drift-compensation probe read)."""
        for matrix in self.matrices():
            matrix.tiles.new_read_epoch()

    def bm_rereads(self) -> dict[str, int]:
        """Bound-management tile re-reads per layer since programming (0 without bound management)."""
        return {name: sum(m.tiles.bm_rereads for m in layer.matrices()) for name, layer in self.layers.items()}

    def summary(self) -> list[LayerSummary]:
        rows, cols = self.cfg.tile.rows, self.cfg.tile.cols
        n_cell = self.cfg.mapping.devices_per_polarity
        out = []
        for name, layer in self.layers.items():
            tiles = used = 0
            energy = 0.0
            for matrix in layer.matrices():
                n_p, n_q = matrix.tiles.grid.shape
                tiles += n_p * n_q
                used += matrix.tiles.grid.n_in * matrix.tiles.grid.n_out
                energy += sum(tile_cost.energy_pj(tile_cost.vector_counts(matrix.tiles.grid, n_cell), self.cfg).values())
            m = layer.matrices()[0].tiles.grid
            shape = f"{m.n_out}x{m.n_in}" + (f" (x{len(layer.matrices())})" if len(layer.matrices()) > 1 else "")
            out.append(LayerSummary(name, layer.kind, shape, tiles, used / (tiles * rows * cols), 2 * n_cell * used, energy))
        return out

    def format_summary(self, energy_per_inference_pj: dict[str, float] | None = None) -> str:
        """A table per layer. The energy column (``cfg.cost``) is per inference when the layers' energies
        per inference are given (``mapping.cost.measure_cost``), else per input vector (one MVM of each matrix)."""
        rows = self.summary()
        energy_head = "nJ/inf." if energy_per_inference_pj is not None else "nJ/MVM"
        width = max([28, *(len(r.name) for r in rows)])
        head = f"{'layer':<{width}} {'kind':<10} {'matrix (out x in)':<20} {'tiles':>6} {'util.':>6} {'devices':>11} {energy_head:>9}"
        lines = [head, "-" * len(head)]
        energies = [r.energy_pj_per_vector if energy_per_inference_pj is None else energy_per_inference_pj[r.name] for r in rows]
        for r, energy in zip(rows, energies):
            lines.append(f"{r.name:<{width}} {r.kind:<10} {r.shape:<20} {r.tiles:>6} {r.utilization:>6.1%} {r.devices:>11,} {energy * 1e-3:>9.4g}")
        tiles = sum(r.tiles for r in rows)
        devices = sum(r.devices for r in rows)
        capacity = tiles * self.cfg.tile.rows * self.cfg.tile.cols * 2 * self.cfg.mapping.devices_per_polarity
        total_energy = f"{sum(energies) * 1e-3:>9.4g}" if energy_per_inference_pj is not None else f"{'':>9}"
        lines.append("-" * len(head))
        lines.append(f"{'total':<{width}} {'':<10} {'':<20} {tiles:>6} {devices / capacity:>6.1%} {devices:>11,} {total_energy}".rstrip())
        lines.append(f"chip: {self.cfg.name}, tiles {self.cfg.tile.rows}x{self.cfg.tile.cols}, seed {self.seed}, t = {self.t_s:g} s")
        if self.attention:
            lines.append(f"digital (float32, not on tiles): the score and context products of {len(self.attention)} attention "
                         f"module(s) ({', '.join(list(self.attention)[:3])}{', ...' if len(self.attention) > 3 else ''}); "
                         f"`xbarsim cost` counts their MACs")  # fmt: skip
        report = self.programming_report()
        if report is not None:
            lines.append(f"program-and-verify: {report['converged']:.2%} of {report['devices']:,.0f} devices converged, "
                         f"{report['pulses_mean']:.2f} pulses a device, residual {report['residual_mean_us']:+.3f} +- "
                         f"{report['residual_std_us']:.3f} uS (converged devices)")  # fmt: skip
        return "\n".join(lines)

    def programming_report(self) -> dict[str, float] | None:
        """Program-and-verify over the whole chip (``cells.verify_report``: convergence, pulses and verify reads, the
        residual of the converged devices); None after one-shot programming."""
        return cells.verify_report([m.tiles.verify_totals for m in self.matrices()])


class AnalogModel(nn.Module):
    """A network whose mapped layers run on a ``VirtualChip``; everything else stays digital.
    ``network`` keeps the original structure; ``chip`` programs, drifts and summarizes."""

    def __init__(self, network: nn.Module, chip: VirtualChip, source: ModelSource):
        super().__init__()
        self.network = network
        self.chip = chip
        self.source = source
        self.blocks = nn.ModuleDict()  # digital denoising blocks, by layer (see attach_block)
        self.block_layers: dict[str, str] = {}  # block key -> layer name
        self._block_hooks: dict[str, object] = {}

    def forward(self, *args, **kwargs):
        with network_section():  # one BLAS and torch thread on a busy machine (mapping.serial)
            return self.network(*args, **kwargs)

    @property
    def device(self) -> torch.device:
        """Where the chip computes: its inputs go there."""
        return torch.device(self.chip.backend.device)

    def to(self, *args, backend: str | None = None, **kwargs) -> AnalogModel:
        """Move the chip (its arrays, on the backend that runs there) and the digital network to a device, as
        ``nn.Module.to``: ``chip.to("cuda")``. ``backend`` (auto, numba, torch; default the config's
        ``runtime.backend``): ``chip.to("cpu", backend="torch")`` runs the torch backend on the CPU. A chip
        computes in float32: another dtype is refused."""
        device, dtype, non_blocking, _ = torch._C._nn._parse_to(*args, **kwargs)
        if dtype is not None and dtype != torch.float32:
            raise XbarsimError(f"a chip computes in float32; it cannot be moved to {dtype}")
        target = select(backend, self.device if device is None else device, self.chip.cfg)
        self.chip.to(target)
        return super().to(device=torch.device(target.device), non_blocking=non_blocking)

    def cuda(self, device=None) -> AnalogModel:
        return self.to("cuda" if device is None else torch.device("cuda", device) if isinstance(device, int) else device)

    def cpu(self) -> AnalogModel:
        return self.to("cpu")

    def attach_block(self, layer_name: str, block: DenoisingBlock) -> None:
        """Run ``block`` on the output of the analog layer ``layer_name`` (replacing any block there)."""
        if layer_name not in self.chip.layers:
            raise ValueError(f"{layer_name!r} is not an analog layer of this chip; choose from {', '.join(self.chip.layers)}")
        key = block_key(layer_name)
        if key in self._block_hooks:
            self._block_hooks.pop(key).remove()
        self.blocks[key] = block
        self.block_layers[key] = layer_name
        self._block_hooks[key] = self.network.get_submodule(layer_name).register_forward_hook(apply_block(block))

    def program(self, seed: int | None = None) -> None:
        self.chip.program(seed)

    def drift(self, t_s: float) -> None:
        self.chip.drift(t_s)

    def new_read_epoch(self) -> None:
        self.chip.new_read_epoch()

    def summary(self) -> str:
        return self.chip.format_summary()

    def save(self, path: str | Path, progress: bool | None = None) -> None:
        """Write the chip file (HDF5) atomically: the old file survives a failed save.
        ``progress``: a bar per layer (True), none (False), or only after a few seconds (None)."""
        write_chip(path, self.record(), progress)

    def record(self) -> ChipRecord:
        """Everything the chip file holds, as data."""
        layers = [
            LayerRecord(name, layer.kind, layer.spec(), [
                MatrixRecord(m.tiles.state(), None if m.bias is None else m.bias.cpu().numpy(), m.bias_in_rows) for m in layer.matrices()
            ])
            for name, layer in self.chip.layers.items()
        ]  # fmt: skip
        blocks = [
            BlockRecord(self.block_layers[key], block.spec(), {n: t.detach().cpu().numpy() for n, t in block.state_dict().items()})
            for key, block in self.blocks.items()
        ]
        digital = {key: tensor.detach().cpu().numpy() for key, tensor in self.network.state_dict().items()}
        source = self.source
        return ChipRecord(self.chip.cfg.chip_only(), self.chip.seed, source.network, source.origin, source.folded, digital, layers, blocks)


def _selected(model: nn.Module, layers: Iterable[str] | None, split: list[str]) -> list[str]:
    """Names of the modules to map (a split attention's name stands for its four projections); errors name
    the module path and type."""
    modules = dict(model.named_modules())
    if layers is not None:
        names = [n for name in layers for n in (projection_names(name) if name in split else [name])]
        for name in names:
            if name not in modules:
                raise ValueError(f"no module named {name!r} in {type(model).__name__}")
            if analog_type_for(modules[name]) is None:
                raise ValueError(f"module {name!r} of type {type(modules[name]).__name__} cannot be mapped onto tiles")
        return names
    names, skip = [], ()
    for name, module in modules.items():
        if skip and name.startswith(skip):
            continue
        if analog_type_for(module) is not None:
            names.append(name)
            skip = (name + ".",)
        elif isinstance(module, UNMAPPABLE):
            raise ValueError(
                f"module {name!r} of type {type(module).__name__} cannot be mapped onto tiles; "
                f"pass layers=[...] to map only the others and leave it digital"
            )
    return names


def _copy_for_mapping(model: nn.Module, layers: list[str] | None) -> nn.Module:
    """A deep copy of ``model`` in which the layers that will be mapped share the original's weight tensors
    instead of copying them: mapping only reads them (folding a BatchNorm and splitting an attention make
    new tensors) and then replaces those layers, so the copy never holds a second set of the weights that
    go on tiles (a GPT-2-small-sized network: 324 MiB less at the peak). A tensor that a digital layer
    uses too (tied weights) is copied as before."""
    modules = dict(model.named_modules())
    attention = [n for n in (modules if layers is None else layers) if is_attention(modules.get(n))]
    roots = (*attention, *_selected(model, None if layers is None else [n for n in layers if n not in attention], []))
    owners: dict[int, list[str]] = {}
    for name, module in modules.items():
        for tensor in module.parameters(recurse=False):
            owners.setdefault(id(tensor), []).append(name)
    inside = lambda owner: any(owner == root or owner.startswith(f"{root}.") or not root for root in roots)  # noqa: E731
    shared = {id(t): t for root in roots for t in modules[root].parameters() if all(inside(o) for o in owners[id(t)])}
    return copy.deepcopy(model, shared)


def map_model(model: nn.Module, cfg: ChipConfig, seed: int = 0, layers: Iterable[str] | None = None,
              progress: bool | None = None, device=None, backend: str | None = None) -> AnalogModel:  # fmt: skip
    """Map every supported layer of ``model`` (or only ``layers``, by module name) onto a chip.

    The model is copied and put in eval mode; BatchNorms that follow a conv or linear layer are
    folded into it first (``cfg.mapping.fold_batchnorm``). Linear (and its subclasses, and classes
    registered with ``register_linear``), Conv1d/2d, LSTM, GRU and RNN layers are supported, and
    MultiheadAttention, whose four projections each become an analog Linear (``mapping.transformer``);
    anything else stays digital. ``progress``: a bar per layer (True), none (False), or only once
    mapping has taken a few seconds (None). The chip runs on ``device`` (default the CPU) with ``backend``
    (auto, numba, torch; default ``cfg.runtime.backend``): it is encoded on the CPU and programmed on ``device``, once
    (programming gives the same bits everywhere).
    """
    seed = check_seed(seed)
    target = select(backend, device, cfg)  # a device or backend that cannot run is refused before any work
    layers = None if layers is None else list(layers)
    network = _copy_for_mapping(model, layers).eval()
    folded = fold_batchnorm(network) if cfg.mapping.fold_batchnorm else []
    network, split = split_selected(network, layers)
    names = _selected(network, layers, split)
    seeds = (matrix_seed(seed, k) for k in range(1 << 62))
    analog: dict[str, AnalogLayer] = {}
    for name in progress_bar(names, "map", "layer", progress):
        module = network.get_submodule(name)
        analog[name] = analog_type_for(module).from_torch(module, cfg, seeds, name, target)  # programmed where it runs
        network = set_submodule(network, name, analog[name])
        heap.release()
    prepare_encoders(network)
    chip = AnalogModel(network, VirtualChip(cfg, seed, analog, attention_modules(network)), ModelSource.of(model, folded))
    return chip.to(target.device, backend=target.name)
