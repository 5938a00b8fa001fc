"""Entity rows for a training set, from any of the forms users have them in, as a DuckDB view.

The view `__entity_rows` holds every input column unchanged plus `__entity_row` (input
order), `__entity_ts` (the entity time as naive UTC, floored to the microsecond) and
`__entity_ts_ceil` (the same, rounded up). Feature times are microseconds, so with t the
exact entity time, "event <= t" is "event <= floor(t)" and "event >= t - ttl" is
"event >= ceil(t) - ttl": a nanosecond entity time never lets in a row after it or past its
TTL. Input checks name the table, column and problem.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feature_assets.kernel.contract import FeatureTable
from feature_assets.kernel.errors import EntityInputError
from resources.sql import ident, literal

ENTITY_VIEW = "__entity_rows"
# Columns the view adds; an input column with this prefix would be replaced or dropped.
RESERVED_PREFIX = "__entity"
ADDED_COLUMNS = "__entity_row, __entity_ts, __entity_ts_ceil"  # for SELECT * EXCLUDE (...)
INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
}
# What Python's datetime (and so every reader of a result) can hold, in microseconds.
EARLIEST_US = (datetime.min - datetime(1970, 1, 1)) // timedelta(microseconds=1)
LATEST_US = (datetime.max - datetime(1970, 1, 1)) // timedelta(microseconds=1)


def register_entity_rows(
    con: duckdb.DuckDBPyConnection, entity: Any, timestamp_column: str
) -> None:
    """Create the view `__entity_rows` over `entity`: pandas, Arrow, polars or a Parquet path."""
    rows = _as_frame(con, entity)
    columns = list(rows.columns) if isinstance(rows, pd.DataFrame) else rows.column_names
    reserved = [c for c in columns if str(c).startswith(RESERVED_PREFIX)]
    if reserved:
        raise EntityInputError(
            f"entity rows have column(s) {reserved}: names starting with {RESERVED_PREFIX!r} "
            "are reserved for the join's own columns; rename them"
        )
    if timestamp_column not in columns:
        raise EntityInputError(
            f"entity rows have no timestamp column {timestamp_column!r}; columns: {columns}"
        )
    times = rows[timestamp_column]
    times = times.combine_chunks() if isinstance(times, pa.ChunkedArray) else pa.array(times)
    floor, ceil = _entity_times(times, timestamp_column)
    added = {
        "__entity_row": np.arange(len(rows), dtype=np.int64),
        "__entity_ts": floor,
        "__entity_ts_ceil": ceil,
    }
    if isinstance(rows, pd.DataFrame):
        rows = rows.assign(**{name: pd.array(values) for name, values in added.items()})
    else:
        for name, values in added.items():
            rows = rows.append_column(name, pa.array(values))
    con.register("__entity_input", rows)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {ENTITY_VIEW} AS SELECT * FROM __entity_input")


def _entity_times(values: pa.Array, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(floor, ceil) of each entity time to the microsecond, as naive UTC datetime64[us]."""
    if pa.types.is_date(values.type):
        values = values.cast(pa.timestamp("us"))
    if not pa.types.is_timestamp(values.type):
        raise EntityInputError(
            f"entity timestamp column {column!r} is {values.type}, not a timestamp"
        )
    # Arrow keeps timestamps as UTC instants whatever the zone; dropping it keeps the instant.
    instants = values.cast(pa.timestamp(values.type.unit))
    if values.type.unit == "ns":
        floor = pc.floor_temporal(instants, unit="microsecond").cast(pa.timestamp("us"))
        ceil = pc.ceil_temporal(instants, unit="microsecond").cast(pa.timestamp("us"))
    else:
        floor = ceil = instants.cast(pa.timestamp("us"))
    micros = pc.min_max(floor.cast(pa.int64()))
    low, high = micros["min"].as_py(), micros["max"].as_py()
    if low is not None and (low < EARLIEST_US or high > LATEST_US):
        bad = low if low < EARLIEST_US else high
        raise EntityInputError(
            f"entity timestamp column {column!r} has a time outside years 1..9999 "
            f"({bad} microseconds from 1970-01-01)"
        )
    return floor.to_numpy(zero_copy_only=False), ceil.to_numpy(zero_copy_only=False)


def entity_time_range(con: duckdb.DuckDBPyConnection) -> tuple[datetime | None, datetime | None]:
    """The earliest and latest entity time (naive UTC) of the registered entity rows."""
    return con.execute(f"SELECT min(__entity_ts), max(__entity_ts) FROM {ENTITY_VIEW}").fetchall()[
        0
    ]


def entity_columns(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(
        con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {ENTITY_VIEW})").fetchall()
    )


def check_entity_rows(
    con: duckdb.DuckDBPyConnection,
    tables: list[FeatureTable],
    timestamp_column: str,
    output_names: list[str],
) -> None:
    """Keys present and of the table's type, no null keys or times, no output name taken."""
    columns = entity_columns(con)
    taken = sorted(set(output_names) & set(columns))
    if taken:
        raise EntityInputError(
            f"entity rows already have column(s) {taken} named like requested features; "
            "rename them or use full_feature_names=True"
        )
    for table in tables:
        for key in table.keys:
            if key not in columns:
                raise EntityInputError(
                    f"feature table {table.name!r}: entity rows lack key column {key!r}"
                )
            expected = table.key_types[key]
            actual = columns[key]
            if (expected == "int" and actual not in INTEGER_TYPES) or (
                expected == "str" and actual != "VARCHAR"
            ):
                wanted = "an integer" if expected == "int" else "a string (VARCHAR)"
                raise EntityInputError(
                    f"feature table {table.name!r}: key {key!r} must be {wanted}, "
                    f"but the entity column is {actual}"
                )
    checked = list(dict.fromkeys([k for t in tables for k in t.keys] + [timestamp_column]))
    counts = con.execute(
        "SELECT "
        + ", ".join(f"count(*) FILTER (WHERE {ident(c)} IS NULL)" for c in checked)
        + f" FROM {ENTITY_VIEW}"
    ).fetchall()[0]
    nulls = {column: n for column, n in zip(checked, counts, strict=True) if n}
    if nulls:
        detail = ", ".join(f"{n} in {column!r}" for column, n in nulls.items())
        raise EntityInputError(f"entity rows have null keys or timestamps: {detail}")


def parses_as_sql(text: str) -> bool:
    """DuckDB's own parser decides (a path never parses as SQL; a comment or a parenthesis
    before the SELECT does not stop a query from being one)."""
    try:
        return bool(duckdb.connect().extract_statements(text))
    except duckdb.Error:
        return False


def _as_frame(con: duckdb.DuckDBPyConnection, entity: Any) -> pd.DataFrame | pa.Table:
    if isinstance(entity, pd.DataFrame) and any(
        isinstance(dtype, pd.DatetimeTZDtype) and dtype.unit == "ns" for dtype in entity.dtypes
    ):
        # DuckDB scans a zoned pandas column at microseconds; through Arrow it keeps the
        # nanoseconds, so the column passes through exactly.
        return pa.Table.from_pandas(entity, preserve_index=False)
    if isinstance(entity, pd.DataFrame | pa.Table):
        return entity
    if type(entity).__module__.startswith("polars"):
        return entity.to_arrow()
    if isinstance(entity, str | Path):
        # Entity rows are small next to feature tables: load them (a plain scan keeps file and
        # row order) and number them, which joins faster than numbering inside the query.
        return con.sql(f"SELECT * FROM read_parquet({literal(entity)})").to_arrow_table()
    raise EntityInputError(
        f"entity rows of type {type(entity).__name__} are not supported: "
        "use pandas, Arrow, polars, a Parquet path or a SQL query"
    )
