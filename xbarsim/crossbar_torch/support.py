"""What the torch backend computes: the chip config's fields its reads implement, so that anything newer (a read
path or converter option added to the CPU's kernels first) is refused by name instead of being silently ignored.

A field this backend does not know is accepted only at its default value. The device laws (``device``: write
noise, faults, drift, read noise; ``programming``; ``mapping.devices_per_polarity``) are written once over each
backend's operations (``crossbar.laws.lawops``, ``lawops`` here), so every device model runs here too; the cost
table prices operations and changes no read. Neither is checked.
"""

from __future__ import annotations

from pydantic import BaseModel

from .. import config as c
from ..errors import XbarsimError

SUPPORTED: dict[type[BaseModel], frozenset[str]] = {
    c.ChipConfig: frozenset({"name", "description", "device", "tile", "mapping", "drift_compensation", "programming", "cost",
                             "runtime"}),  # fmt: skip
    c.RuntimeConfig: frozenset({"backend"}),
    c.TileConfig: frozenset({"rows", "cols", "dac", "adc", "out_noise", "read_noise_path", "bound_management", "bm_max_factor",
                             "bm_max_res", "wire_resistance_ohm"}),  # fmt: skip
    c.ConverterConfig: frozenset({"bits", "range", "bound"}),
    c.MappingConfig: frozenset({"weight_scale", "bias", "fold_batchnorm", "devices_per_polarity"}),
}
UNCHECKED = frozenset({"cost", "device", "programming"})


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
