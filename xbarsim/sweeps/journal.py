"""The live record of a sweep: an append-only journal of finished rows, one JSON object a line.

Line 1 is a header naming the spec (its digest and canonical JSON). Each later line is one row,
written with one ``write`` call and fsync'd before the sweep goes on, so a row in the journal
survives any kill. A kill in the middle of a write leaves at most one torn last line (no newline
at its end): readers ignore it, and the writer cuts it off before appending again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..errors import XbarsimError

FORMAT = "xbarsim-sweep-journal"
FORMAT_VERSION = 1


class StoreError(XbarsimError):
    """A store or journal that cannot be used for this sweep (names the file and the reason)."""


def journal_path(store: Path) -> Path:
    """Beside the store's real file (a store named through a link is written through it)."""
    store = Path(os.path.realpath(store))
    return store.with_name(store.name + ".journal")


def header(spec_json: str, spec_digest: str) -> dict[str, Any]:
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "spec_digest": spec_digest, "spec_json": spec_json}


def create_journal(path: Path, head: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """Write a journal whole (header and ``records``), atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text("".join(_line(r) for r in [head, *records]))


def read_journal(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """The header, the row records, and the length in bytes of the whole lines (a torn tail excluded).

    Raises FileNotFoundError if there is no journal, StoreError if a whole line is not a JSON object.
    """
    data = path.read_bytes()
    whole = data.rfind(b"\n") + 1  # everything after the last newline is a line torn by a kill
    records = []
    for number, line in enumerate(data[:whole].splitlines(), start=1):
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            record = None
        if not isinstance(record, dict):
            raise StoreError(f"{path} line {number}: not a journal record (the file was changed by hand?)")
        records.append(record)
    if not records or records[0].get("format") != FORMAT:
        raise StoreError(f"{path}: not an xbarsim sweep journal")
    head = records[0]
    if head.get("format_version") != FORMAT_VERSION or not isinstance(head.get("spec_json"), str):
        raise StoreError(f"{path}: journal format version {head.get('format_version')!r}, expected {FORMAT_VERSION}")
    return head, records[1:], whole


class JournalWriter:
    """Appends records to an existing journal, each one durable (fsync'd) before ``append`` returns."""

    def __init__(self, path: Path, whole_bytes: int):
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        if os.fstat(self._fd).st_size > whole_bytes:
            os.ftruncate(self._fd, whole_bytes)  # drop a line torn by a kill, so the next one starts clean
            os.fsync(self._fd)

    def append(self, record: dict[str, Any]) -> None:
        data = memoryview(_line(record).encode())
        while data:  # a single write in practice; the loop covers a short one
            data = data[os.write(self._fd, data) :]
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":")) + "\n"
