import os

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numba  # noqa: E402
from hypothesis import settings  # noqa: E402

numba.get_num_threads()  # start the thread pool: kernels called directly below expect it

# Numba compiles on first use: no per-example deadline.
settings.register_profile("xbarsim", deadline=None, max_examples=40)
settings.load_profile("xbarsim")
