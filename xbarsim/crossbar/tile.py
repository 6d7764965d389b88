"""TileArray: one weight matrix programmed onto a grid of crossbar tiles, and its noisy MVM."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import ChipConfig
from . import keep
from .backend import NUMBA, TileBackend
from .laws import cells, compensation, device, irdrop, rng
from .read import blas, blasthreads, converters
from .laws.encode import decode, encode, normalized_difference, signed_targets, targets_from_signed, weight_scales
from .grid import TileGrid
from .read.inputs import PatchRows


@dataclass(frozen=True)
class TileConductances:
    """Conductances of tile (p, q), uS, shape (rows, cols) = (inputs, outputs)."""

    p: int
    q: int
    inputs: slice
    outputs: slice
    g_pos: np.ndarray
    g_neg: np.ndarray


class TileArray:
    """A weight matrix W (out x in) on tiles: programmed conductances, drift state, converters.

    Build with ``TileArray.from_weights(W, cfg, seed)``. ``mvm(x)`` computes ``x @ W_eff.T`` the
    way the chip does, with fresh per-read noise for every input vector: vector k (counting every
    vector this array has seen since programming) always draws the same noise for a given seed,
    so results do not depend on how a batch is split into calls. Per-epoch read noise is drawn
    once per read epoch (counter ``epoch``: 0 at programming, +1 at every ``drift`` and
    ``new_read_epoch``) and folded into the conductances the kernels use. With bound management,
    ``bm_rereads`` counts the tile re-reads of saturated vectors since programming.

    What an array keeps is what its reads need: the target conductances, one number per device pair
    (``targets``, G+ or -G-: mapping puts g_min on one side of every pair), and the conductances the
    kernels use (``gdiff_t``, and the per-read noise's variances where they depend on G): 8 bytes per
    weight. The programmed conductances, the stuck devices and the conductances now are a deterministic
    function of the targets, the device config, the seed and the time (``device.program``, ``drifted``).
    The Numba backend keeps the programmed devices (and the targets as pairs) while they fit the process's
    budget (``keep``: 18-36 bytes per weight, 1.5-3 GB for a GPT-2-small-sized network);
    beyond it ``g_prog``, ``stuck``, ``g_now`` and every drift regenerate them, with the same bits.

    The device laws run on ``backend`` (``crossbar.backend``) with its ``ops``: NumPy arrays and Numba kernels (the
    default), or torch tensors on a torch device (``crossbar_torch``), where the array keeps its programmed devices
    (``backend.keeps_programmed``), so drift and read epochs run on the device from them and nothing moves to the
    host. What reads take (``gdiff_t``, the read variances, ``g_direct``, ``out_scales``, the converters'
    columns, the stream keys, the compensation gain) lives there too; ``to(backend)`` moves it. ``programmed()``,
    ``devices_now()``, ``g_prog``, ``stuck``, ``g_now`` and ``weights()`` answer in NumPy arrays on every backend.
    """

    def __init__(self, cfg: ChipConfig, grid: TileGrid, scales: np.ndarray, g_target: np.ndarray, seed: int,
                 backend: TileBackend = NUMBA):  # fmt: skip
        backend.check(cfg)
        self.cfg = cfg
        self.grid = grid
        self.backend = backend
        self.scales = scales  # (P, n_out) float32
        self.targets = signed_targets(g_target, cfg.device.g_min_us)  # (n_in, n_out) float32, uS: G+, or -G-
        del g_target  # the caller's was its only other reference (``from_weights``): the pair is not kept
        self._programmed = self._law_target = None  # the programmed devices and the target pairs, if kept (``_state``)
        self._set_units()
        n_p, n_q = grid.shape
        dac, adc = cfg.tile.dac, cfg.tile.adc
        self.dac_bounds = np.full(n_p, dac.bound if dac.bound is not None else 1.0, np.float32)
        self.adc_bounds = np.full((n_p, n_q), adc.bound if adc.bound is not None else 1.0, np.float32)
        self._set_periphery()
        self.recorder = None  # calibration: sees the raw input rows and the partial sums of every mvm
        self.ideal = False  # True: compute with the target weights, exactly (sensitivity studies)
        self.program(seed)

    @classmethod
    def from_weights(cls, weights: np.ndarray, cfg: ChipConfig, seed: int = 0, backend: TileBackend = NUMBA) -> TileArray:
        """Encode W (out x in, finite) into differential conductances and program them (reads on ``backend``)."""
        w = np.asarray(weights)
        if w.ndim != 2 or w.shape[0] == 0 or w.shape[1] == 0:
            raise ValueError(f"weights must be a non-empty 2-D (out x in) array, got shape {w.shape}")
        if not np.issubdtype(w.dtype, np.number) or not np.all(np.isfinite(w)):
            raise ValueError("weights contain NaN or Inf (or are not numeric)")
        w_t = np.ascontiguousarray(w.T, dtype=np.float32)
        grid = TileGrid.for_matrix(w_t.shape[0], w_t.shape[1], cfg.tile.rows, cfg.tile.cols)
        scales = weight_scales(w_t, grid, cfg.mapping.weight_scale)
        targets = [encode(w_t, scales, grid, cfg.device.g_min_us, cfg.device.g_max_us)]
        del w, w_t
        return cls(cfg, grid, scales, targets.pop(), seed, backend)  # no reference left here while the array programs

    # ------------------------------------------------------------------ state
    @property
    def shape(self) -> tuple[int, int]:
        """(out, in), like the torch weight."""
        return self.grid.n_out, self.grid.n_in

    @property
    def g_target(self) -> np.ndarray:
        """(2, n_in, n_out) float32 target conductances (G+, G-), uS."""
        return targets_from_signed(self.targets, self.cfg.device.g_min_us)

    def programmed(self) -> cells.Programmed:
        """Every device of every cell as programmed, (N, 2, n_in, n_out) NumPy arrays (``cells.program``): a copy of
        the kept ones, or regenerated from the targets and the seed."""
        return cells.Programmed(**{k: None if a is None else a.copy() for k, a in self._on_host(self._state()).arrays().items()})

    def _on_host(self, programmed: cells.Programmed) -> cells.Programmed:
        """``programmed`` as NumPy arrays: the same arrays on the Numba backend, one copy to the host on a torch device."""
        return cells.Programmed(**{k: None if a is None else self.backend.ops.to_numpy(a) for k, a in programmed.arrays().items()})

    def _state(self, target=None) -> cells.Programmed:
        """The programmed devices as arrays of the backend (never changed in place): kept where the backend keeps
        them or they fit ``keep``'s budget, with the target pairs, else regenerated (from ``target``,
        ``_targets_on_backend()`` when the caller has it at hand)."""
        if self._programmed is not None:
            return self._programmed
        target = self._targets_on_backend() if target is None else target
        programmed = cells.program(target, self.cfg, self.seed, self.backend.ops)
        arrays = (*programmed.arrays().values(), target)
        if self.backend.keeps_programmed or keep.claim(self, sum(a.nbytes for a in arrays if a is not None)):
            self._programmed, self._law_target = programmed, target
        return programmed

    def _targets_on_backend(self):
        """``g_target`` as an array of the backend (kept with the programmed devices)."""
        if self._law_target is not None:
            return self._law_target
        target = self.backend.asarray(self.g_target)
        if self.backend.keeps_programmed:
            self._law_target = target
        return target

    def __getstate__(self) -> dict:
        """A copy or pickle of an array whose backend keeps programmed devices only within ``keep``'s budget
        leaves them behind: the copy programs them again when it needs them (the same bits), within the budget."""
        state = dict(self.__dict__)
        if not self.backend.keeps_programmed:
            state["_programmed"] = state["_law_target"] = None
        return state

    def _forget_programmed(self) -> None:
        """Drop the kept programmed devices and target pairs (a new programming, another backend)."""
        self._programmed = self._law_target = None
        keep.release(self)

    def devices_now(self, programmed: cells.Programmed | None = None) -> list[np.ndarray]:
        """N arrays (2, n_in, n_out) float32: every device of every cell at t_s (without the per-epoch read noise), uS."""
        programmed = self.programmed() if programmed is None else programmed
        return cells.drifted(programmed, self.g_target, self.cfg.device, self.t_s, self.seed, self.drift_law)

    @property
    def g_prog(self) -> np.ndarray:
        """(2, n_in, n_out) float32: the cells' programmed conductances (the sum of their devices), uS."""
        return cells.summed(self.programmed().g_prog)

    @property
    def stuck(self) -> np.ndarray:
        """Stuck codes: (2, n_in, n_out) int8 for one device per polarity, else every device's (N, 2, n_in, n_out)."""
        programmed = self.programmed()
        return programmed.stuck[0] if programmed.devices == 1 else programmed.stuck

    @property
    def g_now(self) -> np.ndarray:
        """(2, n_in, n_out) float32 cell conductances at t_s (without the per-epoch read noise), uS."""
        return cells.summed(self.devices_now())

    def program(self, seed: int) -> None:
        """(Re)program every device from its target with write error and faults; sets the drift
        time to 0 and resets the read counter. ``programmed_crc32`` fingerprints the programmed
        state (CRC-32 of G_prog then the stuck codes)."""
        self._set_seed(seed)
        self.drift_law = device.DRIFT_LAW  # a chip programmed now drifts by the current law
        self.reads = 0
        self.bm_rereads = 0
        self.epoch = 0
        self._forget_programmed()
        programmed = self._state()
        self._fingerprint(programmed)
        self._move_to(0.0, programmed=programmed)  # the state at t = 0 (a log-normal law already has its spread then)
        self.take_reference()

    def _fingerprint(self, programmed: cells.Programmed) -> None:
        """What is kept of the programmed devices: ``programmed_crc32`` (CRC-32 of every device's G_prog then its stuck
        codes) and ``verify_totals`` (program-and-verify's sums, ``cells.verify_totals``; None after one shot)."""
        host = self._on_host(programmed)
        self.programmed_crc32 = device.programmed_checksum(host.g_prog, host.stuck)
        self.verify_totals = cells.verify_totals(host, self.backend.ops.to_numpy(self._targets_on_backend()))

    def programming_report(self) -> dict[str, float] | None:
        """Program-and-verify's outcome (``cells.verify_report``; None after one-shot programming)."""
        return cells.verify_report([self.verify_totals])

    def _set_units(self) -> None:
        """What the converters' units are: ``analog_gain`` (P, n_out) multiplies the normalized
        products into converter units (None: they are the units, weight_scale column/tile/layer;
        the tile's scale for ``none``: raw weight units), ``out_scales`` (P, n_out) turns converter
        units into weights after the ADC."""
        unscaled = self.cfg.mapping.weight_scale == "none"
        self.analog_gain = self.scales if unscaled else None
        self._scales_read = self.backend.asarray(self.scales)  # one copy on the backend serves all three
        self._analog_gain_read = self._scales_read if unscaled else None
        self.out_scales = self.backend.asarray(np.ones_like(self.scales)) if unscaled else self._scales_read

    def _set_seed(self, seed: int) -> None:
        self.seed = int(seed)
        self._keys = self._stream_keys(self.seed)

    def _stream_keys(self, seed: int):
        """(P,) uint64 keys per read-time purpose, for the read noise drawn under ``seed`` (as the backend reads them)."""
        purposes = (rng.PURPOSE_READ, rng.PURPOSE_READ_DEVICE, rng.PURPOSE_OUTPUT, rng.PURPOSE_BM_READ, rng.PURPOSE_BM_DEVICE)
        keys = {p: np.array([rng.stream_key(seed, p, b) for b in range(self.grid.shape[0])], np.uint64) for p in purposes}
        return self.backend.stream_keys(keys)

    def to(self, backend: TileBackend) -> TileArray:
        """Move what reads take onto ``backend`` (another device, or the other backend), in place: copies of
        the same arrays (the devices are not programmed again); read counters, epoch, ranges and
        compensation stay. Kept programmed devices move along to a backend that keeps them; one that keeps them,
        coming from one that does not, regenerates them when it first needs them (the next drift or read epoch)."""
        if backend is self.backend:
            return self
        backend.check(self.cfg)
        previous, self.backend = self.backend, backend
        kept = self._programmed
        self._forget_programmed()
        if kept is not None and backend.keeps_programmed:
            self._programmed = cells.Programmed(**{k: None if a is None else backend.asarray(a) for k, a in kept.arrays().items()})
        self._set_seed(self.seed)
        self._set_units()
        self._set_periphery()
        self._weights = self._device_weights = None
        moved = {name: getattr(self, name) for name in ("gdiff_rows", "read_var_rows", "g_direct_rows")}
        for name, rows in moved.items():
            setattr(self, name, None if rows is None else self._with_tail(backend.asarray(previous.to_numpy(rows)[: self.grid.n_in])))
        self.gdiff_t = self._read_array(self.gdiff_rows)
        self.read_var_t = None if self.read_var_rows is None else self._read_array(self.read_var_rows)
        self.g_direct = None if self.g_direct_rows is None else self._read_array(self.g_direct_rows)
        if self.read_sigma_t is not None:
            self.read_sigma_t = tuple(backend.asarray(previous.to_numpy(s)) for s in self.read_sigma_t)
        self.gain = self.gain  # its copy on the backend
        return self

    def drift(self, t_s: float) -> None:
        """Conductances as they are t_s seconds after programming (absolute time, not a step), in
        a new read epoch; with drift compensation on, the outputs are rescaled by a fresh probe read."""
        self.epoch += 1
        self._move_to(float(t_s))
        self._compensate()

    def new_read_epoch(self) -> None:
        """Start a new read epoch: new per-epoch read-noise deviations at the same time; with drift
        compensation on, its probe is read again (every epoch after the first measures its gain,
        so the gain follows from the drift time and the epoch)."""
        self.epoch += 1
        self._move_to(self.t_s)
        self._compensate()

    def _move_to(self, t_s: float, epoch: int | None = None, programmed: cells.Programmed | None = None) -> None:
        """Go to t_s in read epoch ``epoch`` (default: the current one); ``programmed``: the programmed devices if
        already at hand (else regenerated)."""
        self.t_s = t_s  # validated by drifted()
        dev, ops = self.cfg.device, self.backend.ops
        target = self._targets_on_backend()  # the Numba backend unpacks it from the stored targets: once a move
        programmed = self._state(target) if programmed is None else programmed
        devices_now = cells.drifted(programmed, target, dev, t_s, self.seed, self.drift_law, ops)  # every device
        g_read = cells.epoch_conductances(devices_now, programmed, dev, t_s, self.seed, self.epoch if epoch is None else epoch, ops)
        if self.cfg.tile.wire_resistance_ohm > 0:
            g_read = irdrop.seen_conductances(g_read, self.grid, self.cfg.tile.wire_resistance_ohm, ops)
        self._set_conductances(g_read, devices_now, programmed)

    # ------------------------------------------------------------------ drift compensation
    def _probe_level(self) -> np.ndarray:
        """mean |output| of the probe read now, with its own read noise (no inference read used)."""
        x = self.backend.asarray(compensation.probe_inputs(self.seed, self.grid.n_in))
        with blasthreads.pooled():  # a chip's drift reads a probe per array: small products, one BLAS thread each
            outputs = self._mvm(len(x), self.backend.rows(x), (self._stream_keys(compensation.probe_seed(self.seed, self.t_s)), 0))
        return compensation.response_level(self.backend.to_numpy(outputs), self.cfg.drift_compensation)

    @property
    def gain(self) -> np.ndarray | None:
        """The drift compensation's gain in use (float32: a scalar, or one per output column), or None."""
        return self._gain

    @gain.setter
    def gain(self, value: np.ndarray | None) -> None:
        self._gain = value
        self._gain_read = None if value is None else self.backend.asarray(np.asarray(value, np.float32))

    def take_reference(self) -> None:
        """Read the drift-compensation probe at t = 0 with the current ranges and compensation
        mode (the reference), then return to t_s and compensate."""
        self.gain = None
        self.reference = None
        if self.cfg.drift_compensation == "none":
            return
        t_s, epoch = self.t_s, self.epoch
        if (t_s, epoch) != (0, 0):
            self._move_to(0.0, 0)  # as read right after programming
        self.reference = self._probe_level()
        if (t_s, epoch) != (0, 0):
            self._move_to(t_s)
            self._compensate()

    def _compensate(self) -> None:
        self.gain = None if self.reference is None else compensation.gain(self.reference, self._probe_level())

    def _set_conductances(self, g_read: np.ndarray, devices_now: list[np.ndarray], programmed: cells.Programmed) -> None:
        """From the cell conductances as this epoch's reads see them (g_read: with the per-epoch read noise), every
        device now (``devices_now``, N arrays (2, n_in, n_out)) and as programmed, set what the kernels use, in converter units
        (conductances divided by g_max - g_min, times ``analog_gain`` if any)."""
        self._weights = self._device_weights = None  # the effective weights of the previous conductances
        gain = None if self.analog_gain is None else self.backend.expand_rows(self._analog_gain_read, self.grid)
        self.gdiff_rows = self.backend.normalized_rows(g_read, *cells.span(self.cfg), gain, blas.layout(self.grid.row_edges).tail)
        del g_read
        self.gdiff_t = self._read_array(self.gdiff_rows)
        self._set_read_noise(gain, devices_now, programmed)
        self.g_direct_rows = self._direct_conductances()
        self.g_direct = None if self.g_direct_rows is None else self._read_array(self.g_direct_rows)

    def _read_array(self, rows: np.ndarray):
        """The first n_in rows of ``rows`` (``_with_tail``) on the backend (a view for NumPy's)."""
        return self.backend.asarray(rows[: self.grid.n_in])

    def _with_tail(self, matrix: np.ndarray) -> np.ndarray:
        """(n_in + tail, n_out): ``matrix`` and the zero rows after it that the read path's BLAS
        products read past its last row block (``blas.BlockLayout``); its first n_in rows are the
        (n_in, n_out) array the attributes name (``gdiff_t``, ``read_var_t``, ``g_direct``)."""
        return self.backend.with_tail(matrix, blas.layout(self.grid.row_edges).tail)

    def _set_read_noise(self, gain: np.ndarray | None, devices_now: list[np.ndarray], programmed: cells.Programmed) -> None:
        """The per-read noise the kernels draw, in converter units (from the devices at t_s): one of
        ``read_var_const``, ``read_var_t`` or ``read_sigma_t`` (per_device path), or none of them."""
        dev = self.cfg.device
        g_min, g_max = cells.span(self.cfg)
        span = np.float32(g_max - g_min)
        span2 = np.float32((g_max - g_min) ** 2)
        self.read_var_const = np.float32(0.0)  # per device pair, when the std is the same everywhere
        self.read_var_t = None  # (n_in, n_out) per device pair, when it depends on G
        self.read_var_rows = None  # read_var_t with the zero rows after it (``_with_tail``)
        self.read_sigma_t = None  # (G+ std, G- std), each (n_in, n_out), for the per-device path
        per_device = self.cfg.tile.read_noise_path == "per_device"
        if not per_device and not device.read_noise_parts(dev, "per_read"):
            return  # no per-read noise: nothing to derive
        sigma = cells.read_noise_std(devices_now, programmed, dev, self.t_s, self.backend.ops)  # (2, n_in, n_out) uS, per read
        if per_device:
            pair = (sigma[0] / span, sigma[1] / span) if gain is None else (sigma[0] / span * gain, sigma[1] / span * gain)
            self.read_sigma_t = tuple(self.backend.asarray(s) for s in pair)
        elif device.read_noise_is_constant(dev) and gain is None:
            first = self.backend.ops.to_numpy(sigma.reshape(-1)[:1])[0]  # one number, the same for every device
            self.read_var_const = np.float32(2.0) * first * first / span2
        elif self.backend.ops.any(sigma > 0):
            var_t = (sigma[0] * sigma[0] + sigma[1] * sigma[1]) / span2
            self.read_var_rows = self._with_tail(var_t if gain is None else var_t * (gain * gain))
            self.read_var_t = self._read_array(self.read_var_rows)

    def _direct_conductances(self) -> np.ndarray | None:
        """(n_in + tail, n_out) ``gdiff_t`` times the output scales (``_with_tail``), when a read is one
        exact product (no DAC, ADC, read or output noise: ``readout`` then only multiplies, a GEMM
        per row block); else None."""
        tile_cfg = self.cfg.tile
        noiseless = self.read_sigma_t is None and self.read_var_t is None and self.read_var_const == 0 and tile_cfg.out_noise == 0
        if not (noiseless and tile_cfg.dac.range == "none" and tile_cfg.adc.range == "none"):
            return None
        return self._with_tail(self.gdiff_rows[: self.grid.n_in] * self.backend.expand_rows(self.out_scales, self.grid))

    def set_ranges(self, dac: np.ndarray | None = None, adc: np.ndarray | None = None) -> None:
        """Set calibrated converter bounds: dac (P,) in input units, adc (P, Q) normalized."""
        n_p, n_q = self.grid.shape
        for name, value, shape, cfg in (("dac", dac, (n_p,), self.cfg.tile.dac), ("adc", adc, (n_p, n_q), self.cfg.tile.adc)):
            if value is None:
                continue
            if cfg.range != "calibrated":
                raise ValueError(f"tile.{name}.range is {cfg.range!r}; only 'calibrated' ranges can be set")
            arr = np.asarray(value, np.float32)
            if arr.shape != shape or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
                raise ValueError(f"{name} ranges must be finite, > 0 and of shape {shape}, got {arr.shape}")
            setattr(self, f"{name}_bounds", arr.copy())
        self._set_periphery()
        self.take_reference()  # new ranges, new reference response

    def weights(self) -> np.ndarray:
        """(out, in) float32: the weights the tiles hold now (after write error, faults, drift); kept until
        the conductances change (training through the chip asks for them at every backward pass)."""
        if self._weights is None:
            self._weights = np.ascontiguousarray(self.backend.to_numpy(self.device_weights()))
        return self._weights

    def device_weights(self):
        """``weights()`` as an array of the backend (a torch tensor on the chip's device for torch), computed there
        from the devices now, kept as long as they are."""
        if self._device_weights is None:
            now = cells.drifted(self._state(), self._targets_on_backend(), self.cfg.device, self.t_s, self.seed, self.drift_law, self.backend.ops)
            weights = normalized_difference(cells.summed(now), *cells.span(self.cfg)) * self.backend.expand_rows(self._scales_read, self.grid)
            self._device_weights = self.backend.contiguous(weights.T)
        return self._device_weights

    def target_weights(self) -> np.ndarray:
        """(out, in) float32: the weights the tiles were meant to hold (the mapped ones)."""
        dev = self.cfg.device
        return np.ascontiguousarray(decode(self.g_target, self.scales, self.grid, dev.g_min_us, dev.g_max_us).T)

    def conductances(self) -> list[TileConductances]:
        """G+ and G- of every tile now, uS, row-major over the tile grid."""
        n_p, n_q = self.grid.shape
        g_now = self.g_now
        tiles = []
        for p in range(n_p):
            for q in range(n_q):
                rows, cols = self.grid.tile_slices(p, q)
                tiles.append(TileConductances(p, q, rows, cols, g_now[0, rows, cols], g_now[1, rows, cols]))
        return tiles

    def _set_periphery(self) -> None:
        """What reads take from the converter bounds, on the backend: ``_adc_columns`` = (bound, to_int, step),
        each (P, n_out) float32, the ADC of every output's tile; ``_dac_bounds_read`` (P,); ``_col_block`` (n_out,)."""
        bound = np.ascontiguousarray(self.adc_bounds[:, self.grid.col_block_of()])
        to_int, step = converters.quantizer_steps(bound, self.cfg.tile.adc.levels)
        self._adc_columns = tuple(self.backend.asarray(a) for a in (bound, to_int, step))
        self._dac_bounds_read = self.backend.asarray(self.dac_bounds)
        self._col_block = self.backend.asarray(self.grid.col_block_of())

    # ------------------------------------------------------------------ compute
    def mvm(self, x):
        """x (batch, in) or (in,) -> (batch, out) or (out,), float32: NumPy in, NumPy out; on the torch
        backend a tensor on the chip's device in, a tensor out."""
        x2 = self.backend.input_matrix(x)
        single = x2.ndim == 1
        x2 = x2[None] if single else x2
        n_in = self.grid.n_in
        if x2.ndim != 2 or x2.shape[1] != n_in:
            raise ValueError(f"mvm input must have shape (batch, {n_in}) or ({n_in},), got {tuple(x2.shape)}")
        if self.recorder is not None:
            self.recorder.inputs(self, self.backend.to_numpy(x2))
        if self.ideal:
            out = self.backend.ideal_product(x2, self.target_weights())
        else:
            out = self._mvm(x2.shape[0], self.backend.rows(x2))
        out = out[0] if single else out
        return self.backend.to_numpy(out) if isinstance(x, np.ndarray) else out

    def mvm_patches(self, x_nhwc: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                    dilation: tuple[int, int], out_size: tuple[int, int], first_channel: int = 0, ones: int = 0) -> np.ndarray:  # fmt: skip
        """A convolution's product: the input vectors are the patches of x_nhwc (B, H, W, C)
        float32 channels-last, gathered in (kernel row, kernel column, channel) order
        (``patches.gather_patch``; padding is (top, left)), followed by ``ones`` inputs fixed at 1.
        Returns (B * out_h * out_w, out), rows in (b, oh, ow) order: the same as ``mvm`` of the
        im2col matrix, without building it (a chip without converters or noise builds it: it
        only multiplies; so does the torch backend, from a float32 NHWC tensor on its device)."""
        channels = (self.grid.n_in - ones) // (kernel[0] * kernel[1])
        if x_nhwc.ndim != 4 or channels * kernel[0] * kernel[1] + ones != self.grid.n_in:
            raise ValueError(f"mvm_patches needs an NHWC image and a kernel that covers {self.grid.n_in} inputs")
        if self.recorder is not None or self.ideal or self.g_direct is not None or not self.backend.fused_patches:
            return self.mvm(self.backend.im2col(x_nhwc, kernel, stride, padding, dilation, out_size, first_channel, channels, ones))
        if x_nhwc.dtype != np.float32 or not x_nhwc.flags.c_contiguous:
            raise ValueError("mvm_patches needs a C-contiguous float32 NHWC image")
        geometry = (kernel, stride, padding, dilation, out_size, first_channel, channels, ones)
        return self._mvm(x_nhwc.shape[0] * out_size[0] * out_size[1], PatchRows(x_nhwc, geometry, ones))

    def _mvm(self, n_batch: int, inputs, stream: tuple[dict, int] | None = None) -> np.ndarray:
        """``readout.read`` of n_batch input vectors (``InputRows`` or ``PatchRows``) as an
        inference read: it counts the reads and re-reads and applies the drift-compensation gain.
        ``stream`` = (keys, first vector) draws the read noise elsewhere and does neither (the
        compensation probe)."""
        if stream is not None:
            return self.backend.read(self, n_batch, inputs, stream[0], stream[1], record=False)[0]
        out, rereads = self.backend.read(self, n_batch, inputs, self._keys, self.reads, record=self.recorder is not None)
        self.reads += n_batch
        self.bm_rereads += rereads
        if self._gain_read is not None:
            out *= self._gain_read
        return out

    # ------------------------------------------------------------------ persistence
    STATE_ARRAYS = ("targets", "scales", "dac_bounds", "adc_bounds")

    def state(self) -> dict:
        """Everything needed to rebuild this array exactly: arrays and scalars, the fingerprint of the
        programmed state, and the drift compensation's probe reference and gain (None when there are
        none) so that a rebuild need not read the probe again."""
        arrays = {name: getattr(self, name) for name in self.STATE_ARRAYS}
        return {**arrays, "seed": self.seed, "t_s": self.t_s, "reads": self.reads, "epoch": self.epoch,
                "programmed_crc32": self.programmed_crc32, "drift_law": self.drift_law, "reference": self.reference,
                "gain": self.gain}  # fmt: skip

    @classmethod
    def from_state(cls, cfg: ChipConfig, state: dict, backend: TileBackend = NUMBA) -> TileArray:
        """Rebuild an array saved with ``state()``: the same conductances, drift time, read
        counter, read epoch (0 when absent) and drift law (1 when absent: ``device.DRIFT_LAW``), so it
        continues exactly where the saved one stopped. The programmed state is regenerated from the targets
        and the seed; with a ``programmed_crc32`` entry, a fingerprint that differs raises ValueError. The drift
        compensation's reference and gain are taken from the state when it has a ``reference`` entry (one move to
        t_s, no probe read); otherwise the probe is read again. Arrays of the right dtype are kept, not copied
        (the array's state is never changed in place). Reads run on ``backend``."""
        backend.check(cfg)
        tiles = cls.__new__(cls)
        tiles.cfg = cfg
        tiles.backend = backend
        n_in, n_out = state["targets"].shape
        tiles.grid = TileGrid.for_matrix(n_in, n_out, cfg.tile.rows, cfg.tile.cols)
        expected = {"targets": (n_in, n_out), "scales": (tiles.grid.shape[0], n_out), "dac_bounds": (tiles.grid.shape[0],),
                    "adc_bounds": tiles.grid.shape}  # fmt: skip
        for name in cls.STATE_ARRAYS:
            value = np.asarray(state[name])
            if value.shape != expected[name]:
                raise ValueError(f"{name} has shape {value.shape}, expected {expected[name]} for this chip config")
            setattr(tiles, name, value.astype(np.float32, copy=False))
        tiles._set_seed(state["seed"])
        tiles._programmed = tiles._law_target = None
        programmed = tiles._state()
        tiles._fingerprint(programmed)
        if state.get("programmed_crc32", tiles.programmed_crc32) != tiles.programmed_crc32:
            raise ValueError("the programmed state regenerated from the targets and the seed does not match programmed_crc32 "
                             "(the file was altered, or written by an xbarsim with another device model)")  # fmt: skip
        tiles._set_units()
        tiles._set_periphery()
        tiles.recorder = None
        tiles.ideal = False
        tiles.bm_rereads = 0
        tiles.epoch = int(state.get("epoch", 0))
        if tiles.epoch < 0:
            raise ValueError(f"read epoch must be >= 0, got {tiles.epoch}")
        tiles.drift_law = int(state.get("drift_law", 1))  # a state without one was drifted by law 1 (NumPy's pow)
        if tiles.drift_law not in (1, device.DRIFT_LAW):
            raise ValueError(f"drift law must be 1 or {device.DRIFT_LAW}, got {tiles.drift_law}")
        tiles._move_to(float(state["t_s"]), programmed=programmed)
        del programmed
        if "reference" in state:
            tiles.reference, tiles.gain = state["reference"], state["gain"]
        else:
            tiles.take_reference()
        tiles.reads = int(state["reads"])
        return tiles
