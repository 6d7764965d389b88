import os

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

from hypothesis import settings  # noqa: E402

# Numba compiles on first use: no per-example deadline.
settings.register_profile("xbarsim", deadline=None, max_examples=40)
settings.load_profile("xbarsim")
