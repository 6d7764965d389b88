"""What the torch backend computes: the chip config's fields and kinds it implements, so that anything newer
(a device model added to the CPU's laws first) is refused by name instead of being silently ignored.

A field this backend does not know is accepted only at its default value; a model class it does not know
(a new write-noise, read-noise or drift kind) is refused. The cost table prices operations and changes no
read, so it is not checked.
"""

from __future__ import annotations

from pydantic import BaseModel

from .. import config as c
from ..errors import XbarsimError

_KINDS = ("kind",)
SUPPORTED: dict[type[BaseModel], frozenset[str]] = {
    c.ChipConfig: frozenset({"name", "description", "device", "tile", "mapping", "drift_compensation", "cost", "runtime"}),
    c.RuntimeConfig: frozenset({"backend"}),
    c.DeviceConfig: frozenset({"g_min_us", "g_max_us", "t0_s", "write_noise", "read_noise", "drift", "faults"}),
    c.StuckAtFaults: frozenset({"p_on", "p_off"}),
    c.NoWriteNoise: frozenset(_KINDS),
    c.AbsoluteWriteNoise: frozenset({*_KINDS, "sigma"}),
    c.ProportionalWriteNoise: frozenset({*_KINDS, "sigma"}),
    c.PCMWriteNoise: frozenset({*_KINDS, "c0", "c1", "c2", "scale"}),
    c.NoReadNoise: frozenset(_KINDS),
    c.AdditiveReadNoise: frozenset({*_KINDS, "sigma", "time"}),
    c.ProportionalReadNoise: frozenset({*_KINDS, "sigma", "time"}),
    c.PCMReadNoise: frozenset({*_KINDS, "q_coeff", "q_exponent", "q_max", "t_read_s", "scale", "time"}),
    c.CombinedReadNoise: frozenset({*_KINDS, "parts"}),
    c.NoDrift: frozenset(_KINDS),
    c.LogNormalDrift: frozenset({*_KINDS, "sigma", "sigma_per_decade"}),
    c.PowerLawDrift: frozenset({*_KINDS, "nu_mean", "nu_std"}),
    c.PCMDrift: frozenset({*_KINDS, "scale"}),
    c.TileConfig: frozenset({"rows", "cols", "dac", "adc", "out_noise", "read_noise_path", "bound_management", "bm_max_factor",
                             "bm_max_res", "wire_resistance_ohm"}),  # fmt: skip
    c.ConverterConfig: frozenset({"bits", "range", "bound"}),
    c.MappingConfig: frozenset({"weight_scale", "bias", "fold_batchnorm"}),
}
UNCHECKED = frozenset({"cost"})


def check(cfg: c.ChipConfig) -> None:
    """Raise ``XbarsimError`` naming the first field of ``cfg`` the torch backend does not compute."""
    _walk(cfg, "")


def _walk(model: BaseModel, path: str) -> None:
    known = SUPPORTED.get(type(model))
    if known is None:
        kind = getattr(model, "kind", type(model).__name__)
        _refuse(f"{path.rstrip('.')} kind {kind!r}")
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if name in UNCHECKED:
            continue
        if name not in known:
            if value != field.get_default(call_default_factory=True):
                _refuse(f"{path}{name} = {value!r}")
            continue
        for k, item in enumerate(value if isinstance(value, list) else [value]):
            if isinstance(item, BaseModel):
                _walk(item, f"{path}{name}{f'[{k}]' if isinstance(value, list) else ''}.")


def _refuse(what: str) -> None:
    raise XbarsimError(f"the torch backend does not compute {what} yet; run this chip on the CPU with backend 'numba'")
