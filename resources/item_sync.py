"""Change-only online writes: read what is stored, write only what serving needs.

A sync compares each winning row's item with the stored one (per-table item, or the table's
part of a co-located item) and writes it only when
- nothing is stored, or
- the stored values differ (and the stored item is not newer: never back in time), or
- the values are the same but the stored expiry lapses before `horizon` (the next scheduled
  refresh plus one more interval of slack).

An item left as it is with the same values but older event time is *deferred*: its key and
true (newer) event time go to a small ledger beside the table's partitions
(`<root>/<table>/_online_deferred/<online table>.parquet`). Later syncs rewrite ledger
entries whose stored expiry nears the horizon (so a served value never expires early while
refreshes run), and pushes consult it (so a push older than the true event time never
replaces the served value: newer-wins holds as if every item had been rewritten).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from feature_assets.kernel.contract import (
    CREATED_TIMESTAMP_ATTRIBUTE,
    EVENT_TIMESTAMP_ATTRIBUTE,
    EXPIRY_ATTRIBUTE,
    FeatureTable,
)
from resources.online_items import iso, key_attributes, key_names, to_item
from resources.online_store import BATCH_GET_LIMIT, key_text
from resources.sql import ARROW_TYPES

DEFERRED_FOLDER = "_online_deferred"
# Rows compared and written per round: bounds memory whatever the range.
CHUNK_ROWS = 10_000
EVENT, CREATED, EXPIRES = "__event", "__created", "__stored_expires_at"


class Decision(StrEnum):
    WRITE = "write"
    UNCHANGED = "unchanged"  # the stored item is this row's item
    STORED_NEWER = "stored_newer"  # a newer value is stored: never written over
    DEFERRED = "deferred"  # same values, older times, stored expiry beyond the horizon


def decide(
    table: FeatureTable,
    features: Sequence[str],
    stored: Mapping[str, Any] | None,
    item: Mapping[str, Any],
    horizon: int,
) -> Decision:
    """What to do with one row's `item` (the table's item layout) over the `stored` one
    (the same layout, or None). `horizon`: epoch seconds the stored expiry must outlast."""
    if stored is None or EVENT_TIMESTAMP_ATTRIBUTE not in stored:
        return Decision.WRITE
    order = _compare_times(stored, item)
    if order > 0:
        return Decision.STORED_NEWER
    if not all(_same(stored.get(f), item.get(f)) for f in features):
        return Decision.WRITE
    if order == 0:
        return Decision.UNCHANGED
    if table.ttl is None:
        return Decision.DEFERRED
    expiry = stored.get(EXPIRY_ATTRIBUTE)
    if expiry is None or int(expiry["N"]) <= horizon:
        return Decision.WRITE
    return Decision.DEFERRED


def _times(item: Mapping[str, Any]) -> tuple[str, str]:
    # ISO strings of one fixed format ("...Z", microseconds) order as the times do.
    created = item.get(CREATED_TIMESTAMP_ATTRIBUTE, {}).get("S", "")
    return item[EVENT_TIMESTAMP_ATTRIBUTE]["S"], created


def _compare_times(stored: Mapping[str, Any], item: Mapping[str, Any]) -> int:
    a, b = _times(stored), _times(item)
    return (a > b) - (a < b)


def _same(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Equal DynamoDB values: a missing attribute is NULL, numbers compare as numbers
    (DynamoDB normalizes them: "1e+20" comes back as "100000000000000000000")."""
    a, b = a or {"NULL": True}, b or {"NULL": True}
    if "N" in a and "N" in b:
        try:
            return Decimal(a["N"]) == Decimal(b["N"])
        except InvalidOperation:
            return a == b
    return a == b


class Destination(Protocol):
    """Where a table's items go: its own online table, or its part of a service's items."""

    name: str  # the DynamoDB table

    def features(self) -> Sequence[str]: ...

    def reads_for(self, always_write: bool) -> bool:
        """Whether writing needs the stored items (to compare, or to merge into)."""
        ...

    def read(self, keys: list[tuple]) -> dict[tuple, dict[str, Any]]:
        """The stored full items of `keys` (absent keys left out)."""
        ...

    def part_of(self, full: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The table's item layout within a stored full item."""
        ...

    def merged(
        self, key: tuple, full: Mapping[str, Any] | None, item: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The full item to put: `item` in place of the table's part of `full`."""
        ...

    def ensure(self) -> bool:
        """Create the DynamoDB table unless it exists; True if created now (it is empty)."""
        ...

    def put(
        self, items: Iterator[dict[str, Any]], on_written: Callable[[int], None] | None
    ) -> int: ...


@dataclass
class SyncCounts:
    written: int = 0
    unchanged: int = 0
    stored_newer: int = 0
    deferred: int = 0
    written_days: Counter = field(default_factory=Counter, repr=False)

    @property
    def skipped(self) -> int:
        return self.unchanged + self.stored_newer + self.deferred

    def add(self, other: SyncCounts) -> None:
        self.written += other.written
        self.unchanged += other.unchanged
        self.stored_newer += other.stored_newer
        self.deferred += other.deferred
        self.written_days.update(other.written_days)


class TableItems:
    """A feature table's own online items."""

    def __init__(self, online: Any, table: FeatureTable) -> None:
        self.online = online
        self.table = table
        self.name = online.table_name(table)

    def features(self) -> Sequence[str]:
        return self.table.feature_names

    def reads_for(self, always_write: bool) -> bool:
        return not always_write

    def read(self, keys: list[tuple]) -> dict[tuple, dict[str, Any]]:
        return read_items(self.online, self.name, self.table, keys)

    def part_of(self, full: Mapping[str, Any] | None) -> dict[str, Any] | None:
        return dict(full) if full is not None else None

    def merged(
        self, key: tuple, full: Mapping[str, Any] | None, item: Mapping[str, Any]
    ) -> dict[str, Any]:
        return dict(item)

    def ensure(self) -> bool:
        return self.online.ensure_table(self.table)

    def put(self, items: Iterator[dict[str, Any]], on_written: Callable[[int], None] | None) -> int:
        return self.online.write_items(self.name, items, on_written)


def read_items(online: Any, name: str, key_table: FeatureTable, keys: list[tuple]) -> dict:
    """Stored items of `keys` in table `name` (BatchGetItem, 100 keys a call, in parallel)."""
    names = key_names(key_table)
    found: dict[tuple, dict[str, Any]] = {}

    def one(batch: list[tuple]) -> dict[tuple, dict[str, Any]]:
        attributes = [key_attributes(key_table, key) for key in batch]
        back = {key_text(a, names): key for a, key in zip(attributes, batch, strict=True)}
        out = {}
        for _, items in online.batch_get_all({name: {"Keys": attributes, "ConsistentRead": True}}):
            for item in items:
                out[back[key_text(item, names)]] = item
        return out

    batches = [keys[s : s + BATCH_GET_LIMIT] for s in range(0, len(keys), BATCH_GET_LIMIT)]
    with ThreadPoolExecutor(max_workers=online.read_concurrency) as pool:
        for part in pool.map(one, batches):
            found.update(part)
    return found


def write_changed(
    destination: Destination,
    table: FeatureTable,
    rows: pa.Table,
    *,
    horizon: int,
    read_stored: bool = True,
    always_write: bool = False,
    on_written: Callable[[int], None] | None = None,
) -> tuple[SyncCounts, list[dict[str, Any]]]:
    """Write the rows serving needs; returns the counts and the deferred ledger entries.
    `read_stored=False` (a table created just now) writes without reading; `always_write`
    (a forced sync, a resync) writes every row, reading only what a merge needs."""
    counts = SyncCounts()
    deferred: list[dict[str, Any]] = []
    features = destination.features()
    for batch in rows.to_batches(max_chunksize=CHUNK_ROWS):
        records = batch.to_pylist()
        keys = [tuple(r[k] for k in table.keys) for r in records]
        stored = (
            destination.read(keys) if read_stored and destination.reads_for(always_write) else {}
        )
        puts = []
        for key, record in zip(keys, records, strict=True):
            item = to_item(table, record)
            full = stored.get(key)
            decision = (
                Decision.WRITE
                if always_write
                else decide(table, features, destination.part_of(full), item, horizon)
            )
            if decision is Decision.WRITE:
                puts.append(destination.merged(key, full, item))
                counts.written_days[record[table.partition_column]] += 1
            elif decision is Decision.UNCHANGED:
                counts.unchanged += 1
            elif decision is Decision.STORED_NEWER:
                counts.stored_newer += 1
            else:
                counts.deferred += 1
                deferred.append(_ledger_entry(table, key, record, destination.part_of(full)))
        counts.written += destination.put(iter(puts), on_written)
    return counts, deferred


def _ledger_entry(
    table: FeatureTable, key: tuple, record: Mapping[str, Any], stored: Mapping[str, Any] | None
) -> dict[str, Any]:
    entry = dict(zip(table.keys, key, strict=True))
    entry[EVENT] = record[table.timestamp]
    entry[CREATED] = record.get(table.created_timestamp) if table.created_timestamp else None
    expiry = (stored or {}).get(EXPIRY_ATTRIBUTE)
    entry[EXPIRES] = int(expiry["N"]) if expiry else None
    return entry


class DeferredLedger:
    """Keys whose stored item carries the right values under an older event time."""

    def __init__(self, root: str | Path, table: FeatureTable, destination: str) -> None:
        self.table = table
        self.path = Path(root) / table.name / DEFERRED_FOLDER / f"{destination}.parquet"

    def schema(self) -> pa.Schema:
        fields = [(k, ARROW_TYPES[self.table.key_types[k]]) for k in self.table.keys]
        fields += [(EVENT, pa.timestamp("us")), (CREATED, pa.timestamp("us"))]
        return pa.schema([*fields, (EXPIRES, pa.int64())])

    def entries(self) -> dict[tuple, dict[str, Any]]:
        if not self.path.exists():
            return {}
        rows = pq.read_table(self.path).to_pylist()
        return {tuple(r[k] for k in self.table.keys): r for r in rows}

    def due(self, horizon: int) -> list[tuple]:
        """Keys whose stored expiry lapses before the horizon: they must be rewritten now."""
        return [
            key
            for key, entry in self.entries().items()
            if entry[EXPIRES] is not None and entry[EXPIRES] <= horizon
        ]

    def update(self, decided: Sequence[tuple], new: list[dict[str, Any]]) -> None:
        """Entries of keys decided this sync are replaced by this sync's deferrals."""
        settled = set(decided)
        kept = [e for key, e in self.entries().items() if key not in settled]
        everything = kept + new
        if not everything:
            self.clear()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        pq.write_table(pa.Table.from_pylist(everything, schema=self.schema()), tmp)
        tmp.replace(self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def beaten(self, rows: pa.Table) -> list[bool]:
        """Per row: a deferred row of the same key is newer (event time, then created time),
        so the row must not be served even though the stored item looks older."""
        entries = self.entries()
        if not entries:
            return [False] * rows.num_rows
        out = []
        for record in rows.to_pylist():
            entry = entries.get(tuple(record[k] for k in self.table.keys))
            if entry is None:
                out.append(False)
                continue
            created = (
                record.get(self.table.created_timestamp) if self.table.created_timestamp else None
            )
            # Strictly newer: on a full tie a push wins, as the conditional write lets it.
            out.append(
                (iso(entry[EVENT]), _created_text(entry[CREATED]))
                > (iso(record[self.table.timestamp]), _created_text(created))
            )
        return out


def _created_text(value: Any) -> str:
    return iso(value) if value is not None else ""
