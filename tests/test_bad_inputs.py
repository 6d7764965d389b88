"""Bad input through the command line, as a careless or hostile user gives it.

Every case must end with a non-zero exit, no traceback, exactly one line on stderr that names the field,
file or option at fault, and the good files involved (checkpoints, a chip file, a chip YAML, a sweep spec)
byte-identical, with nothing new written beside them.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from xbarsim.cli import main
from xbarsim.config import PRESETS

RANDOM_BYTES = np.random.default_rng(12).integers(0, 256, 4096, dtype=np.uint8).tobytes()
ANCHOR_BOMB = "\n".join(
    ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")]
)
PRESET_LIST = ", ".join(sorted(PRESETS))
TOO_DEEP = 100_000  # levels of nesting: a recursive reader would end in RecursionError
CONV = "layers/features.0/m0"  # the good chip's first convolution: 25 inputs x 6 outputs


def _nested(levels: int) -> str:
    """A list in lists, ``levels`` deep, as YAML or JSON text."""
    return "[" * levels + "1" + "]" * levels


def _deep_list(levels: int) -> list:
    value: list = [1]
    for _ in range(levels - 1):
        value = [value]
    return value


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def _mnist(**override: bytes) -> dict[str, bytes]:
    """A tiny MNIST folder (gzipped IDX files), with some files replaced."""
    images, labels = np.zeros((4, 28, 28), np.uint8), np.arange(4, dtype=np.uint8)
    files = {
        "mnist/train-images-idx3-ubyte.gz": gzip.compress(_idx(images)),
        "mnist/train-labels-idx1-ubyte.gz": gzip.compress(_idx(labels)),
        "mnist/t10k-images-idx3-ubyte.gz": gzip.compress(_idx(images)),
        "mnist/t10k-labels-idx1-ubyte.gz": gzip.compress(_idx(labels)),
    }
    return {**files, **override}


CIFAR_NAMES = [f"cifar/data_batch_{i}" for i in range(1, 6)] + ["cifar/test_batch"]


# a file's content: bytes, text ({good} and {tmp} replaced), "->NAME" (a symbolic link to a good file), "=>NAME"
# (a hard link to a copy of one), "|fifo" (a named pipe), or a function writing the file from the good folder
Content = bytes | str | Callable[[Path, Path], None]


@dataclass(frozen=True)
class Case:
    """``argv`` tokens may use {good} (the folder of good files), {goodname} (its name) and {tmp} (this case's
    folder, holding ``files``). ``names``: a regular expression the one error line must match (it names the
    field, file or option)."""

    id: str
    argv: str
    names: str
    files: dict[str, Content] = field(default_factory=dict)


def _edited_chip(edit: Callable[[h5py.File], None]) -> Callable[[Path, Path], None]:
    """A copy of the good chip file, changed by ``edit``."""

    def write(good: Path, path: Path) -> None:
        shutil.copy(good / "chip.h5", path)
        with h5py.File(path, "r+") as f:
            edit(f)

    return write


def _replace(f: h5py.File, name: str, data: np.ndarray) -> None:
    del f[name]
    f.create_dataset(name, data=data)


def _forged_checkpoint(**fields) -> Callable[[Path, Path], None]:
    """The good checkpoint with ``fields`` replaced."""

    def write(good: Path, path: Path) -> None:
        torch.save({**torch.load(good / "lenet5.pt", weights_only=True), **fields}, path)

    return write


def _map_with_chip(content: str, names: str, id: str, suffix: str = "yaml") -> Case:
    return Case(id, f"map {{good}}/lenet5.pt --chip {{tmp}}/bad.{suffix} -o {{tmp}}/out.h5", names, {f"bad.{suffix}": content})


def _spec(extra: str, names: str, id: str) -> Case:
    body = "model: {checkpoint: '{good}/lenet5.pt'}\naxes: {tile.adc.bits: [6]}\n" + extra
    return Case(id, "sweep {tmp}/spec.yaml -o {tmp}/store.h5 --executor serial", names, {"spec.yaml": body})


CASES = [
    # ---- chip configs: values
    _map_with_chip("device: {t0_s: .inf}\n", r"bad\.yaml: device\.t0_s: must be a finite number > 0 \(got inf\)", "t0-inf"),
    _map_with_chip("device: {t0_s: 1e400}\n", r"bad\.yaml: device\.t0_s: must be a finite number", "t0-1e400"),
    _map_with_chip('{"device": {"t0_s": 1e400}}', r"bad\.json: device\.t0_s: must be a finite number", "t0-1e400-json", "json"),
    _map_with_chip('{"device": {"g_max_us": NaN}}', r"bad\.json: NaN is not a number", "nan-json", "json"),
    _map_with_chip("tile: {rows: true}\n", r"bad\.yaml: tile\.rows: must be an integer >= 1 .*\(got true\)", "rows-true"),
    _map_with_chip("tile: {adc: {bits: 7.5, range: fixed, bound: 10}}\n", r"tile\.adc\.bits: must be an integer .*\(got 7\.5\)", "bits-7.5"),
    _map_with_chip("tile: {cols: '64'}\n", r"tile\.cols: must be an integer", "cols-string"),
    _map_with_chip("tile: {adc: {resolution: 8}}\n", r"tile\.adc\.resolution: unknown field \(allowed: bits, range, bound\)", "unknown-field"),
    _map_with_chip("device: {read_noise: {kind: pink}}\n", r"device\.read_noise: unknown kind 'pink'; choose from", "unknown-kind"),
    _map_with_chip("device: {g_min_us: 30, g_max_us: 20}\n", r"bad\.yaml: device: g_min_us must be < g_max_us", "g-min-above-max"),
    _map_with_chip("device: {faults: {p_on: 0.7, p_off: 0.6}}\n", r"device\.faults: p_on \+ p_off must be <= 1", "fault-probabilities"),
    # ---- chip configs: presets and files
    _map_with_chip("preset: [pcm]\n", rf"bad\.yaml: preset: unknown preset \['pcm'\]; choose from {PRESET_LIST}", "preset-list"),
    _map_with_chip("preset: pcmm\n", rf"bad\.yaml: preset: unknown preset 'pcmm'; choose from {PRESET_LIST}", "preset-unknown-in-file"),
    Case("chip-unknown-preset", "map {good}/lenet5.pt --chip pcmm -o {tmp}/out.h5", rf"'pcmm' is neither a preset \({PRESET_LIST}\)"),
    _map_with_chip(ANCHOR_BOMB, r"bad\.yaml: not valid YAML: anchors and aliases", "anchor-bomb"),
    _map_with_chip("tile: {rows: 64}\ntile: {rows: 32}\n", r"bad\.yaml: not valid YAML: duplicate key 'tile'", "duplicate-key"),
    _map_with_chip("!!python/object/apply:os.system ['touch {tmp}/pwned']\n", r"bad\.yaml: not valid YAML: could not determine a constructor", "python-tag"),
    _map_with_chip("- pcm\n", r"bad\.yaml: expected a mapping", "top-level-list"),
    Case("chip-binary", "map {good}/lenet5.pt --chip {tmp}/bad.yaml -o {tmp}/out.h5", r"bad\.yaml: not a text file", {"bad.yaml": RANDOM_BYTES}),
    Case("chip-missing", "map {good}/lenet5.pt --chip {tmp}/absent.yaml -o {tmp}/out.h5", r"absent\.yaml: no such file"),
    Case("chip-folder", "map {good}/lenet5.pt --chip {tmp}/dir.yaml -o {tmp}/out.h5", r"dir\.yaml: is a folder", {"dir.yaml/x": "x"}),
    Case("hwa-bad-config", "train --model mlp --data synthetic --hwa {tmp}/bad.yaml -o {tmp}/m.pt", r"bad\.yaml: tile\.rows", {"bad.yaml": "tile: {rows: 0}\n"}),
    # ---- numeric options
    Case("batch-size-0", "eval {good}/chip.h5 --batch-size 0", r"argument --batch-size: must be an integer from 1 to 65536, got '0'"),
    Case("batch-size-negative", "eval {good}/chip.h5 --batch-size -1", r"argument --batch-size: must be an integer from 1 to 65536"),
    Case("batch-size-float", "train --model mlp --batch-size 2.5 -o {tmp}/m.pt", r"argument --batch-size: must be an integer"),
    Case("repeats-negative", "robustness {good}/lenet5.pt --repeats -3", r"argument --repeats: must be an integer from 1 to 10000"),
    Case("epochs-0", "train --model mlp --epochs 0 -o {tmp}/m.pt", r"argument --epochs: must be an integer from 1 to 10000"),
    Case("lr-nan", "train --model mlp --lr nan -o {tmp}/m.pt", r"argument --lr: must be a number > 0"),
    Case("beta-above-1", "train --model mlp --beta 1.5 -o {tmp}/m.pt", r"argument --beta: must be a number from 0 to 1"),
    Case("qat-1-bit", "train --model mlp --qat 1 -o {tmp}/m.pt", r"argument --qat: must be an integer from 2 to 16"),
    Case("noise-negative", "train --model mlp --noisy -0.1 -o {tmp}/m.pt", r"argument --noisy: must be a number >= 0"),
    Case("seed-negative", "map {good}/lenet5.pt --chip pcm --seed -1 -o {tmp}/out.h5", r"argument --seed: must be an integer from 0 to 2\*\*63 - 1, got '-1'"),
    Case("drift-negative", "eval {good}/chip.h5 --drift=-5s", r"argument --drift: a duration must be finite and >= 0"),
    Case("sigmas-huge-logspace", "robustness {good}/lenet5.pt --sigmas logspace(0,1,1e9)", r"argument --sigmas: use 'logspace"),
    Case("sigmas-negative", "robustness {good}/lenet5.pt --sigmas 0.1,0.3,1,3,-1", r"argument --sigmas: use 'logspace"),
    Case("sigmas-too-few-to-fit", "robustness {good}/lenet5.pt --sigmas 0.1,1", r"argument --sigmas: use .*\(5 to 1000 finite values > 0\)"),
    Case("sigmas-zero", "robustness {good}/lenet5.pt --sigmas 0,0.1,0.3,1,3", r"argument --sigmas: use"),
    Case("demo-unknown-preset", "demo --chip pcmm -o {tmp}/demo", rf"argument --chip: unknown preset 'pcmm'; choose from {PRESET_LIST}"),
    Case("bench-unknown-preset", "bench model --chip pcmm -o {tmp}/m.json", rf"argument --chip: unknown preset 'pcmm'; choose from {PRESET_LIST}"),
    Case("noise-after-unknown-module", "robustness {good}/lenet5.pt --data synthetic --where nope --sigmas 0.1,0.2,0.3,0.4,0.5 --repeats 1 --plot {tmp}/r.png",
         r"no module named 'nope' in LeNet5"),
    Case("map-unknown-layer", "map {good}/lenet5.pt --chip pcm --layers nope -o {tmp}/out.h5", r"no module named 'nope' in LeNet5"),
    Case("percentile-0", "calibrate {good}/chip.h5 --q 0 --in-place", r"argument --q: must be a number > 0 and <= 100, got '0'"),
    Case("samples-0", "calibrate {good}/chip.h5 --samples 0 --in-place", r"argument --samples: must be an integer from 1 to 10000000"),
    Case("target-above-1", "denoise {good}/chip.h5 --target 98 --in-place", r"argument --target: must be a number from 0 to 1"),
    Case("workers-0", "sweep {good}/spec.yaml -o {tmp}/s.h5 --workers 0", r"argument --workers: must be an integer from 1 to 1024"),
    Case("bench-size-0", "bench tile --size 0 -o {tmp}/t.json", r"argument --size: must be an integer from 1 to 16384"),
    Case("bench-batch-0", "bench model --batch 0 -o {tmp}/m.json", r"argument --batch: must be an integer from 1 to 65536"),
    Case("demo-chips-0", "demo --chips 0 -o {tmp}/demo", r"argument --chips: must be an integer from 1 to 10000"),
    Case("unknown-option", "eval {good}/chip.h5 --batchsize 4", r"unrecognized arguments: --batchsize 4"),
    # ---- --model-args and model names
    Case("model-args-not-json", "map {good}/state.pt --model lenet5 --model-args not-json --chip pcm -o {tmp}/out.h5", r"argument --model-args: not valid JSON"),
    Case("model-args-list", "robustness {good}/state.pt --model lenet5 --model-args [8]", r"argument --model-args: must be a JSON object"),
    Case("model-args-unknown", "map {good}/state.pt --model lenet5 --model-args {{\"colour\":1}} --chip pcm -o {tmp}/out.h5", r"zoo model 'lenet5' has no argument 'colour'"),
    Case("model-unknown", "map {good}/state.pt --model lenet9 --chip pcm -o {tmp}/out.h5", r"unknown zoo model 'lenet9'"),
    Case("model-unknown-train", "train --model resnet99 --data synthetic -o {tmp}/m.pt", r"unknown zoo model 'resnet99'"),
    Case("state-dict-without-model", "map {good}/state.pt --chip pcm -o {tmp}/out.h5", r"state\.pt is a plain state_dict: name the model \(--model"),
    Case("weights-do-not-fit", "map {good}/state.pt --model mlp --chip pcm -o {tmp}/out.h5", r"state\.pt: the weights do not fit MLP"),
    # ---- outputs
    Case("output-is-the-input", "map {good}/lenet5.pt --chip pcm -o {good}/lenet5.pt", r"-o .*lenet5\.pt: this is also an input"),
    Case("output-is-the-input-by-link", "map {good}/lenet5.pt --chip pcm -o {tmp}/link.pt", r"-o .*link\.pt: this is also an input", {"link.pt": "->lenet5.pt"}),
    Case("output-is-the-chip-config", "map {good}/lenet5.pt --chip {good}/chip.yaml -o {good}/chip.yaml", r"-o .*chip\.yaml: this is also an input"),
    Case("output-is-the-teacher", "train --model lenet5 --distill {good}/lenet5.pt -o {good}/lenet5.pt", r"-o .*lenet5\.pt: this is also an input"),
    Case("plot-is-the-checkpoint", "robustness {good}/lenet5.pt --plot {good}/lenet5.pt", r"--plot .*lenet5\.pt: this is also an input"),
    Case("csv-is-the-store", "report {good}/chip.h5 --csv {good}/chip.h5", r"--csv .*chip\.h5: this is also an input"),
    Case("store-is-the-spec", "sweep {good}/spec.yaml -o {good}/spec.yaml", r"-o .*spec\.yaml: this is also an input"),
    Case("store-is-the-specs-checkpoint", "sweep {good}/spec.yaml -o {good}/lenet5.pt", r"-o .*lenet5\.pt: this is also an input"),
    Case("output-below-a-file", "map {good}/lenet5.pt --chip pcm -o {good}/lenet5.pt/chip.h5", r"-o .*: cannot create its folder: .*lenet5\.pt is a file"),
    Case("output-is-a-folder", "map {good}/lenet5.pt --chip pcm -o {tmp}/dir", r"-o .*dir: is a folder; give a file name", {"dir/x": "x"}),
    Case("calibrate-output-below-a-file", "calibrate {good}/chip.h5 -o {good}/chip.yaml/c.h5", r"-o .*cannot create its folder"),
    Case("bench-output-below-a-file", "bench tile -o {good}/chip.yaml/t.json", r"-o .*cannot create its folder"),
    Case("demo-output-is-a-file", "demo -o {good}/chip.yaml", r"-o .*chip\.yaml: is a file, not a folder"),
    # ---- checkpoints
    Case("checkpoint-random-bytes", "map {tmp}/x.pt --chip pcm -o {tmp}/out.h5", r"x\.pt: not a torch checkpoint", {"x.pt": RANDOM_BYTES}),
    Case("checkpoint-random-bytes-allow-pickle", "map {tmp}/x.pt --allow-pickle --chip pcm -o {tmp}/out.h5", r"x\.pt: not a torch checkpoint", {"x.pt": RANDOM_BYTES}),
    Case("checkpoint-is-hdf5", "map {good}/chip.h5 --chip pcm -o {tmp}/out.h5", r"chip\.h5: not a torch checkpoint but an HDF5 file"),
    Case("checkpoint-is-text", "robustness {tmp}/x.pt", r"x\.pt: not a torch checkpoint", {"x.pt": "weights = [1, 2, 3]\n"}),
    Case("checkpoint-is-a-zip", "map {tmp}/x.pt --chip pcm -o {tmp}/out.h5", r"x\.pt: not a torch checkpoint \(a damaged zip", {"x.pt": b"PK\x03\x04" + RANDOM_BYTES}),
    Case("checkpoint-missing", "map {tmp}/absent.pt --chip pcm -o {tmp}/out.h5", r"absent\.pt: no such file"),
    Case("checkpoint-pickled-module", "map {good}/whole.pt --chip pcm -o {tmp}/out.h5", r"whole\.pt holds pickled Python objects.*--allow-pickle"),
    Case("teacher-random-bytes", "train --model mlp --data synthetic --distill {tmp}/t.pt -o {tmp}/m.pt", r"t\.pt: not a torch checkpoint", {"t.pt": RANDOM_BYTES}),
    # ---- data sets
    Case("data-unknown", "robustness {good}/lenet5.pt --data imagenet", r"unknown data set 'imagenet'"),
    Case("data-unknown-train", "train --model mlp --data synthetic:x -o {tmp}/m.pt", r"unknown data set 'synthetic:x'"),
    Case("mnist-corrupt-gz", "train --model mlp --data mnist:{tmp}/mnist -o {tmp}/m.pt", r"train-images-idx3-ubyte\.gz: not a readable gzip file",
         _mnist(**{"mnist/train-images-idx3-ubyte.gz": b"\x1f\x8b" + RANDOM_BYTES})),
    Case("mnist-truncated-gz", "train --model mlp --data mnist:{tmp}/mnist -o {tmp}/m.pt", r"train-images-idx3-ubyte\.gz: not a readable gzip file",
         _mnist(**{"mnist/train-images-idx3-ubyte.gz": gzip.compress(RANDOM_BYTES)[:100]})),
    Case("mnist-not-idx", "train --model mlp --data mnist:{tmp}/mnist -o {tmp}/m.pt", r"t10k-labels-idx1-ubyte\.gz: not an IDX file",
         _mnist(**{"mnist/t10k-labels-idx1-ubyte.gz": gzip.compress(b"labels")})),
    Case("mnist-counts-differ", "train --model mlp --data mnist:{tmp}/mnist -o {tmp}/m.pt", r"MNIST .*mnist: train images .* and labels .* do not match",
         _mnist(**{"mnist/train-labels-idx1-ubyte.gz": gzip.compress(_idx(np.arange(3)))})),
    Case("mnist-missing", "train --model mlp --data mnist:{tmp}/nowhere -o {tmp}/m.pt", r"MNIST: .*nowhere lacks train-images-idx3-ubyte"),
    Case("cifar-random-bytes", "train --model mlp --data cifar10:{tmp}/cifar -o {tmp}/m.pt", r"data_batch_1: not a CIFAR-10 python batch",
         dict.fromkeys(CIFAR_NAMES, RANDOM_BYTES)),
    # ---- sweep specs
    _spec("chip: {preset: pcm, tile: {rows: true}}\n", r"spec\.yaml: chip: tile\.rows: must be an integer", "spec-chip-rows-true"),
    _spec("chip: pcmm\n", rf"spec\.yaml: 'pcmm' is neither a preset \({PRESET_LIST}\)", "spec-chip-unknown-preset"),
    _spec("repeats: true\n", r"spec\.yaml: repeats: must be an integer >= 1 and <= 10000 \(got true\)", "spec-repeats-true"),
    _spec("seed: .inf\n", r"spec\.yaml: seed: ", "spec-seed-inf"),
    _spec("chip: [pcm]\n", r"spec\.yaml: chip: must be a string or a mapping \(key: value\) \(got \['pcm'\]\)", "spec-chip-list"),
    Case("spec-axis-nested-list", "sweep {tmp}/spec.yaml -o {tmp}/store.h5", r"spec\.yaml: axes\.tile\.rows\.0: must be a number or .*\(got \[1\]\)",
         {"spec.yaml": "model: {checkpoint: '{good}/lenet5.pt'}\naxes:\n  tile.rows: [[1]]\n"}),
    _spec("colour: blue\n", r"spec\.yaml: colour: unknown field", "spec-unknown-field"),
    _spec(ANCHOR_BOMB.replace("a: &a", "x: &a"), r"spec\.yaml: not valid YAML: anchors and aliases", "spec-anchor-bomb"),
    Case("spec-axis-bits-7.5", "sweep {tmp}/spec.yaml -o {tmp}/store.h5", r"spec\.yaml: axis tile\.adc\.bits: must be an integer .*\(got 7\.5\)",
         {"spec.yaml": "model: {checkpoint: '{good}/lenet5.pt'}\naxes: {tile.adc.bits: [6, 7.5]}\n"}),
    Case("spec-binary", "sweep {tmp}/spec.yaml -o {tmp}/store.h5", r"spec\.yaml: not a text file", {"spec.yaml": RANDOM_BYTES}),
    Case("spec-missing", "sweep {tmp}/absent.yaml -o {tmp}/store.h5", r"absent\.yaml: no such file"),
    # ---- chip files and stores
    Case("chip-file-random-bytes", "eval {tmp}/x.h5", r"x\.h5", {"x.h5": RANDOM_BYTES}),
    Case("chip-file-is-a-checkpoint", "calibrate {good}/lenet5.pt --in-place", r"lenet5\.pt"),
    Case("chip-file-missing", "denoise {tmp}/absent.h5 --target 0.9 --in-place", r"absent\.h5"),
    Case("chip-file-is-a-folder", "eval {tmp}/dir.h5", r"dir\.h5: is a folder, not a file", {"dir.h5/x": "x"}),
    Case("store-missing", "report {tmp}/absent.h5", r"absent\.h5: no such file"),
    Case("store-random-bytes", "report {tmp}/s.h5", r"s\.h5", {"s.h5": RANDOM_BYTES}),
    Case("store-is-a-chip-file", "report {good}/chip.h5", r"chip\.h5: not an xbarsim sweep store"),
    # ---- issue 22: what is not a regular file
    Case("chip-config-fifo", "map {good}/lenet5.pt --chip {tmp}/fifo.yaml -o {tmp}/out.h5", r"chip config .*fifo\.yaml: is a FIFO \(named pipe\), not a regular file",
         {"fifo.yaml": "|fifo"}),
    Case("chip-config-dev-zero", "map {good}/lenet5.pt --chip /dev/zero -o {tmp}/out.h5", r"chip config /dev/zero: is a character device, not a regular file"),
    Case("chip-file-fifo", "eval {tmp}/fifo.h5", r"fifo\.h5: is a FIFO", {"fifo.h5": "|fifo"}),
    Case("chip-file-dev-zero", "eval /dev/zero", r"/dev/zero: is a character device"),
    Case("checkpoint-fifo", "map {tmp}/fifo.pt --chip pcm -o {tmp}/out.h5", r"fifo\.pt: is a FIFO", {"fifo.pt": "|fifo"}),
    Case("checkpoint-dev-zero", "robustness /dev/zero", r"/dev/zero: is a character device"),
    Case("spec-fifo", "sweep {tmp}/spec.yaml -o {tmp}/store.h5", r"spec\.yaml: is a FIFO", {"spec.yaml": "|fifo"}),
    Case("store-dev-zero", "report /dev/zero", r"/dev/zero: is a character device"),
    # ---- issue 22: the size of what input asks for
    _spec("seed: 18446744073709551615\n", r"spec\.yaml: seed: the seed must be an integer from 0 to 2\*\*63 - 1, got 18446744073709551615", "spec-seed-2**64-1"),
    _spec("seed: 9223372036854775807\nrepeats: 2\n", r"spec\.yaml: seed \+ repeats - 1 must be <= 2\*\*63 - 1", "spec-seed-plus-repeats-past-2**63"),
    _spec("repeats: 100000000\n", r"spec\.yaml: repeats: must be an integer >= 1 and <= 10000", "spec-repeats-1e8"),
    _spec("test_samples: 100000000\n", r"spec\.yaml: test_samples: must be an integer >= 1 and <= 10000000", "spec-test-samples-1e8"),
    Case("spec-epochs-1e9", "sweep {tmp}/spec.yaml -o {tmp}/store.h5", r"spec\.yaml: model: train: epochs must be from 1 to 10,000, got 1000000000",
         {"spec.yaml": "model: {zoo: mlp, train: {epochs: 1000000000}}\naxes: {tile.adc.bits: [6]}\n"}),
    Case("spec-batch-size-1e9", "sweep {tmp}/spec.yaml -o {tmp}/store.h5", r"spec\.yaml: model: train: batch_size",
         {"spec.yaml": "model: {zoo: mlp, train: {batch_size: 1000000000}}\naxes: {tile.adc.bits: [6]}\n"}),
    Case("spec-work-over-the-limit", "sweep {good}/spec.yaml -o {tmp}/store.h5 --max-work 10",
         r"sweep .* asks for 20 network evaluations \(1 rows x 20 test samples\), over the limit of 10: .*--max-work 20"),
    Case("robustness-work-over-the-limit", "robustness {good}/lenet5.pt --repeats 10000 --sigmas logspace(-2,0,1000) --plot {tmp}/r.png",
         r"asks for [\d,]+ network evaluations \(1000 levels x 10000 repeats x 359 test samples\), over the limit of 100,000,000"),
    Case("seed-2**63", "map {good}/lenet5.pt --chip pcm --seed 9223372036854775808 -o {tmp}/out.h5", r"argument --seed: must be an integer from 0 to 2\*\*63 - 1"),
    Case("epochs-1e9", "train --model mlp --epochs 1000000000 -o {tmp}/m.pt", r"argument --epochs: must be an integer from 1 to 10000"),
    Case("drift-1e300y", "eval {good}/chip.h5 --drift 1e300y", r"argument --drift: a duration must be at most 1e\+12 s"),
    Case("network-too-large-model-args", "map {good}/state.pt --model mlp --model-args {{\"hidden\":[1099511627776]}} --chip pcm -o {tmp}/out.h5",
         r"--model mlp: the network would need [\d,.]+ GiB for its parameters .*more than the [\d,.]+ [GM]iB of memory available"),
    Case("model-args-zero-channels", "map {good}/state.pt --model lenet5 --model-args {{\"image_size\":8,\"in_channels\":0}} --chip pcm -o {tmp}/out.h5",
         r"zoo model 'lenet5': argument in_channels must be an integer from 1 to 2\*\*62 \(got 0\)"),
    Case("model-args-negative-size", "map {good}/state.pt --model lenet5 --model-args {{\"image_size\":-1}} --chip pcm -o {tmp}/out.h5",
         r"zoo model 'lenet5': argument image_size must be an integer from 1 to 2\*\*62 \(got -1\)"),
    Case("model-args-past-int64", "map {good}/state.pt --model mlp --model-args {{\"hidden\":[99999999999999999999999]}} --chip pcm -o {tmp}/out.h5",
         r"zoo model 'mlp': argument hidden must be an integer from 1 to 2\*\*62"),
    Case("network-too-large-checkpoint", "map {tmp}/huge.pt --chip pcm -o {tmp}/out.h5",
         r"huge\.pt: network: the network would need [\d,.]+ GiB for its parameters",
         {"huge.pt": _forged_checkpoint(network={"zoo": "lenet5", "kwargs": {"image_size": 10**7}})}),
    Case("network-too-large-spec", "sweep {tmp}/spec.yaml -o {tmp}/store.h5", r"model: the network would need [\d,.]+ GiB",
         {"spec.yaml": "model: {zoo: mlp, kwargs: {hidden: [1099511627776]}}\naxes: {tile.adc.bits: [6]}\n"}),
    # ---- issue 22: nesting
    _map_with_chip(f"a: {_nested(TOO_DEEP)}\n", r"bad\.yaml: not valid YAML: nested more than 64 levels deep", "chip-yaml-nested-deep"),
    _map_with_chip(f'{{"a": {_nested(TOO_DEEP)}}}', r"bad\.json: nested more than 64 levels deep", "chip-json-nested-deep", "json"),
    _spec(f"notes: {_nested(TOO_DEEP)}\n", r"spec\.yaml: not valid YAML: nested more than 64 levels deep", "spec-nested-deep"),
    Case("model-args-nested-deep", "map {good}/state.pt --model lenet5 --model-args {{\"a\":" + _nested(TOO_DEEP) + "}} --chip pcm -o {tmp}/out.h5",
         r"argument --model-args: .*nested more than 64 levels deep"),
    Case("checkpoint-nested-deep", "map {tmp}/deep.pt --chip pcm -o {tmp}/out.h5", r"deep\.pt: .*nested more than 64 levels deep",
         {"deep.pt": _forged_checkpoint(network={"zoo": "lenet5", "kwargs": {"image_size": _deep_list(200)}})}),
    # ---- issue 22: names in files are data
    Case("spec-zoo-os-system", "sweep {tmp}/spec.yaml -o {tmp}/store.h5",
         r"spec\.yaml: model\.zoo: unknown zoo model 'os:system'; the zoo has gru, lenet5, .*never a module path",
         {"spec.yaml": "model: {zoo: 'os:system', kwargs: {command: 'touch {tmp}/pwned'}}\naxes: {tile.adc.bits: [6]}\n"}),
    # ---- issue 22: chip files that were misreported or half-read
    Case("chip-file-extra-root-group", "eval {tmp}/x.h5", r"x\.h5: unexpected members \['hooks'\] at the root",
         {"x.h5": _edited_chip(lambda f: f.create_group("hooks"))}),
    Case("chip-file-targets-wrong-shape", "eval {tmp}/x.h5", r"x\.h5: .*features\.0.*m0/targets.*holds 20 inputs x 6 outputs.*needs 25 x 6",
         {"x.h5": _edited_chip(lambda f: _replace(f, f"{CONV}/targets", f[f"{CONV}/targets"][()][:20]))}),
    Case("chip-file-drift-time-1e300", "eval {tmp}/x.h5", r"x\.h5: .*features\.0.*t_s.*at most 1e\+12 s",
         {"x.h5": _edited_chip(lambda f: f[CONV].attrs.__setitem__("t_s", 1e300))}),
    # ---- issue 22: outputs that are inputs by another name
    Case("calibrate-without-output", "calibrate {good}/chip.h5", r"one of the arguments -o/--output --in-place is required"),
    Case("calibrate-output-is-the-input-by-dots", "calibrate {good}/chip.h5 -o {good}/../{goodname}/./chip.h5", r"-o .*chip\.h5: this is also an input.*--in-place"),
    Case("calibrate-output-is-a-link-to-the-input", "calibrate {good}/chip.h5 -o {tmp}/link.h5", r"-o .*link\.h5: this is also an input", {"link.h5": "->chip.h5"}),
    Case("denoise-output-is-a-hard-link-to-the-input", "denoise {tmp}/copy-chip.h5 --target 0.9 -o {tmp}/hard.h5", r"-o .*hard\.h5: this is also an input",
         {"hard.h5": "=>chip.h5"}),
    Case("output-is-a-device", "map {good}/lenet5.pt --chip pcm -o /dev/null", r"-o /dev/null: "),
]


def _contents(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: a link by its target, a file by its hash, anything else by its kind."""
    return {str(p.relative_to(folder)): _entry(p) for p in sorted(folder.rglob("*")) if not p.is_dir() or p.is_symlink()}


def _entry(path: Path) -> str:
    if path.is_symlink():
        return f"-> {os.readlink(path)}"
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return "not a regular file"


def _write(tmp: Path, good: Path, files: dict[str, Content]) -> None:
    for name, content in files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(good, path)
        elif content == "|fifo":
            os.mkfifo(path)
        elif isinstance(content, str) and content.startswith("->"):
            path.symlink_to(good / content[2:])
        elif isinstance(content, str) and content.startswith("=>"):
            shutil.copy(good / content[2:], tmp / f"copy-{content[2:]}")
            os.link(tmp / f"copy-{content[2:]}", path)
        elif isinstance(content, str):
            path.write_text(content.replace("{good}", str(good)).replace("{tmp}", str(tmp)))
        else:
            path.write_bytes(content)


def test_the_corpus_is_large_and_names_are_unique():
    assert len(CASES) >= 40 and len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gets_one_line_and_changes_no_good_file(case, lenet_files, tmp_path, capsys):
    _write(tmp_path, lenet_files, case.files)
    argv = [token.format(good=lenet_files, goodname=lenet_files.name, tmp=tmp_path) for token in case.argv.split()]
    before, given = _contents(lenet_files), _contents(tmp_path)
    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own refusals
        status = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status not in (0, None), err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert re.search(case.names, lines[0]), lines[0]
    assert _contents(lenet_files) == before
    assert _contents(tmp_path) == given  # nothing written beside them: no output, journal, lock or link replaced


def test_debug_shows_the_traceback(lenet_files, tmp_path):
    with pytest.raises(Exception, match="not a torch checkpoint"):
        main(["--debug", "map", str(lenet_files / "chip.h5"), "--chip", "pcm", "-o", str(tmp_path / "x.h5")])
    with pytest.raises(Exception, match="not a torch checkpoint"):
        main(["map", str(lenet_files / "chip.h5"), "--chip", "pcm", "-o", str(tmp_path / "x.h5"), "--debug"])


def test_version_and_defaults_in_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and re.fullmatch(r"xbarsim \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = capsys.readouterr().out
    assert "(default: 512)" in out and "(default: digits)" in out


def test_the_installed_entry_point_answers_in_one_line(lenet_files, tmp_path):
    """The same contract from a separate process (exit status 2, one stderr line), with a timeout: an anchor bomb
    that were expanded would hang here instead of failing the test run."""
    import os
    import subprocess
    import sys

    (tmp_path / "bomb.yaml").write_text(ANCHOR_BOMB)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "xbarsim.cli", "map", str(lenet_files / "lenet5.pt"), "--chip", str(tmp_path / "bomb.yaml"),
               "-o", str(tmp_path / "out.h5")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "bomb.yaml: not valid YAML: anchors and aliases" in done.stderr
    assert not (tmp_path / "out.h5").exists()


def test_a_gzip_bomb_is_not_expanded(lenet_files, tmp_path, capsys, monkeypatch):
    from xbarsim.models import data

    monkeypatch.setattr(data, "MAX_IDX_BYTES", 1000)  # the tiny images file (3,152 bytes) stands in for a bomb
    _write(tmp_path, lenet_files, _mnist())
    assert main(["train", "--model", "mlp", "--data", f"mnist:{tmp_path / 'mnist'}", "-o", str(tmp_path / "m.pt")]) == 2
    assert capsys.readouterr().err.strip().endswith("train-images-idx3-ubyte.gz: more than 1,000 bytes; not an MNIST file")
