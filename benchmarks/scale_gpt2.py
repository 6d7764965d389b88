"""Scale: a GPT-2-small-sized network of standard torch layers on a chip, on one machine.

The network: ``nn.TransformerEncoder`` of 12 pre-norm ``nn.TransformerEncoderLayer`` (d_model 768, 12 heads,
feed-forward 3072, GELU, causal), random weights: 12 x (4 x 768^2 + 2 x 768 x 3072) = 84.9 M weights, every
one on tiles (48 attention projections and 24 feed-forward layers). The steps, each timed: map + program
(``map_model`` on the ``pcm`` preset), drift to one day, save the chip file, load it (without the model: the
file describes the network as data), and one forward of 128 tokens. Peak memory is the process's resident
set, sampled every 5 ms by a thread (``/proc/self/statm``), per step and over the run, counted from the
resident set after the imports (before the network exists), so the float32 network itself is counted.

Goals (issue 23): map + program under 60 s, peak memory under 4x the float32 weights, chip file no larger than
2x the float32 weights. ``--quick``: 2 layers of the same width (the same code paths, ~14 M weights).
``python benchmarks/scale_gpt2.py [--quick]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import torch  # torch first, as in a user's script
from torch import nn

from xbarsim import ChipConfig, load_chip, map_model

PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakMemory:
    """The largest resident set seen since ``reset()``, sampled by a background thread."""

    def __init__(self, interval_s: float = 0.005):
        self.interval_s, self._stop = interval_s, threading.Event()
        self.peak = self.overall = resident_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            now = resident_bytes()
            self.peak, self.overall = max(self.peak, now), max(self.overall, now)
            time.sleep(self.interval_s)

    def reset(self) -> None:
        self.peak = resident_bytes()

    def stop(self) -> int:
        """The largest resident set over the whole run."""
        self._stop.set()
        self._thread.join()
        return max(self.overall, resident_bytes())


def gpt2_small(layers: int) -> nn.Module:
    layer = nn.TransformerEncoderLayer(768, 12, 3072, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(768), enable_nested_tensor=False).eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 layers instead of 12")
    parser.add_argument("--preset", default="pcm", help="chip preset (default pcm)")
    parser.add_argument("--folder", help="where to write the chip file (default: a temporary folder)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    memory = PeakMemory()
    base = resident_bytes()
    steps: list[tuple[str, float, int]] = []

    def step(name: str, action):
        memory.reset()
        start = time.perf_counter()
        result = action()
        steps.append((name, time.perf_counter() - start, memory.peak))
        return result

    model = step("build the float32 network", lambda: gpt2_small(2 if args.quick else 12))
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear)) + sum(
        m.in_proj_weight.numel() for m in model.modules() if isinstance(m, nn.MultiheadAttention))  # fmt: skip
    float_bytes = 4 * weights
    chip = step("map + program", lambda: map_model(model, ChipConfig.preset(args.preset), seed=0, progress=False))
    on_tiles = sum(m.tiles.grid.n_in * m.tiles.grid.n_out for m in chip.chip.matrices())
    step("drift to 1 day", lambda: chip.drift(86400.0))
    x = torch.randn(1, 128, 768)
    mask = nn.Transformer.generate_square_subsequent_mask(128)
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        path = Path(folder) / "gpt2.h5"
        step("save", lambda: chip.save(path, progress=False))
        file_bytes = path.stat().st_size
        del chip
        loaded = step("load (no model given)", lambda: load_chip(path, progress=False))
    with torch.no_grad():
        out = step("forward, 128 tokens", lambda: loaded(x, mask=mask, is_causal=True))
    peak = memory.stop()
    assert out.shape == (1, 128, 768) and torch.isfinite(out).all()
    load = os.getloadavg()[0]
    print(f"GPT-2-small-sized TransformerEncoder, {len(model.layers)} layers: {weights / 1e6:.1f} M weights "
          f"({float_bytes / 2**20:.0f} MiB float32), {on_tiles / 1e6:.1f} M on tiles; preset {args.preset}; "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load:.1f}")  # fmt: skip
    print()
    print("| step | time (s) | peak resident over the imports (MiB) | x float32 weights |")
    print("|---|---|---|---|")
    for name, seconds, step_peak in steps:
        print(f"| {name} | {seconds:.1f} | {(step_peak - base) / 2**20:.0f} | {(step_peak - base) / float_bytes:.2f} |")
    print()
    map_s = next(seconds for name, seconds, _ in steps if name == "map + program")
    print(f"map + program {map_s:.1f} s (goal < 60 s); peak memory {(peak - base) / 2**20:.0f} MiB = "
          f"{(peak - base) / float_bytes:.2f}x the float32 weights (goal < 4x); chip file {file_bytes / 2**20:.0f} MiB = "
          f"{file_bytes / float_bytes:.2f}x (goal <= 2x); imports {base / 2**20:.0f} MiB resident before the network")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
