"""The offline store: published feature partitions as Parquet, queried with in-process DuckDB.

Layout: `<root>/<table>/<partition_column>=<day>/data.parquet`, one file per daily
partition. A file is written beside its final name and renamed into place, so a reader sees
the old day or the new day, never a mix or a gap, and no reader ever takes a lock a writer
needs. Staged (not yet validated) output lives under `<staging_root>/<run_id>/` and is never
read by training sets or the online sync.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pyarrow as pa

from feature_assets.contract import FeatureTable
from resources.point_in_time import FeatureRequest, point_in_time_query
from resources.sql import DUCKDB_TYPES, file_list, ident, literal

DATA_FILE = "data.parquet"


class PartitionNotPublishedError(LookupError):
    """A partition a caller needs has not passed validation and been published."""


class OfflineStore(dg.ConfigurableResource):
    """Published feature partitions as Parquet files; DuckDB in-process for every query."""

    root: str
    staging_root: str

    # --- layout -------------------------------------------------------------------------

    def partition_path(self, table: FeatureTable, day: date) -> Path:
        return (
            Path(self.root) / table.name / f"{table.partition_column}={day.isoformat()}" / DATA_FILE
        )

    def published_days(self, table: FeatureTable) -> list[date]:
        prefix = f"{table.partition_column}="
        table_dir = Path(self.root) / table.name
        if not table_dir.exists():
            return []
        return sorted(
            date.fromisoformat(path.parent.name.removeprefix(prefix))
            for path in table_dir.glob(f"{prefix}*/{DATA_FILE}")
        )

    def published_files(self, table: FeatureTable) -> list[Path]:
        return [self.partition_path(table, day) for day in self.published_days(table)]

    def staged_path(self, table: FeatureTable, run_id: str) -> Path:
        return self.run_staging_dir(run_id) / f"{table.name}.parquet"

    def run_staging_dir(self, run_id: str) -> Path:
        return Path(self.staging_root) / run_id

    # --- write, audit, publish ------------------------------------------------------------

    def read_staged(self, table: FeatureTable, run_id: str) -> pd.DataFrame:
        path = self.staged_path(table, run_id)
        if not path.exists():
            raise FileNotFoundError(
                f"feature table {table.name!r}: nothing staged by run {run_id} at {path}; "
                "build the table and its check in the same run"
            )
        return duckdb.connect().sql(f"SELECT * FROM read_parquet({literal(path)})").df()

    def publish(self, table: FeatureTable, run_id: str, days: list[date]) -> dict[date, int]:
        """Replace each day's published file with the staged rows of that day (possibly none)."""
        staged = self.staged_path(table, run_id)
        con = duckdb.connect()
        rows_per_day: dict[date, int] = {}
        order = ", ".join(ident(key) for key in (*table.keys, table.timestamp))
        for day in days:
            final = self.partition_path(table, day)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(f"{DATA_FILE}.tmp-{uuid.uuid4().hex}")
            day_rows = (
                f"SELECT * FROM read_parquet({literal(staged)}) "
                f"WHERE {ident(table.partition_column)} = DATE {literal(day.isoformat())} "
                f"ORDER BY {order}"
            )
            con.execute(f"COPY ({day_rows}) TO {literal(tmp)} (FORMAT parquet)")
            tmp.replace(final)
            rows_per_day[day] = con.execute(
                f"SELECT count(*) FROM read_parquet({literal(final)})"
            ).fetchone()[0]
        return rows_per_day

    def discard_staged(self, run_id: str) -> None:
        shutil.rmtree(self.run_staging_dir(run_id), ignore_errors=True)

    # --- reads ------------------------------------------------------------------------------

    def read_partition(self, table: FeatureTable, day: date) -> pd.DataFrame:
        path = self.partition_path(table, day)
        if not path.exists():
            raise PartitionNotPublishedError(
                f"feature table {table.name!r}: partition {day.isoformat()} is not published"
            )
        return duckdb.connect().sql(f"SELECT * FROM read_parquet({literal(path)})").df()

    def rows_to_serve(
        self, table: FeatureTable, days: list[date], *, force: bool = False
    ) -> pa.Table:
        """The rows of `days` that the online store should hold, newer-wins.

        Without `force`, an entity's row is kept only if it is that entity's winner across
        every published partition (latest event time, then created time, then partition), so
        syncing an old partition never moves an online value back in time. With `force`, the
        latest row per entity within `days` is kept whatever newer partitions say.
        """
        missing = [day for day in days if not self.partition_path(table, day).exists()]
        if missing:
            raise PartitionNotPublishedError(
                f"feature table {table.name!r}: partition(s) {', '.join(d.isoformat() for d in missing)} "
                "are not published (never built, or failed validation)"
            )
        window = file_list(self.partition_path(table, day) for day in days)
        keys = ", ".join(ident(key) for key in table.keys)
        if force:
            query = (
                f"SELECT * FROM read_parquet({window}) "
                f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {winner_order(table)}) = 1"
            )
        else:
            rank_columns = [*table.keys, *_rank_columns(table)]
            everything = file_list(self.published_files(table))
            match = " AND ".join(
                f"w.{ident(c)} IS NOT DISTINCT FROM x.{ident(c)}" for c in rank_columns
            )
            query = f"""
                WITH window_rows AS (SELECT * FROM read_parquet({window})),
                winners AS (
                    SELECT {", ".join(ident(c) for c in rank_columns)}
                    FROM read_parquet({everything})
                    QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {winner_order(table)}) = 1
                )
                SELECT w.* FROM window_rows AS w SEMI JOIN winners AS x ON {match}
            """
        return duckdb.connect().sql(query).to_arrow_table()

    def latest_rows(self, table: FeatureTable) -> pa.Table:
        """Each entity's winning row across every published partition (for a full resync)."""
        days = self.published_days(table)
        if not days:
            return pa.table({})
        return self.rows_to_serve(table, days, force=True)

    def get_historical_features(
        self,
        entity_df: pd.DataFrame,
        requests: list[FeatureRequest],
        *,
        timestamp_column: str = "event_timestamp",
    ) -> pd.DataFrame:
        """Point-in-time join of `entity_df` with the published partitions of each table."""
        con = duckdb.connect()
        entity = entity_df.copy()
        entity["__entity_row"] = range(len(entity))
        entity["__entity_ts"] = _as_naive_utc(entity[timestamp_column])
        con.register("__entity_rows", entity)
        sources = {request.table.name: self._table_relation(request.table) for request in requests}
        query = point_in_time_query("__entity_rows", requests, sources)
        result = con.sql(query).df()
        return result.drop(columns=["__entity_row", "__entity_ts"])

    def _table_relation(self, table: FeatureTable) -> str:
        files = self.published_files(table)
        if files:
            return f"read_parquet({file_list(files)})"
        # No published partition yet: an empty relation of the right shape joins to NULLs.
        columns = [*table.keys, *_rank_columns(table)]
        types = {**table.key_types, table.timestamp: "timestamp", table.partition_column: "date"}
        if table.created_timestamp:
            types[table.created_timestamp] = "timestamp"
        typed = [f"CAST(NULL AS {DUCKDB_TYPES[types[c]]}) AS {ident(c)}" for c in columns]
        typed += [
            f"CAST(NULL AS {DUCKDB_TYPES[f.logical_type]}) AS {ident(f.name)}"
            for f in table.features
        ]
        return f"(SELECT {', '.join(typed)} WHERE false)"


def _rank_columns(table: FeatureTable) -> list[str]:
    created = [table.created_timestamp] if table.created_timestamp else []
    return [table.timestamp, *created, table.partition_column]


def winner_order(table: FeatureTable) -> str:
    """The one tie-break rule shared by training sets and the online sync."""
    created = (
        [f"{ident(table.created_timestamp)} DESC NULLS LAST"] if table.created_timestamp else []
    )
    return ", ".join(
        [f"{ident(table.timestamp)} DESC", *created, f"{ident(table.partition_column)} DESC"]
    )


def _as_naive_utc(values: pd.Series) -> pd.Series:
    """Timestamps as naive UTC: aware values are converted, naive values are taken as UTC."""
    converted = pd.to_datetime(values)
    if isinstance(converted.dtype, pd.DatetimeTZDtype):
        converted = converted.dt.tz_convert("UTC").dt.tz_localize(None)
    return converted.astype("datetime64[us]")
