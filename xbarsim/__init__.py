"""xbarsim: a simulator of analog in-memory-computing chips (resistive crossbar arrays)."""

import os as _os

# Numba's OpenMP workers and OpenBLAS's workers spin after their parallel regions and starve each
# other on small machines (DESIGN.md §6); passive waiting must be set before Numba loads.
_os.environ.setdefault("OMP_WAIT_POLICY", "passive")

from .config import ChipConfig  # noqa: E402
from .crossbar.tile import TileArray  # noqa: E402

__version__ = "0.1.0"
__all__ = ["AnalogModel", "ChipConfig", "TileArray", "load_chip", "map_model", "__version__"]

_TORCH_API = {"map_model": "chip", "AnalogModel": "chip", "VirtualChip": "chip", "load_chip": "chipload"}


def __getattr__(name: str):
    """The torch-facing API, imported on first use so that ``import xbarsim`` stays light."""
    if name in _TORCH_API:
        from importlib import import_module

        return getattr(import_module(f".mapping.{_TORCH_API[name]}", __name__), name)
    raise AttributeError(f"module 'xbarsim' has no attribute {name!r}")
