"""Rows pushed to an online table, made into feature rows and checked before anything is
written: times parsed to naive UTC microseconds, a created time of "now" when none is
given, no event time after "now" (beyond clock skew), the partition day derived from the
event time, then the table's pandera schema."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa

from feature_assets.kernel.contract import FeatureTable
from feature_assets.kernel.errors import PushValidationError
from feature_assets.validation.partition import validate_pushed
from resources.push_log import event_day, push_schema

# How far a pusher's clock may run ahead of ours. A value stamped later than that would be
# served at once (newer-wins keeps it over every real update until its time comes), while a
# training set could not use it before then: refused.
MAX_CLOCK_SKEW = timedelta(minutes=5)


def pushed_rows(
    table: FeatureTable, rows: pd.DataFrame | Sequence[Mapping[str, Any]], now: datetime
) -> pa.Table:
    """The rows as a push-log table (`push_schema`), or PushValidationError naming the row
    and column of every problem; nothing is written by this function."""
    frame = (
        rows.reset_index(drop=True).copy()
        if isinstance(rows, pd.DataFrame)
        else pd.DataFrame(list(rows))
    )
    if frame.empty:
        raise PushValidationError(f"push to feature table {table.name!r}: no rows")
    if table.partition_column in frame:
        raise PushValidationError(
            f"push to feature table {table.name!r}: column {table.partition_column!r} is derived "
            "from the event time; leave it out"
        )
    if table.created_timestamp and table.created_timestamp not in frame:
        frame[table.created_timestamp] = now.astimezone(UTC).replace(tzinfo=None)
    for column in filter(None, (table.timestamp, table.created_timestamp)):
        if column in frame:
            frame[column] = _utc_times(table, frame[column], column)
    if table.timestamp in frame:
        _not_in_the_future(table, frame[table.timestamp], now)
        frame[table.partition_column] = [
            event_day(t) if not pd.isna(t) else None for t in frame[table.timestamp]
        ]
    checked = validate_pushed(table, frame)
    schema = push_schema(table)
    return pa.Table.from_pandas(checked[schema.names], schema=schema, preserve_index=False)


def _utc_times(table: FeatureTable, values: pd.Series, column: str) -> pd.Series:
    """Naive UTC microsecond times from datetimes or ISO strings (naive means UTC)."""
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna() & values.notna()
    if bad.any():
        row = int(bad.idxmax())
        raise PushValidationError(
            f"push to feature table {table.name!r}: nothing written\n"
            f"  row {row}, column {column!r}: {values[row]!r} is not a time"
        )
    return parsed.dt.tz_convert(None).dt.floor("us").astype("datetime64[us]")


def _not_in_the_future(table: FeatureTable, events: pd.Series, now: datetime) -> None:
    latest = now.astimezone(UTC).replace(tzinfo=None) + MAX_CLOCK_SKEW
    ahead = events > latest
    if ahead.any():
        row = int(ahead.idxmax())
        raise PushValidationError(
            f"push to feature table {table.name!r}: nothing written\n"
            f"  row {row}, column {table.timestamp!r}: {events[row]} (UTC) is after the time "
            f"of the push, {now.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC, by more than "
            f"{int(MAX_CLOCK_SKEW.total_seconds() // 60)} minutes of clock skew"
        )
