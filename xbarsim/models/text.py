"""Character-level text for language models: CPython's own documentation (``pydoc_data.topics``, shipped
with every CPython, no download) or a user's UTF-8 file, as windows of character indices.

- Vocabulary (fixed, the same for every text): index 0 for any other character, 1 for a newline, 2..96 for
  the printable ASCII characters from space (32) to tilde (126). 97 symbols.
- ``pydoc``: the topics' texts concatenated in the sorted order of their names (Python 3.11: 464,970
  characters, 0.1% outside the vocabulary: typographic quotes and dashes).
- Split, by position: the first 90% of the characters train, the next 5% validation, the last 5% test.
- Each split is cut into non-overlapping windows of ``WINDOW`` characters; window k holds characters
  ``[k W, (k + 1) W)`` as inputs and the same shifted by one as targets, so every character after the first
  of a split is predicted once, with the characters before it in its window as context.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

WINDOW = 128  # characters per sequence
VOCAB_SIZE = 97
SPLIT = (0.90, 0.05, 0.05)  # train, validation, test fractions, in that order along the text
MAX_TEXT_BYTES = 1 << 28  # a text file larger than this (256 MiB) is refused


def encode(text: str) -> np.ndarray:
    """Character indices (int64) of ``text``; characters outside the vocabulary become 0."""
    codes = np.frombuffer(text.encode("utf-32-le"), np.uint32).astype(np.int64)
    ids = np.where((codes >= 32) & (codes < 127), codes - 30, 0)
    ids[codes == 10] = 1
    return ids


def decode(ids) -> str:
    """The text of character indices (index 0 shown as U+FFFD)."""
    table = ["\ufffd", "\n", *map(chr, range(32, 127))]
    return "".join(table[int(i)] for i in ids)


def pydoc_text() -> str:
    """CPython's documentation topics, concatenated in the sorted order of their names."""
    from pydoc_data.topics import topics

    return "".join(topics[name] for name in sorted(topics))


def read_text(path: Path) -> str:
    """A user's UTF-8 text file; ``DataError`` names the file when it cannot be used."""
    from .data import DataError

    if not path.is_file():
        raise FileNotFoundError(f"text file {path}: no such file")
    with open(path, "rb") as f:
        raw = f.read(MAX_TEXT_BYTES + 1)
    if len(raw) > MAX_TEXT_BYTES:
        raise DataError(f"{path}: more than {MAX_TEXT_BYTES:,} bytes of text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def windows(ids: np.ndarray, length: int = WINDOW) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets), each (n, length) int64: non-overlapping windows and the same shifted by one."""
    n = (len(ids) - 1) // length
    x = ids[: n * length].reshape(n, length)
    y = ids[1 : n * length + 1].reshape(n, length)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))


def split_text(text: str, name: str, length: int = WINDOW):
    """The ``DataSplit`` of a text: train, validation and test windows (the rule above)."""
    from .data import DataError, DataSplit

    ids = encode(text)
    first, second = int(SPLIT[0] * len(ids)), int((SPLIT[0] + SPLIT[1]) * len(ids))
    parts = [windows(part, length) for part in (ids[:first], ids[first:second], ids[second:])]
    if any(len(x) == 0 for x, _ in parts):
        raise DataError(f"{name}: {len(ids):,} characters are too few for a test split of windows of {length} "
                        f"(need at least {int((length + 1) / SPLIT[2]) + 1:,})")  # fmt: skip
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = parts
    return DataSplit(name, x_train, y_train, x_test, y_test, x_val=x_val, y_val=y_val, task="language", classes=VOCAB_SIZE)
