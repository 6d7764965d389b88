"""The resumable results store of a sweep: one HDF5 file, one row per (point, repeat).

Each finished row is first appended to a journal next to the store (``<store>.journal``, one
JSON line, flushed and fsync'd), then written to the HDF5 file, which is opened and closed
around every write. A crash or ``kill -9`` therefore loses at most the points in flight: on the
next open, rows in the journal that the HDF5 file lacks are written again, and an HDF5 file
damaged by a crash mid-write is rebuilt from the journal. The journal is removed once the sweep
is complete. A store belongs to one spec (its digest); another spec is refused.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .spec import SweepSpec

FORMAT = "xbarsim-sweep"
FORMAT_VERSION = 1
OK, FAILED = "ok", "failed"


@dataclass
class ResultRow:
    point_id: int
    repeat: int
    seed: int
    wall_s: float
    status: str  # OK or FAILED
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""


class StoreError(ValueError):
    """A store that cannot be used for this sweep (names the file and the reason)."""


class SweepStore:
    def __init__(self, path: str | Path, spec: SweepSpec):
        self.path = Path(path)
        self.spec = spec
        self.points = spec.points()
        self.journal = self.path.with_name(self.path.name + ".journal")
        if not self._readable():
            if self.path.exists() and not self.journal.exists():
                raise StoreError(f"{self.path}: not a readable sweep store, and no journal to rebuild it from")
            self._create()
        self._check_spec()
        self._replay_journal()

    # ------------------------------------------------------------------ file handling
    def _readable(self) -> bool:
        if not self.path.exists():
            return False
        try:
            with h5py.File(self.path, "r") as f:
                return f.attrs.get("format") == FORMAT and "rows" in f
        except OSError:
            return False

    def _create(self) -> None:
        """A new, empty store (written to a temporary file and renamed into place)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        try:
            with h5py.File(tmp, "w") as f:
                f.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "spec_json": self.spec.canonical_json(),
                                "spec_digest": self.spec.digest(), "axes_json": json.dumps(list(self.spec.axes))})  # fmt: skip
                rows = f.create_group("rows")
                for name, dtype in (("point_id", "i8"), ("repeat", "i8"), ("seed", "i8"), ("wall_s", "f8")):
                    rows.create_dataset(name, (0,), dtype, maxshape=(None,), chunks=(1024,))
                for name in ("status", "error"):
                    rows.create_dataset(name, (0,), h5py.string_dtype(), maxshape=(None,), chunks=(1024,))
                for metric in self._metric_names():
                    rows.create_dataset(f"metric_{metric}", (0,), "f8", maxshape=(None,), chunks=(1024,))
                for k, axis in enumerate(self.spec.axes):  # the axis values of each row, for readers without the spec
                    dtype = "f8" if _numeric(self.spec.axes[axis]) else h5py.string_dtype()
                    rows.create_dataset(f"axis_{k}", (0,), dtype, maxshape=(None,), chunks=(1024,)).attrs["path"] = axis
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _metric_names(self) -> list[str]:
        return ["accuracy"]  # the midpoint is computed from accuracies when reporting

    def _check_spec(self) -> None:
        with h5py.File(self.path, "r") as f:
            if int(f.attrs.get("format_version", -1)) != FORMAT_VERSION:
                raise StoreError(f"{self.path}: sweep store format version {f.attrs.get('format_version')}, expected {FORMAT_VERSION}")
            digest = f.attrs["spec_digest"]
            name = json.loads(f.attrs["spec_json"]).get("name")
        if digest != self.spec.digest():
            raise StoreError(
                f"{self.path} holds results of a different sweep spec ({name!r}, digest {digest}; this spec: "
                f"{self.spec.name!r}, {self.spec.digest()}): write to another file"
            )

    def _replay_journal(self) -> None:
        if not self.journal.exists():
            return
        stored = {(r, s) for r, s in self._index().items() if s == OK}
        for row in self._journal_rows():
            if row.status == OK and (row.point_id, row.repeat) in stored:
                continue
            self._write(row)

    def _journal_rows(self) -> list[ResultRow]:
        rows = []
        with open(self.journal) as f:
            for line in f:
                try:
                    rows.append(ResultRow(**json.loads(line)))
                except (json.JSONDecodeError, TypeError):
                    break  # a line cut short by a crash: everything before it is good
        return rows

    def _index(self) -> dict[tuple[int, int], str]:
        """(point_id, repeat) -> status of every stored row."""
        with h5py.File(self.path, "r") as f:
            rows = f["rows"]
            return {(int(p), int(r)): s.decode() if isinstance(s, bytes) else s
                    for p, r, s in zip(rows["point_id"][:], rows["repeat"][:], rows["status"][:])}  # fmt: skip

    # ------------------------------------------------------------------ rows
    def done(self) -> set[tuple[int, int]]:
        """(point_id, repeat) of every row that finished successfully."""
        return {key for key, status in self._index().items() if status == OK}

    def add(self, row: ResultRow) -> None:
        """Make ``row`` durable: journal line (fsync'd) first, then the HDF5 file."""
        with open(self.journal, "a") as f:
            f.write(json.dumps(asdict(row)) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._write(row)

    def _write(self, row: ResultRow) -> None:
        with h5py.File(self.path, "a") as f:
            rows = f["rows"]
            ids, repeats = rows["point_id"][:], rows["repeat"][:]
            same = np.flatnonzero((ids == row.point_id) & (repeats == row.repeat))
            index = int(same[0]) if same.size else len(ids)  # a retried point replaces its failed row
            if index == len(ids):
                for dataset in rows.values():
                    dataset.resize((index + 1,))
            values = {"point_id": row.point_id, "repeat": row.repeat, "seed": row.seed, "wall_s": row.wall_s,
                      "status": row.status, "error": row.error}  # fmt: skip
            values.update({f"metric_{m}": row.metrics.get(m, np.nan) for m in self._metric_names()})
            point = self.points[row.point_id]
            values.update({f"axis_{k}": _cell(point[axis], _numeric(values_)) for k, (axis, values_) in enumerate(self.spec.axes.items())})
            for name, value in values.items():
                rows[name][index] = value
            f.flush()

    def complete(self) -> bool:
        return len(self.done()) == len(self.points) * self.spec.repeats

    def finish(self) -> None:
        """Drop the journal once every row is in the HDF5 file."""
        if self.complete():
            self.journal.unlink(missing_ok=True)


@dataclass(frozen=True)
class SweepResults:
    """The tidy view of a store: one entry per row in every column."""

    spec: SweepSpec
    columns: dict[str, np.ndarray]  # point_id, repeat, seed, wall_s, status, error, <axis paths>, <metrics>

    def ok(self) -> SweepResults:
        keep = self.columns["status"] == OK
        return SweepResults(self.spec, {k: v[keep] for k, v in self.columns.items()})

    def to_csv(self, path: str | Path) -> Path:
        path = Path(path)
        names = list(self.columns)
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(names)
            for i in range(len(self.columns["point_id"])):
                writer.writerow([self.columns[n][i] for n in names])
        return path


def read_results(path: str | Path) -> SweepResults:
    """Everything in a store, without needing its spec file."""
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise StoreError(f"{path}: not a readable HDF5 file ({exc})") from exc
    with f:
        if f.attrs.get("format") != FORMAT:
            raise StoreError(f"{path}: not an xbarsim sweep store")
        spec = SweepSpec.model_validate_json(f.attrs["spec_json"])
        rows = f["rows"]
        columns = {name: rows[name][:] for name in ("point_id", "repeat", "seed", "wall_s")}
        columns["status"] = np.array([s.decode() if isinstance(s, bytes) else s for s in rows["status"][:]])
        columns["error"] = np.array([s.decode() if isinstance(s, bytes) else s for s in rows["error"][:]])
        for name in rows:
            if name.startswith("metric_"):
                columns[name[7:]] = rows[name][:]
            elif name.startswith("axis_"):
                values = rows[name][:]
                columns[rows[name].attrs["path"]] = values if values.dtype.kind == "f" else np.array([v.decode() for v in values])
    return SweepResults(spec, columns)


def _numeric(values: list) -> bool:
    return all((isinstance(v, (int, float)) and not isinstance(v, bool)) or v is None for v in values)


def _cell(value, numeric: bool):
    """An axis value as stored: on a numeric axis a float (None as NaN), else text."""
    if numeric:
        return np.nan if value is None else float(value)
    return str(value)
