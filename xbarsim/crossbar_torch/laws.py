"""Programming, drift and per-epoch read noise of a whole (2, n_in, n_out) conductance tensor on its device.

Each function is the draw of its stream (``rng``: the very numbers of the CPU's streams) fed to the law
written once in ``crossbar.laws.device``. Programming uses only IEEE operations (+, *, max, in float64 and
float32), so it gives the CPU's programmed conductances bit for bit on any device: a chip programmed on a
GPU saves the file a CPU would save, and loads back to the same chip. Drift and the PCM read noise go
through ``pow``/``log``, whose last bit differs between libraries; their values agree to float64 rounding.
"""

from __future__ import annotations

import torch

from ..config import DeviceConfig, NoWriteNoise
from ..crossbar.laws import device
from ..crossbar.laws import rng as host_rng
from . import rng


def program(g_target: torch.Tensor, dev: DeviceConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(G_prog float32, stuck codes int8) of ``device.program``: write error, then stuck-at faults."""
    shape, where = g_target.shape, g_target.device
    if isinstance(dev.write_noise, NoWriteNoise):
        g = g_target.clone()
    else:
        z = rng.device_normals(seed, host_rng.PURPOSE_WRITE, shape, where)
        g = device.written(g_target, device.write_noise_std(g_target, dev.write_noise, dev.g_max_us), z)
    if not device.has_faults(dev):
        return g, torch.zeros(shape, dtype=torch.int8, device=where)
    stuck = device.stuck_codes(rng.device_uniforms(seed, host_rng.PURPOSE_FAULT, shape, where), dev.faults)
    return device.stuck_conductances(g, stuck, dev), stuck


def drifted(g_prog: torch.Tensor, stuck: torch.Tensor, dev: DeviceConfig, t_s: float, seed: int) -> torch.Tensor:
    """Conductances t_s seconds after programming (float32); stuck devices do not drift."""
    if not device.drifts(dev, t_s):
        return g_prog.clone()
    z = rng.device_normals(seed, host_rng.PURPOSE_DRIFT, g_prog.shape, g_prog.device)
    return device.drifted_from(g_prog, stuck, device.drift_factor_from(z, g_prog, dev, t_s))


def epoch_conductances(g: torch.Tensor, g_prog: torch.Tensor, dev: DeviceConfig, t_s: float, seed: int, epoch: int) -> torch.Tensor:
    """The conductances every read of epoch ``epoch`` sees (``device.epoch_conductances``)."""
    if not device.read_noise_parts(dev, "per_epoch"):
        return g
    z = rng.device_normals(seed, host_rng.PURPOSE_READ_EPOCH, g.shape, g.device, epoch)
    return device.read_epoch_from(g, device.read_noise_std(g, dev, t_s, g_prog, "per_epoch"), z)
