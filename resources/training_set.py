"""A training set as a typed result: one query, explicit conversions.

The point-in-time join runs when a conversion asks for it (DuckDB executes the query then),
so `to_parquet` streams to disk and spills past the memory limit instead of materializing
the rows in Python first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd
import pyarrow as pa

from resources.sql import literal

if TYPE_CHECKING:
    import polars as pl


class TrainingSet:
    """Point-in-time correct rows: one per entity row, in input order, every input column kept."""

    def __init__(self, con: duckdb.DuckDBPyConnection, query: str) -> None:
        self._con = con
        self._query = query

    @property
    def columns(self) -> list[str]:
        """Input columns first, then the requested features (binding the query runs nothing)."""
        return self._con.sql(self._query).columns

    def to_pandas(self) -> pd.DataFrame:
        relation = self._con.sql(self._query)
        frame = relation.df()
        for name, duckdb_type in zip(relation.columns, relation.types, strict=True):
            # DuckDB hands zoned nanosecond columns to pandas without their zone (UTC).
            if str(duckdb_type) == "TIMESTAMPTZ_NS" and frame[name].dt.tz is None:
                frame[name] = frame[name].dt.tz_localize("UTC")
        return frame

    def to_arrow(self) -> pa.Table:
        return self._con.sql(self._query).to_arrow_table()

    def to_polars(self) -> pl.DataFrame:
        return self._con.sql(self._query).pl()

    def to_parquet(self, path: str | Path) -> Path:
        """Stream the rows to one Parquet file; returns its path."""
        self._con.execute(f"COPY ({self._query}) TO {literal(path)} (FORMAT parquet)").fetchall()
        return Path(path)

    @property
    def sql(self) -> str:
        """The query that computes the rows (for inspection and benchmarks)."""
        return self._query
