import numba
from hypothesis import settings

import xbarsim.crossbar.jit  # noqa: F401  (chooses the threading layer, before the pool starts below)

numba.get_num_threads()  # start the thread pool: kernels called directly below expect it

# Numba compiles on first use: no per-example deadline.
settings.register_profile("xbarsim", deadline=None, max_examples=40)
settings.load_profile("xbarsim")
