"""xbarsim: a simulator of analog in-memory-computing chips (resistive crossbar arrays)."""

import os as _os

# Numba's OpenMP workers and OpenBLAS's workers spin after their parallel regions and starve each
# other on small machines (DESIGN.md §6); passive waiting must be set before Numba loads.
_os.environ.setdefault("OMP_WAIT_POLICY", "passive")

from .config import ChipConfig  # noqa: E402
from .crossbar.tile import TileArray  # noqa: E402

__version__ = "0.1.0"
__all__ = ["ChipConfig", "TileArray", "__version__"]
