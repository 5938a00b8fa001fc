"""Entity rows for a training set, from any of the forms users have them in, as a DuckDB view.

The view `__entity_rows` holds every input column plus `__entity_row` (input order) and
`__entity_ts` (the entity time as naive UTC). Input checks name the table, column and problem.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from feature_assets.kernel.contract import FeatureTable
from feature_assets.kernel.errors import EntityInputError
from resources.sql import ident, literal

ENTITY_VIEW = "__entity_rows"
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
TIMESTAMP_TYPES = {"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATE"}


def register_entity_rows(
    con: duckdb.DuckDBPyConnection, entity: Any, timestamp_column: str
) -> None:
    """Create the view `__entity_rows` over `entity`: pandas, Arrow, polars, a Parquet path, or SQL."""
    source = _source_relation(con, entity)
    types = dict(
        con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {source})").fetchall()
    )
    if timestamp_column not in types:
        raise EntityInputError(
            f"entity rows have no timestamp column {timestamp_column!r}; columns: {list(types)}"
        )
    ts_type = types[timestamp_column]
    if ts_type == "TIMESTAMP WITH TIME ZONE":
        normalized = f"timezone('UTC', {ident(timestamp_column)})"
    elif ts_type in TIMESTAMP_TYPES:
        normalized = f"CAST({ident(timestamp_column)} AS TIMESTAMP)"
    else:
        raise EntityInputError(
            f"entity timestamp column {timestamp_column!r} is {ts_type}, not a timestamp"
        )
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {ENTITY_VIEW} AS SELECT *, {normalized} AS __entity_ts FROM {source}"
    )


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


def _source_relation(con: duckdb.DuckDBPyConnection, entity: Any) -> str:
    if isinstance(entity, pd.DataFrame):
        con.register(
            "__entity_input", entity.assign(__entity_row=np.arange(len(entity), dtype=np.int64))
        )
        return "__entity_input"
    if isinstance(entity, pa.Table):
        con.register("__entity_input", _with_row_numbers(entity))
        return "__entity_input"
    if type(entity).__module__.startswith("polars"):
        con.register("__entity_input", _with_row_numbers(entity.to_arrow()))
        return "__entity_input"
    if isinstance(entity, str | Path):
        # Entity rows are small next to feature tables: load them (a plain scan keeps file and
        # row order) and number them, which joins faster than numbering inside the query.
        rows = con.sql(f"SELECT * FROM read_parquet({literal(entity)})").to_arrow_table()
        con.register("__entity_input", _with_row_numbers(rows))
        return "__entity_input"
    raise EntityInputError(
        f"entity rows of type {type(entity).__name__} are not supported: "
        "use pandas, Arrow, polars or a Parquet path"
    )


def _with_row_numbers(table: pa.Table) -> pa.Table:
    return table.append_column("__entity_row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
