"""A training set as a typed result: one query, explicit conversions.

The point-in-time join runs when a conversion asks for it (DuckDB executes the query then),
so `to_parquet` streams to disk and spills past the memory limit instead of materializing
the rows in Python first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from feature_assets.kernel.contract import OnDemandFeature
from resources.on_demand import compute, request_column_from_frame
from resources.sql import literal

# Rows per batch when a training set with on-demand features streams to Parquet.
STREAM_BATCH_ROWS = 100_000


@dataclass(frozen=True)
class OnDemandStep:
    """One on-demand feature over the joined rows: where each input is, where each asked
    output goes."""

    feature: OnDemandFeature
    inputs: Mapping[str, str]  # input name -> column of the joined rows
    outputs: Mapping[str, str]  # output name -> column of the training set

    def apply(self, rows: pa.Table, first_row: int) -> pa.Table:
        arrays = {}
        for item in self.feature.inputs:
            column = rows.column(self.inputs[item.name])
            arrays[item.name] = (
                request_column_from_frame(self.feature, item.name, item.logical_type, column)
                if item.is_request
                else column
            )
        values = compute(
            self.feature,
            arrays,
            rows.num_rows,
            describe_row=lambda i: f"entity row {first_row + i}",
        )
        for output, column in self.outputs.items():
            rows = rows.append_column(column, values[output])
        return rows


if TYPE_CHECKING:
    import polars as pl


class TrainingSet:
    """Point-in-time correct rows: one per entity row, in input order, every input column kept,
    then the stored features asked for, then the on-demand outputs asked for."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        query: str,
        on_demand: Sequence[OnDemandStep] = (),
        hidden: Sequence[str] = (),
    ) -> None:
        """`hidden`: columns the query reads only as on-demand inputs, dropped after."""
        self._con = con
        self._query = query
        self._on_demand = tuple(on_demand)
        self._hidden = tuple(hidden)

    @property
    def columns(self) -> list[str]:
        """Input columns first, then the requested features (binding the query runs nothing)."""
        joined = [c for c in self._con.sql(self._query).columns if c not in self._hidden]
        return joined + [c for step in self._on_demand for c in step.outputs.values()]

    def to_pandas(self) -> pd.DataFrame:
        relation = (
            self._con.from_arrow(self.to_arrow()) if self._on_demand else self._con.sql(self._query)
        )
        frame = relation.df()
        for name, duckdb_type in zip(relation.columns, relation.types, strict=True):
            # DuckDB hands zoned nanosecond columns to pandas without their zone (UTC).
            if str(duckdb_type) == "TIMESTAMPTZ_NS" and frame[name].dt.tz is None:
                frame[name] = frame[name].dt.tz_localize("UTC")
        return frame

    def to_arrow(self) -> pa.Table:
        return self._finish(self._con.sql(self._query).to_arrow_table(), 0)

    def to_polars(self) -> pl.DataFrame:
        if self._on_demand:
            import polars as pl

            return pl.from_arrow(self.to_arrow())
        return self._con.sql(self._query).pl()

    def to_parquet(self, path: str | Path) -> Path:
        """Stream the rows to one Parquet file; returns its path."""
        if not self._on_demand:
            self._con.execute(
                f"COPY ({self._query}) TO {literal(path)} (FORMAT parquet)"
            ).fetchall()
            return Path(path)
        reader = self._con.sql(self._query).to_arrow_reader(STREAM_BATCH_ROWS)
        writer, first_row = None, 0
        try:
            for batch in reader:
                rows = self._finish(pa.Table.from_batches([batch]), first_row)
                first_row += batch.num_rows
                writer = writer or pq.ParquetWriter(path, rows.schema)
                writer.write_table(rows)
            if writer is None:  # no entity rows: still a file with the columns
                empty = self._finish(reader.schema.empty_table(), 0)
                writer = pq.ParquetWriter(path, empty.schema)
                writer.write_table(empty)
        finally:
            if writer is not None:
                writer.close()
        return Path(path)

    @property
    def sql(self) -> str:
        """The query that computes the joined rows (for inspection and benchmarks); on-demand
        features are computed over its result."""
        return self._query

    def _finish(self, rows: pa.Table, first_row: int) -> pa.Table:
        for step in self._on_demand:
            rows = step.apply(rows, first_row)
        return rows.drop_columns(list(self._hidden)) if self._hidden else rows
