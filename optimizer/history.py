"""Call outcomes as data: `OutcomeBatch` in memory, one Parquet file per day on disk.

Holds the record layout and its validation; never estimates anything (see
`optimizer/model.py`) and imports pyarrow only when a file is read or written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from os import PathLike
from pathlib import Path

import numpy as np

from smartdial.errors import SmartdialError
from smartdial.outcomes import N_OUTCOMES

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400

INDEX_COLUMNS = ("carrier", "region", "product", "network", "slot", "attempt_bucket")
_DTYPES: dict[str, np.dtype] = {
    **{name: np.dtype(np.int32) for name in INDEX_COLUMNS},
    "outcome": np.dtype(np.int8),
    "t_s": np.dtype(np.float64),
    "ring_s": np.dtype(np.float32),
    "talk_s": np.dtype(np.float32),
}


def _coerce(name: str, values: object) -> np.ndarray:
    """Cast to the column's dtype; integers that do not fit become -1 (invalid), never wrap."""
    dtype = _DTYPES[name]
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"OutcomeBatch.{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == dtype:
        return np.ascontiguousarray(arr)
    if dtype.kind == "i":
        if arr.dtype.kind not in "iub":
            if arr.dtype.kind == "f":
                bad = ~np.isfinite(arr) | (arr != np.round(arr))
                arr = np.where(bad, -1, arr)
            else:
                raise TypeError(f"OutcomeBatch.{name} must be integer, got {arr.dtype}")
        info = np.iinfo(dtype)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            arr = np.where((arr < info.min) | (arr > info.max), -1, arr)
    return np.ascontiguousarray(arr, dtype=dtype)


@dataclass(eq=False)
class OutcomeBatch:
    """Equal-length columns, one row per finished call attempt.

    Indices are 0-based positions in the model's shape (see `ContactModel`);
    `outcome` holds `smartdial.outcomes.Outcome` codes; `t_s` is the time the
    outcome was known, in seconds since the Unix epoch (UTC); `ring_s` is the
    time from origination to answer or give-up and `talk_s` the agent handle
    time, both in seconds, NaN when unknown.
    """

    carrier: np.ndarray
    region: np.ndarray
    product: np.ndarray
    network: np.ndarray
    slot: np.ndarray
    attempt_bucket: np.ndarray
    outcome: np.ndarray
    t_s: np.ndarray
    ring_s: np.ndarray
    talk_s: np.ndarray

    def __post_init__(self) -> None:
        for f in fields(self):
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name)))
        lengths = {len(getattr(self, f.name)) for f in fields(self)}
        if len(lengths) > 1:
            raise ValueError(f"OutcomeBatch columns differ in length: {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.outcome)

    @classmethod
    def empty(cls) -> OutcomeBatch:
        return cls(**{name: np.empty(0, dtype) for name, dtype in _DTYPES.items()})

    @classmethod
    def concat(cls, batches: Sequence[OutcomeBatch]) -> OutcomeBatch:
        if not batches:
            return cls.empty()
        return cls(**{n: np.concatenate([getattr(b, n) for b in batches]) for n in _DTYPES})

    def take(self, rows: np.ndarray) -> OutcomeBatch:
        """The rows selected by an index or boolean mask, as a new batch."""
        return type(self)(**{n: getattr(self, n)[rows] for n in _DTYPES})

    def columns(self) -> dict[str, np.ndarray]:
        return {n: getattr(self, n) for n in _DTYPES}


def valid_rows(batch: OutcomeBatch, shape: Sequence[int] | None = None) -> np.ndarray:
    """Boolean mask of well-formed rows: indices in range, known outcome, finite time.

    Without `shape` only the lower bound (>= 0) of the indices is checked.
    Unknown ring or talk times (NaN) do not make a row malformed.
    """
    ok = (batch.outcome >= 0) & (batch.outcome < N_OUTCOMES) & np.isfinite(batch.t_s)
    for k, name in enumerate(INDEX_COLUMNS):
        col = getattr(batch, name)
        ok &= col >= 0
        if shape is not None:
            ok &= col < shape[k]
    return ok


@dataclass
class Rejects:
    """Malformed history rows that were skipped: how many, and where the first one was."""

    count: int = 0
    first_file: str | None = None
    first_row: int | None = None

    def add(self, count: int, file: str, row: int) -> None:
        if count and self.first_file is None:
            self.first_file, self.first_row = file, row
        self.count += count


def write_day(path: str | PathLike[str], batch: OutcomeBatch) -> Path:
    """Write one day's outcomes as a Parquet file, with a `day` column (UTC date of `t_s`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    cols = batch.columns()
    day = np.floor(batch.t_s / SECONDS_PER_DAY).astype("int64").astype("datetime64[D]")
    table = pa.table({**{n: pa.array(v) for n, v in cols.items()}, "day": pa.array(day)})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def _column(table: object, name: str, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A column as a NumPy array and its null mask; a missing column is all null."""
    if name not in table.column_names:  # type: ignore[attr-defined]
        return np.zeros(n_rows), np.ones(n_rows, dtype=bool)
    col = table.column(name)  # type: ignore[attr-defined]
    nulls = col.is_null().to_numpy(zero_copy_only=False)
    filled = col.fill_null(0) if col.null_count else col
    return filled.to_numpy(), np.asarray(nulls, dtype=bool)


def read_history(
    paths: str | PathLike[str] | Iterable[str | PathLike[str]],
    shape: Sequence[int] | None = None,
    rejects: Rejects | None = None,
) -> OutcomeBatch:
    """Read day files into one batch, skipping malformed rows.

    A row is malformed when an index, the outcome or `t_s` is null or out of
    range (`valid_rows`; index upper bounds only when `shape` is given). Skipped
    rows are added to `rejects` (count, first file and row) and logged as a
    warning; they never raise and never vanish unreported. Null ring or talk
    times become NaN.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(paths, str | PathLike):
        paths = [paths]
    rejects = rejects if rejects is not None else Rejects()
    start = rejects.count
    parts = []
    for p in paths:
        try:
            table = pq.read_table(p)
        except (OSError, pa.ArrowException) as exc:  # missing, unreadable, not Parquet
            raise SmartdialError(f"{p}: cannot read outcome history: {exc}") from None
        n = table.num_rows
        cols, bad = {}, np.zeros(n, dtype=bool)
        for name in _DTYPES:
            values, nulls = _column(table, name, n)
            if name in ("ring_s", "talk_s"):
                values = np.where(nulls, np.nan, values)
            else:
                bad |= nulls
            cols[name] = values
        batch = OutcomeBatch(**cols)
        ok = valid_rows(batch, shape) & ~bad
        n_bad = int(n - ok.sum())
        if n_bad:
            rejects.add(n_bad, str(p), int(np.argmin(ok)))
            batch = batch.take(ok)
        parts.append(batch)
    if rejects.count > start:
        log.warning(
            "history rows skipped as malformed: count=%d first_file=%s first_row=%s",
            rejects.count - start, rejects.first_file, rejects.first_row,
        )
    return OutcomeBatch.concat(parts)
