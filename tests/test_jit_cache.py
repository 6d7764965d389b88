"""Numba's on-disk cache: every kernel a chip uses compiles once, later processes load it."""

import json
import os
import subprocess
import sys
import textwrap

# A chip's whole life in small: program, drift, every read-noise path, serial and threaded
# kernels, linear and convolution layers, converter calibration helpers.
SCRIPT = textwrap.dedent("""
    import json
    import torch
    import numpy as np
    from torch import nn
    from xbarsim import ChipConfig, TileArray, map_model
    from xbarsim.crossbar.read import converters
    from xbarsim.crossbar import jit, threads

    x = np.random.default_rng(0).standard_normal((40, 150)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((70, 150)).astype(np.float32)
    for min_outputs in (1 << 62, 0):  # serial kernels, then threaded ones
        threads.PARALLEL_MIN_OUTPUTS = min_outputs
        for path in ("output_referred", "per_device"):
            for noise in ({"kind": "pcm"}, {"kind": "additive", "sigma": 0.5}):
                cfg = ChipConfig.preset("pcm").with_values({"tile.rows": 64, "tile.read_noise_path": path, "device.read_noise": noise})
                tiles = TileArray.from_weights(w, cfg, seed=1)
                tiles.drift(60.0)
                tiles.mvm(x)
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)).eval()
        chip = map_model(net, ChipConfig.preset("pcm"), seed=0)
        with torch.no_grad():
            chip(torch.rand(3, 1, 8, 8))
    converters.quantize_array(x, 1.0, 127)
    used = {name: (sum(d.stats.cache_misses.values()), sum(d.stats.cache_hits.values()))
            for name, d in jit.dispatchers() if d.signatures}
    print(json.dumps(used))
""")


def _run(cache_dir) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_kernel_compiles_once_and_loads_from_the_cache_in_the_next_process(tmp_path):
    first = _run(tmp_path)
    second = _run(tmp_path)
    assert first.keys() == second.keys()
    for kernel in ("read.converters._dac_into", "read.patches._dac_patches_into", "read.kernels._add_device_read_noise",
                   "read.kernels._noisy_adc_accumulate", "laws.encode._encode_into"):
        assert {f"xbarsim.crossbar.{kernel}", f"xbarsim.crossbar.{kernel}_serial"} <= first.keys()  # threaded and serial twin
    assert all(compiled > 0 for compiled, _ in first.values()), first
    recompiled = {name: counts for name, counts in second.items() if counts[0] > 0}
    assert not recompiled, f"compiled again in a second process: {recompiled}"
    assert all(second[name][1] == first[name][0] for name in first), (first, second)
