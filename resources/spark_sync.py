"""The online sync at scale: from Spark, every partition of the winning rows writes its own
items, in parallel, with the embedded sync's item layout and newer-wins rule.

The winners are chosen in Spark as `OfflineStore.rows_to_serve` chooses them: a row of the
window is written only if it is its key's winner across every published day and push
(latest event time, then created time, then day), so syncing an old day never moves a served
value back in time. Each partition then puts its rows' items (`online_items.items_of`) with
its own client (`OnlineStore.write_items`: batch writes, botocore's retries, the throttling
budget), on whichever executor holds it; an executor needs this package installed.

It writes whole items, as a resync does, and forgets the change-only sync's memory of the
table (the next sync reads what is stored). A table's parts of co-located services are not
written here: the embedded sync writes them (`sync_table(..., own_items=False)`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa

from feature_assets.kernel.contract import FeatureTable
from resources.item_sync import SyncState
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from resources.point_in_time import winner_columns, winner_order
from resources.sql import sident

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

WRITTEN_SCHEMA = "written long, partition int"


@dataclass(frozen=True)
class OnlineTarget:
    """What an executor needs to reach the online store (the store object holds a client,
    which does not travel)."""

    endpoint_url: str | None
    region: str
    table_prefix: str
    max_attempts: int

    @classmethod
    def of(cls, online: OnlineStore) -> OnlineTarget:
        return cls(online.endpoint_url, online.region, online.table_prefix, online.max_attempts)

    def store(self) -> OnlineStore:
        return OnlineStore(
            endpoint_url=self.endpoint_url,
            region=self.region,
            table_prefix=self.table_prefix,
            max_attempts=self.max_attempts,
        )


@dataclass(frozen=True)
class SparkSyncCounts:
    written: int
    partitions: int  # partitions that wrote at least one item


def winners_query(table: FeatureTable, window: str, everything: str) -> str:
    """Spark SQL: the rows of view `window` that are their key's winner in view `everything`."""
    keys = ", ".join(sident(k) for k in table.keys)
    order = winner_order(table, quote=sident)
    columns = [*table.keys, *winner_columns(table)]
    match = " AND ".join(f"w.{sident(c)} <=> x.{sident(c)}" for c in columns)
    return f"""
        SELECT w.* FROM {window} AS w LEFT SEMI JOIN (
            SELECT {", ".join(sident(c) for c in columns)} FROM (
                SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY {", ".join(order)})
                    AS __rank
                FROM {everything}
            ) AS ranked WHERE __rank = 1
        ) AS x ON {match}
    """


def winning_rows(
    spark: SparkSession,
    offline: OfflineStore,
    table: FeatureTable,
    days: Sequence[date] | None,
) -> DataFrame:
    """The rows of `days` the online store should hold (newer-wins), as a DataFrame; with
    `days` None, every key's winner, pushes included (a resync)."""
    spark = spark.newSession()  # its own temporary views
    published = offline.published(table)
    every = [p.file for p in published.values()] + offline.push_log.files(table)
    read = spark.read.option("mergeSchema", "true")
    read.parquet(*every).createOrReplaceTempView("__sync_everything")
    if days is None:
        window = "__sync_everything"
    else:
        window = "__sync_window"
        read.parquet(*(published[d].file for d in days)).createOrReplaceTempView(window)
    return spark.sql(winners_query(table, window, "__sync_everything"))


def write_partitions(rows: DataFrame, table: FeatureTable, online: OnlineStore) -> SparkSyncCounts:
    """Each partition of `rows` puts its items from where it runs; returns the counts."""
    target, name = OnlineTarget.of(online), online.table_name(table)
    columns = [*table.keys, table.timestamp, *table.feature_names]
    if table.created_timestamp:
        columns.append(table.created_timestamp)

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        from resources.online_items import items_of

        def items() -> Iterator[dict]:
            for batch in batches:
                yield from items_of(table, batch)

        written = target.store().write_items(name, items())
        partition = TaskContext.get().partitionId()
        yield pa.record_batch(
            [pa.array([written], pa.int64()), pa.array([partition], pa.int32())],
            names=["written", "partition"],
        )

    selected = rows.select(*(sident(c) for c in columns))
    counts = selected.mapInArrow(write, WRITTEN_SCHEMA).collect()
    return SparkSyncCounts(
        written=sum(row.written for row in counts),
        partitions=sum(1 for row in counts if row.written),
    )


def spark_sync(
    spark: SparkSession,
    offline: OfflineStore,
    online: OnlineStore,
    table: FeatureTable,
    days: Sequence[date] | None,
    *,
    partitions: int | None = None,
) -> SparkSyncCounts:
    """Write the winning rows of `days` (None: every key's winner, as a resync) as the table's
    own items, from `partitions` Spark partitions (Spark's choice by default) in parallel."""
    online.ensure_table(table)
    rows = winning_rows(spark, offline, table, days)
    if partitions:
        rows = rows.repartition(partitions)
    counts = write_partitions(rows, table, online)
    # What the change-only sync remembers no longer says what is stored.
    SyncState(offline.state_root, table, online.table_name(table)).clear()
    return counts
