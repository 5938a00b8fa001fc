"""Served-feature logging: the vectors the SDK and the HTTP server answer, to daily Parquet.

Reads must never wait for the log. A read hands its answer to `ServingLog.record`, which
decides whether the request is sampled and appends a reference to it in memory; a
background thread turns the pending requests into rows and writes them, every
`flush_seconds`, when `flush_rows` are pending, and on `close()` (the server's clean stop,
or interpreter exit). When the disk is slower than the reads, pending rows stop at
`max_pending_rows` and further requests are dropped and counted, never queued without bound.

Sampling is systematic, by request: of n requests at rate r exactly floor(n * r) are kept,
so a count of logged requests can be checked, and a request is logged whole (all its rows).

One row per served value, in `<offline root>/_serving_log/served_date=<day>/` (the request's
UTC day), each file written beside and renamed into place: readers never see half a file.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import threading
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feature_assets.kernel.errors import CallerError

log = logging.getLogger(__name__)

FOLDER = "_serving_log"
DAY_COLUMN = "served_date"
COMPUTED = "computed"  # the status of an on-demand value: computed at read time

SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("request_time", pa.timestamp("us", tz="UTC")),
        # The feature service read, or null for a list of features.
        ("feature_service", pa.string()),
        ("entity_index", pa.int32()),  # the entity row's position in its request
        ("entity_key", pa.string()),  # JSON of the row's key fields, sorted
        ("feature", pa.string()),  # the column name the caller got
        ("source", pa.string()),  # the feature table, or the on-demand feature
        ("status", pa.string()),  # present / not_found / expired / computed
        ("value_number", pa.float64()),  # numbers and booleans
        ("value_text", pa.string()),  # anything else, as text
    ]
)


@dataclass(frozen=True)
class ServedColumn:
    """One column of a read's answer: its name, where it comes from, and how its status is
    found (`source` is the feature table in the statuses, or an on-demand feature)."""

    name: str
    source: str
    stored: bool


@dataclass(frozen=True)
class ServingLogStats:
    sampled_requests: int  # requests kept by the sampler
    written_rows: int  # rows in files
    pending_rows: int  # rows waiting for the writer
    dropped_rows: int  # rows of sampled requests not written (buffer full, write failed, closed)
    write_errors: int


def folder(offline_root: str | Path) -> Path:
    return Path(offline_root) / FOLDER


class ServingLog:
    """Served vectors of one process, sampled, buffered and written in the background."""

    def __init__(
        self,
        offline_root: str | Path,
        *,
        sample_rate: float,
        flush_seconds: float = 5.0,
        flush_rows: int = 50_000,
        max_pending_rows: int = 500_000,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0 or math.isnan(sample_rate):
            raise CallerError(f"serving log sample rate {sample_rate!r}: give a value in [0, 1]")
        self.path = folder(offline_root)
        self.sample_rate = sample_rate
        self.flush_seconds = flush_seconds
        self.flush_rows = flush_rows
        self.max_pending_rows = max_pending_rows
        self._rate = Fraction(sample_rate).limit_denominator(1_000_000)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._requests = 0
        self._sampled = 0
        self._pending: list[tuple] = []
        self._pending_rows = 0
        self._written = 0
        self._dropped = 0
        self._errors = 0
        self._writing = 0  # rows taken by the writer, not yet in a file
        self._closed = False
        self._writer = threading.Thread(target=self._run, name="serving-log", daemon=True)
        self._writer.start()
        # A script that never calls close() still gets its rows written at exit.
        atexit.register(_close_at_exit, weakref.ref(self))

    # --- the read path: never blocks on the disk --------------------------------------

    def record(
        self,
        request_id: str,
        request_time: datetime,
        feature_service: str | None,
        columns: Sequence[ServedColumn],
        keys: Sequence[str],
        rows: Sequence[Mapping[str, Any]],
        statuses: Sequence[Mapping[str, str]],
    ) -> bool:
        """Keep one answered read if the sampler picks it; True if kept. The rows are copied:
        a caller may change the dicts it got back."""
        size = len(rows) * len(columns)
        with self._lock:
            n = self._requests
            self._requests += 1
            if math.floor((n + 1) * self._rate) == math.floor(n * self._rate):
                return False
            self._sampled += 1
            if self._closed or self._pending_rows + self._writing + size > self.max_pending_rows:
                self._dropped += size
                return False
            snapshot = [dict(row) for row in rows], [dict(s) for s in statuses]
            self._pending.append(
                (request_id, request_time, feature_service, tuple(columns), tuple(keys), *snapshot)
            )
            self._pending_rows += size
            if self._pending_rows >= self.flush_rows:
                self._wake.notify()
        return True

    # --- the writer -------------------------------------------------------------------

    def flush(self) -> None:
        """Write every request recorded so far (in the calling thread, beside the writer)."""
        self._write(self._take())

    def close(self) -> None:
        """Stop the writer and write what is pending; later requests are dropped and counted."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify()
        self._writer.join()
        self.flush()

    def stats(self) -> ServingLogStats:
        with self._lock:
            return ServingLogStats(
                sampled_requests=self._sampled,
                written_rows=self._written,
                pending_rows=self._pending_rows + self._writing,
                dropped_rows=self._dropped,
                write_errors=self._errors,
            )

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._closed and self._pending_rows < self.flush_rows:
                    self._wake.wait(self.flush_seconds)
                closed = self._closed
            self._write(self._take())
            if closed:
                return

    def _take(self) -> list[tuple]:
        with self._lock:
            taken, self._pending = self._pending, []
            self._writing += self._pending_rows
            self._pending_rows = 0
        return taken

    def _write(self, requests: list[tuple]) -> None:
        if not requests:
            return
        size = sum(len(r[5]) * len(r[3]) for r in requests)
        try:
            table = _rows(requests)
            days = table.column("request_time").cast(pa.timestamp("us", tz="UTC"))
            by_day = pc.floor_temporal(days, unit="day")
            for day in pc.unique(by_day).to_pylist():
                part = table.filter(pc.equal(by_day, day))
                self._write_file(day.date(), part)
        except Exception:  # a full disk or a bad value must not stop the writer
            # Reads go on; what is lost is counted.
            with self._lock:
                self._errors += 1
                self._dropped += size
                self._writing -= size
            log.exception("serving log: %d rows not written", size)
            return
        with self._lock:
            self._written += size
            self._writing -= size

    def _write_file(self, day: date, rows: pa.Table) -> None:
        target = self.path / f"{DAY_COLUMN}={day.isoformat()}"
        target.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:12]}.parquet"
        tmp = target / f".{name}.tmp"
        pq.write_table(rows, tmp)
        tmp.replace(target / name)


def _close_at_exit(reference: weakref.ref) -> None:
    served = reference()
    if served is not None:
        served.close()


def _rows(requests: list[tuple]) -> pa.Table:
    """Pending requests, one row per served value."""
    columns: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    for request_id, request_time, service, served, keys, rows, statuses in requests:
        for index, (row, status) in enumerate(zip(rows, statuses, strict=True)):
            key = json.dumps({k: row.get(k) for k in keys}, sort_keys=True, default=str)
            for column in served:
                number, text = _value(row.get(column.name))
                columns["request_id"].append(request_id)
                columns["request_time"].append(request_time)
                columns["feature_service"].append(service)
                columns["entity_index"].append(index)
                columns["entity_key"].append(key)
                columns["feature"].append(column.name)
                columns["source"].append(column.source)
                columns["status"].append(
                    status.get(column.source, "") if column.stored else COMPUTED
                )
                columns["value_number"].append(number)
                columns["value_text"].append(text)
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def _value(value: Any) -> tuple[float | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, bool | int | float | Decimal):
        return float(value), None
    if isinstance(value, datetime | date):
        return None, value.isoformat()
    return None, str(value)


# --- reading the log back -------------------------------------------------------------


def served_days(offline_root: str | Path) -> list[date]:
    root = folder(offline_root)
    if not root.exists():
        return []
    days = []
    for path in root.glob(f"{DAY_COLUMN}=*"):
        with contextlib.suppress(ValueError):
            days.append(date.fromisoformat(path.name.split("=", 1)[1]))
    return sorted(days)


def served_files(offline_root: str | Path, days: Sequence[date]) -> list[Path]:
    root = folder(offline_root)
    return sorted(
        path
        for day in days
        for path in (root / f"{DAY_COLUMN}={day.isoformat()}").glob("*.parquet")
    )


def read_served(
    offline_root: str | Path,
    days: Sequence[date],
    *,
    feature_service: str | None = None,
    columns: Sequence[str] = tuple(SCHEMA.names),
) -> pa.Table:
    """The logged rows of `days` (of one service), as SCHEMA's `columns`."""
    files = served_files(offline_root, days)
    if not files:
        return SCHEMA.empty_table().select(list(columns))
    where, params = "", [[str(f) for f in files]]
    if feature_service is not None:
        where = " WHERE feature_service = ?"
        params.append(feature_service)
    query = f"SELECT {', '.join(columns)} FROM read_parquet(?){where}"
    with duckdb.connect() as connection:
        return connection.sql(query, params=params).to_arrow_table()
