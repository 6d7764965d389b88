"""The results store of a sweep: one row per (point, repeat), kept safe through any kill.

Design: the fsync'd journal (``<store>.journal``, see ``journal.py``) is the only live record. The
HDF5 file is never modified in place: it is written whole to a temporary file that is then renamed
over the store (``atomic_write``) at the first row, every ``checkpoint_s`` seconds and at the end.
A SIGKILL at any instant, even mid-HDF5-write, therefore leaves a whole journal line or none, and
the old HDF5 file or the new one; the next run resumes from the journal. The journal is removed once every row is in
the HDF5 file with status ok. One sweep at a time writes a store (``lock.py``).

Why not SQLite in WAL mode as the live record: WAL needs shared memory between its users, which
network file systems (where long sweeps on clusters write) do not give; and it would add a second
file format beside the HDF5 result. An append-only line file fsync'd per row is the smallest record
a kill cannot break, and readers (``xbarsim report``) can read it while the sweep runs.

A store belongs to one spec (its digest); another spec is refused.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np
from pydantic import ValidationError

from ..atomic import atomic_write, make_parent
from ..paths import regular_file
from .journal import JournalWriter, StoreError, create_journal, header, journal_path, read_journal
from .lock import StoreLock
from .spec import SweepSpec

FORMAT = "xbarsim-sweep"
FORMAT_VERSION = 1
OK, FAILED = "ok", "failed"
METRICS = ("accuracy",)  # stored in every row (a fraction); the midpoint is computed from accuracies when reporting
CHECKPOINT_S = 30.0
Key = tuple[int, int]  # point_id, repeat

__all__ = ["FAILED", "OK", "ResultRow", "StoreError", "SweepResults", "SweepStore", "read_results"]


@dataclass
class ResultRow:
    point_id: int
    repeat: int
    seed: int
    wall_s: float
    status: str  # OK or FAILED
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""

    @property
    def key(self) -> Key:
        return self.point_id, self.repeat


class SweepStore:
    """The writer's side of a store: holds its lock, knows its rows, journals new ones.

    ``with SweepStore(path, spec) as store: ...``; a second writer is refused (``StoreBusyError``).
    Nothing is created on disk but the lock file until the first row arrives.
    """

    def __init__(self, path: str | Path, spec: SweepSpec, checkpoint_s: float = CHECKPOINT_S):
        self.path = Path(os.path.realpath(path))  # a link is written through: the store, journal and lock beside its target
        self.spec = spec
        self.checkpoint_s = checkpoint_s
        self.journal = journal_path(self.path)
        self._writer: JournalWriter | None = None
        make_parent(self.path)
        self._lock = StoreLock(self.path).acquire()
        try:
            self._remove_temporaries()
            self.rows = self._load()
        except BaseException:
            self.close()
            raise
        self._last_checkpoint = time.monotonic() if self.path.exists() else -math.inf  # a new store: at the first row

    def __enter__(self) -> SweepStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _remove_temporaries(self) -> None:
        """Delete what ``atomic_write`` left of this store's files when a kill cut it short (the lock is ours)."""
        mine = re.compile(rf"\.{re.escape(self.path.name)}\.(journal\.)?[a-z0-9_]{{8}}\.tmp")
        for path in self.path.parent.iterdir():
            if mine.fullmatch(path.name):
                path.unlink(missing_ok=True)

    def _load(self) -> dict[Key, ResultRow]:
        try:
            head, records, whole = read_journal(self.journal)
        except FileNotFoundError:
            if not self.path.exists():
                return {}
            spec, rows = _read_hdf5(self.path)
            self._check_same_spec(spec, self.path)
            return {row.key: row for row in rows}
        self._check_same_spec(_spec_of(head["spec_json"], self.journal), self.journal)
        rows = _journal_rows(records, self.spec, self.journal)
        self._writer = JournalWriter(self.journal, whole)
        return rows

    def _check_same_spec(self, stored: SweepSpec, where: Path) -> None:
        if stored.digest() != self.spec.digest():
            raise StoreError(
                f"{where} holds results of a different sweep spec ({stored.name!r}, digest {stored.digest()}; this spec: "
                f"{self.spec.name!r}, {self.spec.digest()}): write to another file"
            )

    def done(self) -> set[Key]:
        """(point_id, repeat) of every row that finished successfully."""
        return {key for key, row in self.rows.items() if row.status == OK}

    def complete(self) -> bool:
        return len(self.done()) == self.spec.row_count()

    def add(self, row: ResultRow) -> None:
        """Make ``row`` durable in the journal (fsync'd); rewrite the HDF5 file when a checkpoint is due."""
        if self._writer is None:  # the first new row: start the journal with every row known so far
            create_journal(self.journal, header(self.spec.canonical_json(), self.spec.digest()),
                           [asdict(r) for r in self.rows.values()])  # fmt: skip
            self._writer = JournalWriter(self.journal, self.journal.stat().st_size)
        self._writer.append(asdict(row))
        self.rows[row.key] = row  # a retried point replaces its failed row
        if time.monotonic() - self._last_checkpoint >= self.checkpoint_s:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Write the HDF5 file whole from the rows so far (atomically: a kill leaves the old file)."""
        write_hdf5(self.path, self.spec, list(self.rows.values()))
        self._last_checkpoint = time.monotonic()

    def finish(self) -> None:
        """Write the HDF5 file, then drop the journal if every row is in it with status ok."""
        if self._writer is None:
            return  # nothing live: the HDF5 file already holds every row
        self.checkpoint()
        if self.complete():
            self._writer.close()
            self._writer = None
            self.journal.unlink()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._lock.release()


@dataclass(frozen=True)
class SweepResults:
    """The tidy view of a store: one entry per row in every column, rows in (point, repeat) order."""

    spec: SweepSpec
    columns: dict[str, np.ndarray]  # point_id, repeat, seed, wall_s, status, error, <axis paths>, <metrics>
    live: bool = False  # read from the journal of a sweep running, or killed, now

    @property
    def finished(self) -> bool:
        """Whether every (point, repeat) has a successful row."""
        return int((self.columns["status"] == OK).sum()) == self.spec.row_count()

    def ok(self) -> SweepResults:
        keep = self.columns["status"] == OK
        return SweepResults(self.spec, {k: v[keep] for k, v in self.columns.items()}, self.live)

    def to_csv(self, path: str | Path) -> Path:
        names = list(self.columns)
        with atomic_write(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(names)
            for i in range(len(self.columns["point_id"])):
                writer.writerow([self.columns[n][i] for n in names])
        return Path(path)


def read_results(path: str | Path) -> SweepResults:
    """Everything in a store, without its spec file: from the journal while a sweep is running or after
    it was killed (the live record), else from the HDF5 file."""
    path = Path(path)
    journal = journal_path(path)
    try:
        head, records, _ = read_journal(journal)
    except FileNotFoundError:  # none, or removed by a sweep finishing this instant
        spec, rows = _read_hdf5(path)
        return SweepResults(spec, _columns(spec, rows))
    spec = _spec_of(head["spec_json"], journal)
    return SweepResults(spec, _columns(spec, list(_journal_rows(records, spec, journal).values())), live=True)


def write_hdf5(path: Path, spec: SweepSpec, rows: list[ResultRow]) -> None:
    """The whole store, written to a temporary file and renamed over ``path``."""
    columns = _columns(spec, rows)
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "spec_json": spec.canonical_json(),
                        "spec_digest": spec.digest(), "axes_json": json.dumps(list(spec.axes))})  # fmt: skip
        group = f.create_group("rows")
        for name in ("point_id", "repeat", "seed", "wall_s", "status", "error"):
            _put(group, name, columns[name])
        for metric in spec.stored_metrics():
            _put(group, f"metric_{metric}", columns[metric])
        for k, axis in enumerate(spec.axes):  # the axis values of each row, for readers without the spec
            _put(group, f"axis_{k}", columns[axis]).attrs["path"] = axis


def _put(group: h5py.Group, name: str, values: np.ndarray) -> h5py.Dataset:
    if values.dtype.kind == "U":
        return group.create_dataset(name, data=values.astype(object), dtype=h5py.string_dtype())
    return group.create_dataset(name, data=values)


def _columns(spec: SweepSpec, rows: list[ResultRow]) -> dict[str, np.ndarray]:
    rows = sorted(rows, key=lambda r: r.key)
    points = spec.points()
    columns = {
        "point_id": np.array([r.point_id for r in rows], np.int64),
        "repeat": np.array([r.repeat for r in rows], np.int64),
        "seed": np.array([r.seed for r in rows], np.int64),
        "wall_s": np.array([r.wall_s for r in rows], np.float64),
        "status": np.array([r.status for r in rows], str),
        "error": np.array([r.error for r in rows], str),
    }
    for metric in spec.stored_metrics():
        columns[metric] = np.array([r.metrics.get(metric, np.nan) for r in rows], np.float64)
    for axis, values in spec.axes.items():
        numeric = _numeric(values)
        columns[axis] = np.array([_cell(points[r.point_id][axis], numeric) for r in rows], np.float64 if numeric else str)
    return columns


def _read_hdf5(path: Path) -> tuple[SweepSpec, list[ResultRow]]:
    """The spec and rows of an HDF5 store, every array checked (dtype, shape, range) before use."""
    if not path.exists():
        raise StoreError(f"{path}: no such sweep store")
    regular_file(path, "sweep store")
    try:
        with h5py.File(path, "r") as f:
            spec, rows = _stored_rows(f, path)
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path}: not a readable sweep store ({exc})") from None
    by_key = {}
    for i, row in enumerate(rows):
        _check_row(row, spec, f"{path} row {i}")
        if row.key in by_key:
            raise StoreError(f"{path} row {i}: (point {row.point_id}, repeat {row.repeat}) is stored twice")
        by_key[row.key] = row
    return spec, rows


def _stored_rows(f: h5py.File, path: Path) -> tuple[SweepSpec, list[ResultRow]]:
    if not _attr_is(f, "format", FORMAT) or not isinstance(f.get("rows"), h5py.Group):
        raise StoreError(f"{path}: not an xbarsim sweep store")
    if not _attr_is(f, "format_version", FORMAT_VERSION):
        raise StoreError(f"{path}: sweep store format version {f.attrs.get('format_version')!r}, expected {FORMAT_VERSION}")
    spec = _in_written_order(_spec_of(f.attrs.get("spec_json"), path), f.attrs.get("axes_json"))
    group = f["rows"]
    n = _dataset(group, "point_id", "i", path).shape[0]
    ints = {name: _dataset(group, name, "i", path, n)[:].tolist() for name in ("point_id", "repeat", "seed")}
    wall_s = _dataset(group, "wall_s", "f", path, n)[:].tolist()
    texts = {name: _dataset(group, name, "S", path, n).asstr()[:].tolist() for name in ("status", "error")}
    names = spec.stored_metrics()
    metrics = {m: _dataset(group, f"metric_{m}", "f", path, n)[:].tolist() for m in names}
    return spec, [ResultRow(ints["point_id"][i], ints["repeat"][i], ints["seed"][i], wall_s[i], texts["status"][i],
                            {m: metrics[m][i] for m in names if texts["status"][i] == OK}, texts["error"][i])
                  for i in range(n)]  # fmt: skip


def _attr_is(f: h5py.File, name: str, expected: str | int) -> bool:
    value = f.attrs.get(name)
    return isinstance(value, (str, int, np.integer)) and not isinstance(value, bool) and value == expected


def _dataset(group: h5py.Group, name: str, kind: str, path: Path, length: int | None = None) -> h5py.Dataset:
    """``rows/<name>``, 1-D, of the dtype kind ``kind`` (i: integer, f: float, S: text), ``length`` long."""
    dataset = group.get(name)
    ok = isinstance(dataset, h5py.Dataset) and dataset.ndim == 1
    if ok and kind == "S":
        ok = h5py.check_string_dtype(dataset.dtype) is not None
    elif ok:
        ok = dataset.dtype.kind == kind or (kind == "i" and dataset.dtype.kind == "u")
    if not ok or (length is not None and dataset.shape[0] != length):
        raise StoreError(f"{path}: rows/{name} is missing or not a 1-D {dict(i='integer', f='float', S='text')[kind]} "
                         f"array of one entry per row")  # fmt: skip
    return dataset


def _journal_rows(records: list[dict], spec: SweepSpec, journal: Path) -> dict[Key, ResultRow]:
    """The journal's rows by key, each checked; a later line for a key (a retried point) wins."""
    rows = {}
    for number, record in enumerate(records, start=2):
        where = f"{journal} line {number}"
        try:
            row = ResultRow(**record)
        except TypeError:
            raise StoreError(f"{where}: not a result row") from None
        _check_row(row, spec, where)
        rows[row.key] = row
    return rows


def _check_row(row: ResultRow, spec: SweepSpec, where: str) -> None:
    """Raise StoreError naming ``where`` unless ``row`` is a row this spec can have."""
    n_points = spec.row_count() // spec.repeats
    integers = all(isinstance(v, int) and not isinstance(v, bool) for v in (row.point_id, row.repeat, row.seed))
    problem = ""
    if not integers or not (0 <= row.point_id < n_points and 0 <= row.repeat < spec.repeats):
        problem = f"point {row.point_id!r}, repeat {row.repeat!r} is not in this sweep"
    elif row.seed != spec.seed_of(row.repeat):
        problem = f"seed {row.seed} is not the seed of repeat {row.repeat} ({spec.seed_of(row.repeat)})"
    elif row.status not in (OK, FAILED) or not isinstance(row.error, str):
        problem = f"status {row.status!r} is neither {OK!r} nor {FAILED!r}"
    elif not (isinstance(row.wall_s, (int, float)) and math.isfinite(row.wall_s) and row.wall_s >= 0):
        problem = f"wall time {row.wall_s!r} is not a finite number >= 0"
    elif not isinstance(row.metrics, dict) or (row.status == OK and not all(_fraction(row.metrics.get(m)) for m in METRICS)):
        problem = f"metrics {row.metrics!r} are not fractions in [0, 1]"
    elif row.status == OK and not all(_non_negative(row.metrics.get(m)) for m in spec.stored_metrics() if m not in METRICS):
        problem = f"metrics {row.metrics!r}: bits per character, energy and latency must be finite numbers >= 0"
    if problem:
        raise StoreError(f"{where}: {problem}")


def _fraction(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


def _non_negative(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _spec_of(spec_json, where: Path) -> SweepSpec:
    if not isinstance(spec_json, str):
        raise StoreError(f"{where}: holds no sweep spec")
    try:
        return SweepSpec.model_validate_json(spec_json)
    except ValidationError as exc:
        raise StoreError(f"{where}: its sweep spec is not valid ({exc.errors()[0]['msg']})") from None


def _in_written_order(spec: SweepSpec, axes_json) -> SweepSpec:
    """The spec with its axes in the order the store was written with: stores of earlier versions kept
    the spec with sorted axes, and the order in ``axes_json``."""
    order = json.loads(axes_json) if isinstance(axes_json, str) else None
    if not isinstance(order, list) or sorted(order) != sorted(spec.axes) or order == list(spec.axes):
        return spec
    return spec.model_copy(update={"axes": {axis: spec.axes[axis] for axis in order}})


def _numeric(values: list) -> bool:
    return all((isinstance(v, (int, float)) and not isinstance(v, bool)) or v is None for v in values)


def _cell(value, numeric: bool):
    """An axis value as stored: on a numeric axis a float (None as NaN), else text."""
    if numeric:
        return np.nan if value is None else float(value)
    return str(value)
