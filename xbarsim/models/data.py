"""Data sets: scikit-learn's digits (built in, the default), MNIST and CIFAR-10 from local
files, a synthetic set, and text for character-level language models (CPython's documentation,
``pydoc``, or a user's file, ``text:PATH``; ``models.text``). Images are float32 tensors (N, C, H, W)
in [0, 1], labels int64; text is windows of character indices (N, T) int64, the targets the same
windows shifted by one character."""

from __future__ import annotations

import gzip
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import XbarsimError
from . import text


class DataError(XbarsimError):
    """A data set that cannot be read: names the file and the problem."""


@dataclass(frozen=True)
class DataSplit:
    """A labelled data set with a train and a test split (and a validation split, for text).
    ``task``: "classification" (metric: accuracy) or "language" (next-character prediction; metric:
    bits per character); ``classes``: the number of classes (the vocabulary), when fixed by the data set."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    task: str = "classification"
    classes: int | None = None

    @property
    def num_classes(self) -> int:
        return self.classes if self.classes is not None else int(max(self.y_train.max(), self.y_test.max()) + 1)

    @property
    def metric(self) -> str:
        """The data set's metric: "accuracy", or "bpc" (bits per character) for text."""
        return "bpc" if self.task == "language" else "accuracy"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. (1, 8, 8)."""
        return tuple(self.x_train.shape[1:])


DATA_HELP = "digits, synthetic, mnist:PATH, cifar10:PATH, pydoc or text:PATH"


def load(spec: str, seed: int = 0) -> DataSplit:
    """``digits``, ``mnist:PATH``, ``cifar10:PATH``, ``synthetic``, ``pydoc`` or ``text:PATH``."""
    name, _, path = spec.partition(":")
    if name == "digits" and not path:
        return digits(seed)
    if name == "pydoc" and not path:
        return text.split_text(text.pydoc_text(), "pydoc")
    if name == "text" and path:
        return text.split_text(text.read_text(Path(path)), Path(path).name)
    if name == "synthetic" and not path:
        return synthetic(seed=seed)
    if name == "mnist" and path:
        return mnist(Path(path))
    if name == "cifar10" and path:
        return cifar10(Path(path))
    raise DataError(f"unknown data set {spec!r}; use {DATA_HELP}")


def _split(name: str, x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> DataSplit:
    """Stratified split with a fixed seed."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), bool)
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        test[rng.permutation(idx)[: int(round(test_fraction * len(idx)))]] = True
    tx, ty = torch.from_numpy(np.ascontiguousarray(x, np.float32)), torch.from_numpy(y.astype(np.int64))
    return DataSplit(name, tx[~test], ty[~test], tx[test], ty[test])


def hold_out(data: DataSplit, fraction: float, seed: int) -> DataSplit:
    """Split ``data``'s train split into a fitting part (the result's train split) and a
    validation part (the result's test split): a seeded random ``fraction`` of it."""
    if not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must be in (0, 1), got {fraction}")
    n = len(data.y_train)
    n_val = int(round(fraction * n))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"cannot hold out {fraction:.0%} of {n} training samples for validation")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val, fit = order[:n_val], order[n_val:]
    return DataSplit(f"{data.name} (validation)", data.x_train[fit], data.y_train[fit], data.x_train[val], data.y_train[val])


def digits(seed: int = 0) -> DataSplit:
    """scikit-learn's 1797 8x8 handwritten digits, scaled to [0, 1]; 20% held out for test."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _split("digits", bunch.images[:, None] / 16.0, bunch.target, 0.2, seed)


def synthetic(n: int = 2000, shape: tuple[int, ...] = (1, 8, 8), num_classes: int = 10, seed: int = 0) -> DataSplit:
    """Gaussian class prototypes plus noise: a quick, learnable stand-in for image data."""
    rng = np.random.default_rng(seed)
    prototypes = rng.uniform(0, 1, (num_classes,) + shape)
    y = rng.integers(0, num_classes, n)
    x = np.clip(prototypes[y] + 0.25 * rng.standard_normal((n,) + shape), 0, 1)
    return _split("synthetic", x, y, 0.2, seed)


_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


MAX_IDX_BYTES = 2**30
"""An IDX file (after gunzip) larger than this is refused: MNIST's largest is 47 MB; a gzip bomb is not read."""


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read(MAX_IDX_BYTES + 1)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable gzip file ({exc or type(exc).__name__})") from None
    if len(raw) > MAX_IDX_BYTES:
        raise DataError(f"{path}: more than {MAX_IDX_BYTES:,} bytes; not an MNIST file")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or len(raw) < 4 + 4 * raw[3]:
        raise DataError(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", ndim, 4).astype(np.int64)
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: truncated IDX file ({data.size} of {int(np.prod(dims))} values)")
    return data.reshape(dims)


def mnist(folder: Path) -> DataSplit:
    """MNIST from the four IDX files (optionally .gz) in ``folder``."""
    arrays = {}
    for key, stem in _MNIST_FILES.items():
        candidates = [folder / stem, folder / (stem + ".gz")]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"MNIST: {folder} lacks {stem}[.gz]; expected the files {', '.join(_MNIST_FILES.values())}")
        arrays[key] = _read_idx(found)
    for part in ("train", "test"):
        images, labels = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"MNIST {folder}: {part} images {images.shape} and labels {labels.shape} do not match "
                            "(expected (N, H, W) and (N,))")  # fmt: skip
    to_x = lambda a: torch.from_numpy(a[:, None].astype(np.float32) / 255.0)  # noqa: E731
    to_y = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    return DataSplit("mnist", to_x(arrays["x_train"]), to_y(arrays["y_train"]), to_x(arrays["x_test"]), to_y(arrays["y_test"]))


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10's batch files (dicts of NumPy arrays, bytes and lists) and nothing else."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}  # fmt: skip

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
        x = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(batch[b"labels"], np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        problem = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise DataError(f"{path}: not a CIFAR-10 python batch ({problem})") from None
    if y.shape != (len(x),) or (y.size and not 0 <= y.min() <= y.max() < 10):
        raise DataError(f"{path}: not a CIFAR-10 python batch ({len(x)} images; labels {y.shape}, not one in 0..9 each)")
    return x, y


def cifar10(folder: Path) -> DataSplit:
    """CIFAR-10 from the python-pickle batches (``cifar-10-batches-py``) in ``folder``."""
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"CIFAR-10: {folder} lacks {', '.join(missing)}; expected {', '.join(names)}")
    train = [_cifar_batch(folder / n) for n in names[:5]]
    x_test, y_test = _cifar_batch(folder / "test_batch")
    to_x = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0)  # noqa: E731
    return DataSplit(
        "cifar10",
        to_x(np.concatenate([b[0] for b in train])),
        torch.from_numpy(np.concatenate([b[1] for b in train])),
        to_x(x_test),
        torch.from_numpy(y_test),
    )
