"""xbarsim: a simulator of analog in-memory-computing chips (resistive crossbar arrays).

``import xbarsim`` is light: the Numba kernels (and their thread policy, ``crossbar.threads``) load
with the first tile, and the torch-facing API with its first use."""

from .config import ChipConfig

__version__ = "0.2.0"
__all__ = ["AnalogModel", "ChipConfig", "TileArray", "__version__", "load_chip", "map_model", "register_linear"]

_LAZY = {
    "TileArray": "crossbar.tile",
    "map_model": "mapping.chip",
    "AnalogModel": "mapping.chip",
    "VirtualChip": "mapping.chip",
    "load_chip": "mapping.chipload",
    "register_linear": "mapping.linear",
}


def __getattr__(name: str):
    """The tiles and the torch-facing API, imported on first use so that ``import xbarsim`` stays light."""
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'xbarsim' has no attribute {name!r}")
