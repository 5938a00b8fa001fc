"""Pushed rows in the offline store: daily Parquet files beside each table's partitions.

A pushed row is a feature row with its own event and created time. It lives in
`<root>/<table>/_push/<partition_column>=<day>/push-<ns>-<id>.parquet`, the day being the
one its event time falls in (midnight belongs to the day before, as for published rows),
so the training-set join, the online sync and a resync read it with the published days and
choose among them by the one winner rule. Each file is written whole or not at all (renamed
into place on disk; on S3 an object appears when its upload completes): a reader sees a
whole push or none of it. The `<ns>` in a name is the time the push
began, so the sync finds the pushes that may have raced its writes.
"""

from __future__ import annotations

import time
import uuid
from datetime import date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from feature_assets.kernel.contract import FeatureTable
from resources.sql import ARROW_TYPES
from resources.storage import Storage

PUSH_FOLDER = "_push"
# A sync re-applies pushes that began up to this long before it read the offline store: a
# push names its file when it begins, and is written moments later.
RACE_MARGIN_NS = 60 * 10**9


def push_schema(table: FeatureTable) -> pa.Schema:
    """The columns of a published day, in the types the publish check requires."""
    fields = [(key, ARROW_TYPES[table.key_types[key]]) for key in table.keys]
    fields += [(table.partition_column, pa.date32()), (table.timestamp, pa.timestamp("us"))]
    if table.created_timestamp:
        fields.append((table.created_timestamp, pa.timestamp("us")))
    fields += [(f.name, ARROW_TYPES[f.logical_type]) for f in table.features]
    return pa.schema(fields)


def event_day(event_time: datetime) -> date:
    """The partition day of an event time: midnight ends the day before."""
    return (event_time - timedelta(microseconds=1)).date()


class PushLog:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def folder(self, table: FeatureTable) -> str:
        return self.storage.uri(table.name, PUSH_FOLDER)

    def append(self, table: FeatureTable, rows: pa.Table) -> list[str]:
        """Write rows (of `push_schema`) as one new file per day they touch."""
        started = time.time_ns()
        written = []
        days = rows.column(table.partition_column)
        for day in sorted(set(days.to_pylist())):
            folder = f"{self.folder(table)}/{table.partition_column}={day.isoformat()}"
            uri = f"{folder}/push-{started}-{uuid.uuid4().hex[:8]}.parquet"
            self.storage.write_table(rows.filter(pc.equal(days, pa.scalar(day, pa.date32()))), uri)
            written.append(uri)
        return written

    def files(self, table: FeatureTable, days: list[date] | None = None) -> list[str]:
        """Every push file, or those of `days`, oldest push first."""
        wanted = None if days is None else {day.isoformat() for day in days}
        found = [
            f
            for f in self.storage.files(self.folder(table))
            if f.name.startswith("push-")
            and f.name.endswith(".parquet")
            and (wanted is None or _day_text(f.uri) in wanted)
        ]
        return [f.uri for f in sorted(found, key=lambda f: f.name)]

    def files_since(self, table: FeatureTable, started_ns: int) -> list[str]:
        """Push files of pushes that began at or after `started_ns`."""
        return [
            uri
            for uri in self.files(table)
            if int(uri.rsplit("/", 1)[1].split("-")[1]) >= started_ns
        ]

    def days(self, table: FeatureTable) -> list[date]:
        return sorted({date.fromisoformat(_day_text(uri)) for uri in self.files(table)})

    def rows_since(self, table: FeatureTable, started_ns: int) -> pa.Table | None:
        """The rows of pushes that began at or after `started_ns`, or None."""
        files = self.files_since(table, started_ns)
        if not files:
            return None
        return pa.concat_tables([self.storage.read_table(uri) for uri in files])

    def raced(self, table: FeatureTable, sync_started_ns: int) -> pa.Table | None:
        """Pushes a sync that read the offline store at `sync_started_ns` may have written
        over: it re-applies them with conditional writes (newer-wins), after its own."""
        return self.rows_since(table, sync_started_ns - RACE_MARGIN_NS)


def _day_text(uri: str) -> str:
    """The day of a push file, from its `<partition_column>=<day>` folder."""
    return uri.rsplit("/", 2)[-2].split("=", 1)[1]
