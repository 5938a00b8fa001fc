"""Change-only online writes: compare with what is stored, write only what serving needs.

A sync compares each winning row's item with the stored one (per-table item, or the table's
part of a co-located item) and writes it only when
- nothing is stored, or
- the stored values differ (and the stored item is not newer: never back in time), or
- the values are the same but the stored expiry lapses before `horizon` (the next scheduled
  refresh plus one more interval of slack).

What is stored is known without reading it: each sync remembers what it leaves in each
online table (`SyncState`: per key the stored event, created time and expiry, and a digest
of the values) in `<root>/<table>/_online_state/<online table>.parquet`, with the table's
creation time. A sync reads items online only where that memory cannot be trusted: keys
pushed since (pushes write online directly) and every key when the table was recreated (a
restarted embedded store). A co-located item is put whole: the other tables' parts are their
own winning rows (what their syncs would write), so nothing is read to merge.

An item left as it is with the same values but an older event time is *deferred*: its true
(newer) event time is remembered too. Later syncs rewrite deferred items whose stored expiry
nears the horizon (so a served value never expires early while refreshes run), and pushes
consult it (so a push older than the true event time never replaces the served value:
newer-wins holds as if every item had been rewritten).
"""

from __future__ import annotations

import functools
import hashlib
import json
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
from resources.online_items import iso, items_of, key_attributes, key_names
from resources.online_store import BATCH_GET_LIMIT, key_text
from resources.sql import ARROW_TYPES

STATE_FOLDER = "_online_state"
# Rows compared per round: bounds memory whatever the range; small enough that the next
# round's work overlaps this one's puts from the start.
CHUNK_ROWS = 2_500
# A remembered item: its times as stored, its expiry, a digest of its values, and for a
# deferred one the true times of the row it stands for.
EVENT, CREATED, EXPIRES, DIGEST = "__event", "__created", "__expires_at", "__digest"
TRUE_EVENT, TRUE_CREATED = "__true_event", "__true_created"
STATE_TABLE_CREATED, STATE_WRITTEN_NS = b"online_table_created", b"written_ns"


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
    values: str | None = None,
) -> Decision:
    """What to do with one row's `item` (the table's item layout) over the `stored` one
    (the same layout, or None). `horizon`: epoch seconds the stored expiry must outlast;
    `values`: the item's digest, when already known."""
    if stored is None or EVENT_TIMESTAMP_ATTRIBUTE not in stored:
        return Decision.WRITE
    order = _compare_times(stored, item)
    if order > 0:
        return Decision.STORED_NEWER
    if digest(stored, features) != (values or digest(item, features)):
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


def digest(item: Mapping[str, Any], features: Sequence[str]) -> str:
    """The values of an item (or the digest remembered for it): equal for equal DynamoDB
    values, a missing attribute being NULL and numbers compared as numbers (DynamoDB
    normalizes them: "1e+20" comes back as "100000000000000000000").

    The blake2b of the JSON text of [[feature, kind, value], ...] (value normalized for N),
    written out here: `json.dumps` per item was a third of a sync's digest time. Remembered
    digests depend on this text: changing it rewrites every item once."""
    if DIGEST in item:
        return item[DIGEST]
    parts = []
    for feature in features:
        ((kind, value),) = (item.get(feature) or _NULL).items()
        if kind == "N":
            text = _json_text(_normal_number(value))
        elif value is True or value is False:
            text = "true" if value else "false"
        else:
            text = _json_text(value)
        parts.append(f"[{_json_text(feature)}, {_json_text(kind)}, {text}]")
    return hashlib.blake2b(("[" + ", ".join(parts) + "]").encode(), digest_size=16).hexdigest()


_NULL = {"NULL": True}
_json_text = json.encoder.encode_basestring_ascii  # json.dumps' own string encoder


@functools.lru_cache(maxsize=1 << 16)
def _normal_number(value: str) -> str:
    # Counts and amounts repeat across items: the cache spares most Decimal parses.
    try:
        return str(Decimal(value).normalize())
    except InvalidOperation:
        return value


class Destination(Protocol):
    """Where a table's items go: its own online table, or its part of a service's items."""

    name: str  # the DynamoDB table

    def features(self) -> Sequence[str]: ...

    reads_to_merge: bool  # puts whole items whose other parts are the stored ones, read

    def creation_time(self) -> str:
        """When the DynamoDB table was created (a recreated table holds none of its past)."""
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

    def others(
        self, keys: list[tuple], stored: dict[tuple, dict[str, Any]], empty: bool
    ) -> dict[tuple, dict[str, Any]]:
        """The other parts of the whole items of `keys` (none for a table's own items; `stored`
        holds the items already read)."""
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


class TableItems:
    """A feature table's own online items."""

    def __init__(self, online: Any, table: FeatureTable) -> None:
        self.online = online
        self.table = table
        self.name = online.table_name(table)

    def features(self) -> Sequence[str]:
        return self.table.feature_names

    reads_to_merge = False

    def creation_time(self) -> str:
        return table_creation_time(self.online, self.name)

    def read(self, keys: list[tuple]) -> dict[tuple, dict[str, Any]]:
        return read_items(self.online, self.name, self.table, keys)

    def part_of(self, full: Mapping[str, Any] | None) -> dict[str, Any] | None:
        return dict(full) if full is not None else None

    def merged(
        self, key: tuple, full: Mapping[str, Any] | None, item: Mapping[str, Any]
    ) -> dict[str, Any]:
        return dict(item)

    def others(
        self, keys: list[tuple], stored: dict[tuple, dict[str, Any]], empty: bool
    ) -> dict[tuple, dict[str, Any]]:
        return {}

    def ensure(self) -> bool:
        return self.online.ensure_table(self.table)

    def put(self, items: Iterator[dict[str, Any]], on_written: Callable[[int], None] | None) -> int:
        return self.online.write_items(self.name, items, on_written)


def table_creation_time(online: Any, name: str) -> str:
    return online.client.describe_table(TableName=name)["Table"]["CreationDateTime"].isoformat()


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
    remembered: Mapping[tuple, Mapping[str, Any]] | None = None,
    read_keys: set[tuple] | frozenset[tuple] = frozenset(),
    empty: bool = False,
    always_write: bool = False,
    on_written: Callable[[int], None] | None = None,
) -> tuple[SyncCounts, dict[tuple, dict[str, Any]]]:
    """Write the rows serving needs; returns the counts and what is now stored per key of
    `rows` (state entries).

    What is stored comes from `remembered` (a trusted `SyncState`; a key it lacks holds
    nothing), except for `read_keys`, read online; without `remembered`, every key is read.
    `empty` (a table created just now) reads nothing. `always_write` (a forced sync, a
    resync) writes every row. A destination that merges into whole items gets the other parts
    of the items it writes from `others`."""
    counts = SyncCounts()
    now_stored: dict[tuple, dict[str, Any]] = {}
    features = destination.features()

    def chunks() -> Iterator[list[dict[str, Any]]]:
        """The items to put, a chunk of rows at a time (counts and `now_stored` filled in)."""
        for batch in rows.to_batches(max_chunksize=CHUNK_ROWS):
            keys = list(zip(*(batch.column(k).to_pylist() for k in table.keys), strict=True))
            days = batch.column(table.partition_column).to_pylist()
            if empty:
                online = {}
            elif remembered is None:
                reads = not always_write or destination.reads_to_merge
                online = destination.read(keys) if reads else {}
            else:
                online = destination.read([k for k in keys if k in read_keys]) if read_keys else {}
            decisions = []
            for key, day, item in zip(keys, days, items_of(table, batch), strict=True):
                values = digest(item, features)
                if empty or remembered is None or key in read_keys:
                    stored = destination.part_of(online.get(key))
                else:
                    stored = _as_item(remembered.get(key))
                decision = (
                    Decision.WRITE
                    if always_write
                    else decide(table, features, stored, item, horizon, values)
                )
                decisions.append((key, day, item, values, stored, decision))
            writes = [key for key, *_, decision in decisions if decision is Decision.WRITE]
            others = destination.others(writes, online, empty)
            puts = []
            for key, day, item, values, stored, decision in decisions:
                if decision is Decision.WRITE:
                    puts.append(destination.merged(key, others.get(key), item))
                    counts.written_days[day] += 1
                    now_stored[key] = entry_of(item, features, values)
                    continue
                entry = entry_of(stored, features)
                if decision is Decision.UNCHANGED:
                    counts.unchanged += 1
                elif decision is Decision.STORED_NEWER:
                    counts.stored_newer += 1
                else:
                    counts.deferred += 1
                    entry[TRUE_EVENT] = item[EVENT_TIMESTAMP_ATTRIBUTE]["S"]
                    entry[TRUE_CREATED] = item.get(CREATED_TIMESTAMP_ATTRIBUTE, {}).get("S")
                now_stored[key] = entry
            yield puts

    counts.written = destination.put(computed_ahead(chunks()), on_written)
    return counts, now_stored


def computed_ahead(chunks: Iterator[list[Any]]) -> Iterator[Any]:
    """The elements of `chunks`, the next chunk computed in a thread while this one's are
    consumed: a sync's Python work overlaps its puts on the wire, where the server works."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(next, chunks, None)
        while (chunk := pending.result()) is not None:
            pending = pool.submit(next, chunks, None)
            yield from chunk


def entry_of(
    item: Mapping[str, Any], features: Sequence[str], values: str | None = None
) -> dict[str, Any]:
    """What to remember of a stored item (in the table's item layout; `values`, its digest
    when already known)."""
    expiry = item.get(EXPIRY_ATTRIBUTE)
    return {
        EVENT: item[EVENT_TIMESTAMP_ATTRIBUTE]["S"],
        CREATED: item.get(CREATED_TIMESTAMP_ATTRIBUTE, {}).get("S"),
        EXPIRES: int(expiry["N"]) if expiry else None,
        DIGEST: values or digest(item, features),
        TRUE_EVENT: item.get(TRUE_EVENT),
        TRUE_CREATED: item.get(TRUE_CREATED),
    }


def _as_item(entry: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A remembered entry in the item layout `decide` reads (values as their digest)."""
    if entry is None:
        return None
    item: dict[str, Any] = {EVENT_TIMESTAMP_ATTRIBUTE: {"S": entry[EVENT]}, DIGEST: entry[DIGEST]}
    if entry[CREATED] is not None:
        item[CREATED_TIMESTAMP_ATTRIBUTE] = {"S": entry[CREATED]}
    if entry[EXPIRES] is not None:
        item[EXPIRY_ATTRIBUTE] = {"N": str(entry[EXPIRES])}
    item[TRUE_EVENT], item[TRUE_CREATED] = entry[TRUE_EVENT], entry[TRUE_CREATED]
    return item


class SyncState:
    """What the syncs left in one online table for one feature table, per key."""

    def __init__(self, root: str | Path, table: FeatureTable, destination: str) -> None:
        self.table = table
        self.path = Path(root) / table.name / STATE_FOLDER / f"{destination}.parquet"
        # The deferred entries alone, which every push consults: a few rows, not one per entity.
        self.deferred_path = self.path.with_name(f"{destination}.deferred.parquet")

    def schema(self) -> pa.Schema:
        fields = [(k, ARROW_TYPES[self.table.key_types[k]]) for k in self.table.keys]
        fields += [(EVENT, pa.string()), (CREATED, pa.string()), (EXPIRES, pa.int64())]
        fields += [(DIGEST, pa.string()), (TRUE_EVENT, pa.string()), (TRUE_CREATED, pa.string())]
        return pa.schema(fields)

    def load(self, table_created: str | None) -> tuple[dict[tuple, dict[str, Any]] | None, int]:
        """(entries, when the sync that saved them began, ns), or (None, 0) when there is
        nothing to trust: no state, or one saved for an online table since recreated."""
        if not self.path.exists():
            return None, 0
        stored = pq.read_table(self.path)
        metadata = stored.schema.metadata or {}
        if table_created is None or metadata.get(STATE_TABLE_CREATED) != table_created.encode():
            return None, 0
        return self._by_key(stored), int(metadata.get(STATE_WRITTEN_NS, b"0"))

    def entries(self) -> dict[tuple, dict[str, Any]]:
        return self._by_key(pq.read_table(self.path)) if self.path.exists() else {}

    def _by_key(self, stored: pa.Table) -> dict[tuple, dict[str, Any]]:
        return {tuple(r[k] for k in self.table.keys): r for r in stored.to_pylist()}

    def update(self, now_stored: Mapping[tuple, Mapping[str, Any]]) -> None:
        """Replace the entries of some keys, keeping what the state was saved for (its
        online table and the time its sync began: pushes since are still read next time).
        Without a saved state there is nothing to keep: the next sync reads every key."""
        if not self.path.exists():
            return
        metadata = pq.read_schema(self.path).metadata or {}
        self.save(
            {**self.entries(), **now_stored},
            metadata[STATE_TABLE_CREATED].decode(),
            int(metadata[STATE_WRITTEN_NS]),
        )

    def save(
        self, entries: Mapping[tuple, Mapping[str, Any]], table_created: str, written_ns: int
    ) -> None:
        rows = [
            {**dict(zip(self.table.keys, key, strict=True)), **entry}
            for key, entry in entries.items()
        ]
        schema = self.schema().with_metadata(
            {
                STATE_TABLE_CREATED: table_created.encode(),
                STATE_WRITTEN_NS: str(written_ns).encode(),
            }
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deferred = [row for row in rows if row[TRUE_EVENT] is not None]
        # The deferred file first: a crash between the two leaves it ahead of the state,
        # which only makes pushes more careful.
        for path, part in ((self.deferred_path, deferred), (self.path, rows)):
            tmp = path.with_suffix(".tmp")
            pq.write_table(pa.Table.from_pylist(part, schema=schema), tmp)
            tmp.replace(path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        self.deferred_path.unlink(missing_ok=True)

    @staticmethod
    def due(entries: Mapping[tuple, Mapping[str, Any]], horizon: int) -> list[tuple]:
        """Deferred keys whose stored expiry lapses before the horizon: rewrite them now."""
        return [
            key
            for key, entry in entries.items()
            if entry[TRUE_EVENT] is not None
            and entry[EXPIRES] is not None
            and entry[EXPIRES] <= horizon
        ]

    def beaten(self, rows: pa.Table) -> list[bool]:
        """Per row: a deferred row of the same key is newer (event time, then created time),
        so the row must not be served even though the stored item looks older."""
        if not self.deferred_path.exists():
            return [False] * rows.num_rows
        entries = self._by_key(pq.read_table(self.deferred_path))
        if not entries:
            return [False] * rows.num_rows
        out = []
        for record in rows.to_pylist():
            entry = entries.get(tuple(record[k] for k in self.table.keys))
            if entry is None or entry[TRUE_EVENT] is None:
                out.append(False)
                continue
            created = (
                record.get(self.table.created_timestamp) if self.table.created_timestamp else None
            )
            # Strictly newer: on a full tie a push wins, as the conditional write lets it.
            out.append(
                (entry[TRUE_EVENT], entry[TRUE_CREATED] or "")
                > (iso(record[self.table.timestamp]), _created_text(created))
            )
        return out


def _created_text(value: Any) -> str:
    return iso(value) if value is not None else ""
