"""Pushed rows in the offline store: daily Parquet files beside each table's partitions.

A pushed row is a feature row with its own event and created time. It lives in
`<root>/<table>/_push/<partition_column>=<day>/push-<ns>-<id>.parquet`, the day being the
one its event time falls in (midnight belongs to the day before, as for published rows),
so the training-set join, the online sync and a resync read it with the published days and
choose among them by the one winner rule. Each file is written beside and renamed into
place: a reader sees a whole push or none of it. The `<ns>` in a name is the time the push
began, so the sync finds the pushes that may have raced its writes.
"""

from __future__ import annotations

import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feature_assets.kernel.contract import FeatureTable
from resources.sql import ARROW_TYPES

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
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def folder(self, table: FeatureTable) -> Path:
        return self.root / table.name / PUSH_FOLDER

    def append(self, table: FeatureTable, rows: pa.Table) -> list[Path]:
        """Write rows (of `push_schema`) as one new file per day they touch."""
        started = time.time_ns()
        written = []
        days = rows.column(table.partition_column)
        for day in sorted(set(days.to_pylist())):
            folder = self.folder(table) / f"{table.partition_column}={day.isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            name = f"push-{started}-{uuid.uuid4().hex[:8]}.parquet"
            tmp = folder / f".{name}.tmp"
            pq.write_table(rows.filter(pc.equal(days, pa.scalar(day, pa.date32()))), tmp)
            tmp.replace(folder / name)
            written.append(folder / name)
        return written

    def files(self, table: FeatureTable, days: list[date] | None = None) -> list[Path]:
        """Every push file, or those of `days`, oldest push first."""
        folder = self.folder(table)
        if not folder.exists():
            return []
        found = folder.glob(f"{table.partition_column}=*/push-*.parquet")
        if days is not None:
            wanted = {day.isoformat() for day in days}
            found = (p for p in found if p.parent.name.split("=", 1)[1] in wanted)
        return sorted(found, key=lambda p: p.name)

    def files_since(self, table: FeatureTable, started_ns: int) -> list[Path]:
        """Push files of pushes that began at or after `started_ns`."""
        return [p for p in self.files(table) if int(p.name.split("-")[1]) >= started_ns]

    def days(self, table: FeatureTable) -> list[date]:
        return sorted(
            {date.fromisoformat(p.parent.name.split("=", 1)[1]) for p in self.files(table)}
        )

    def rows_since(self, table: FeatureTable, started_ns: int) -> pa.Table | None:
        """The rows of pushes that began at or after `started_ns`, or None."""
        files = self.files_since(table, started_ns)
        if not files:
            return None
        return pa.concat_tables([pq.read_table(path) for path in files])

    def raced(self, table: FeatureTable, sync_started_ns: int) -> pa.Table | None:
        """Pushes a sync that read the offline store at `sync_started_ns` may have written
        over: it re-applies them with conditional writes (newer-wins), after its own."""
        return self.rows_since(table, sync_started_ns - RACE_MARGIN_NS)
