"""Trained torch layers onto crossbar tiles, and the chip as a whole."""

import os

# torch's own GEMMs (Intel MKL, inside torch) give the same bits on any thread count only in MKL's strict
# conditional-numerical-reproducibility mode, which MKL reads from MKL_CBWR at its first call: so a network's
# digital layers do not change with the threads a busy machine makes the forward hold (serial.network_section;
# docs/determinism.md). A value the user set is kept.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
