"""Co-located feature services: one DynamoDB item per entity holding every stored feature of
the service, so reading it is one GetItem / BatchGetItem round trip.

Each table's part of the item is its own: `<table>__<feature>` attributes plus
`<table>__event_timestamp`, `<table>__created_timestamp` and `<table>__expires_at`, so the
TTL holds per table (reads apply it, as for a table's own items). A push writes its part
by UpdateItem, conditional on that table's event time (then created time) being older or
equal: the same newer-wins rule as the table's own items. A sync decides change-only, as
for the table's own items (`resources.item_sync`), and puts whole items: the other tables'
parts are their own winning rows, offline and pushed, as their syncs would write them
(`ColocatedPart`), so nothing is read to merge and each item is put once per run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import pyarrow as pa
from botocore.exceptions import ClientError

from feature_assets.kernel.contract import (
    CREATED_TIMESTAMP_ATTRIBUTE,
    EVENT_TIMESTAMP_ATTRIBUTE,
    EXPIRY_ATTRIBUTE,
    FeatureTable,
)
from resources.item_sync import entry_of, read_items, table_creation_time
from resources.online_items import (
    OnlineStatus,
    from_attribute,
    items_of,
    key_attributes,
    key_names,
    newer_wins_condition,
    status_at,
    typed_key,
)
from resources.online_store import (
    BATCH_GET_LIMIT,
    OnlineRead,
    OnlineStore,
    key_text,
    unavailable_as_error,
)

TIMES = (EVENT_TIMESTAMP_ATTRIBUTE, CREATED_TIMESTAMP_ATTRIBUTE, EXPIRY_ATTRIBUTE)


def part(table: FeatureTable, attribute: str) -> str:
    """The attribute of the co-located item that holds one table's attribute."""
    return f"{table.name}__{attribute}"


class ColocatedItems:
    """The co-located items of one service, through the online store's client."""

    def __init__(self, online: OnlineStore, service_name: str, key_table: FeatureTable) -> None:
        """`key_table`: any table of the service (they share their keys)."""
        self.online = online
        self.service_name = service_name
        self.key_table = key_table
        self.name = f"{online.table_prefix}service_{service_name}"

    def ensure_table(self) -> bool:
        # No DynamoDB TTL: one item holds parts with different TTLs (reads apply them).
        return self.online.ensure_named_table(self.name, self.key_table, with_ttl=False)

    def destination(
        self,
        table: FeatureTable,
        features: Sequence[str],
        companions: Companions | None = None,
    ) -> ColocatedPart:
        """One table's part of the items, as the change-only sync writes it. `companions`:
        where the other tables' parts come from (else they are read as stored)."""
        return ColocatedPart(self, table, tuple(features), companions)

    def delete_table(self) -> None:
        self.online.delete_named_table(self.name)

    # --- writes --------------------------------------------------------------------------

    def write(
        self, table: FeatureTable, features: Sequence[str], rows: pa.Table, *, newer_only: bool
    ) -> tuple[int, int]:
        """Set one table's part of each entity's item from its rows; returns (written, kept
        newer). `newer_only` makes each update conditional on the part being older."""
        names = {"#e": part(table, EVENT_TIMESTAMP_ATTRIBUTE)}
        if table.created_timestamp:
            names["#c"] = part(table, CREATED_TIMESTAMP_ATTRIBUTE)
        condition = newer_wins_condition(table)

        def update(row_and_item: tuple[Mapping[str, Any], dict[str, Any]]) -> bool:
            row, item = row_and_item
            key = key_attributes(table, tuple(row[k] for k in table.keys))
            attributes = [*features, *(t for t in TIMES if t in item)]
            sets = {f"#v{i}": part(table, a) for i, a in enumerate(attributes)}
            values = {f":v{i}": item[a] for i, a in enumerate(attributes)}
            request: dict[str, Any] = {
                "TableName": self.name,
                "Key": key,
                "UpdateExpression": "SET " + ", ".join(f"{n} = :{n[1:]}" for n in sets),
                "ExpressionAttributeNames": sets,
                "ExpressionAttributeValues": values,
            }
            if newer_only:
                request["ExpressionAttributeNames"] = {**sets, **names}
                request["ExpressionAttributeValues"] = {
                    **values,
                    ":e": item[EVENT_TIMESTAMP_ATTRIBUTE],
                    **(
                        {":c": item.get(CREATED_TIMESTAMP_ATTRIBUTE, {"S": ""})}
                        if table.created_timestamp
                        else {}
                    ),
                }
                request["ConditionExpression"] = condition
            try:
                self.online.client.update_item(**request)
            except ClientError as error:
                if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    return False
                raise
            return True

        with (
            unavailable_as_error(f"online table {self.name!r}"),
            ThreadPoolExecutor(max_workers=self.online.write_concurrency) as pool,
        ):
            self.ensure_table()
            done = list(pool.map(update, zip(rows.to_pylist(), items_of(table, rows), strict=True)))
        return sum(done), len(done) - sum(done)

    # --- reads ---------------------------------------------------------------------------

    def read(
        self,
        requests: Sequence[tuple[FeatureTable, Sequence[str]]],
        entity_rows: Sequence[Mapping[str, Any]],
        *,
        now: datetime | None = None,
    ) -> list[list[OnlineRead]]:
        """The same answer as `OnlineStore.read_tables` for the service's tables, from one
        item per entity: per table, one read per entity row, TTL applied per table."""
        now = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
        keys = [typed_key(self.key_table, entity) for entity in entity_rows]
        attributes = list(
            dict.fromkeys(
                [
                    *key_names(self.key_table),
                    *(part(t, a) for t, fs in requests for a in (*fs, EVENT_TIMESTAMP_ATTRIBUTE)),
                ]
            )
        )
        names = {f"#a{i}": a for i, a in enumerate(attributes)}
        unique = list(dict.fromkeys(keys))
        found: dict[tuple, dict[str, Any]] = {}
        with unavailable_as_error(f"online table {self.name!r}"):
            for start in range(0, len(unique), BATCH_GET_LIMIT):
                batch = list(islice(unique, start, start + BATCH_GET_LIMIT))
                found.update(self._batch_get(batch, names))
        results = []
        for table, features in requests:
            types = {f: table.feature(f).logical_type for f in features}
            per_table = []
            for key in keys:
                item = found.get(key)
                own = _part_of(table, features, item)
                status = status_at(table, own, now)
                values = (
                    {f: from_attribute(own.get(f, {"NULL": True}), types[f]) for f in features}
                    if own is not None and status is OnlineStatus.PRESENT
                    else dict.fromkeys(features)
                )
                per_table.append(OnlineRead(status, values))
            results.append(per_table)
        return results

    def _batch_get(self, keys: list[tuple], names: dict[str, str]) -> dict[tuple, dict[str, Any]]:
        request = {
            self.name: {
                "Keys": [key_attributes(self.key_table, key) for key in keys],
                "ProjectionExpression": ", ".join(names),
                "ExpressionAttributeNames": names,
            }
        }
        names_of_key = key_names(self.key_table)
        by_key = {key_text(key_attributes(self.key_table, k), names_of_key): k for k in keys}
        found = {}
        for _, items in self.online.batch_get_all(request):
            for item in items:
                found[by_key[key_text(item, names_of_key)]] = item
        return found


@dataclass
class Companions:
    """The other tables of a service and their features, with the offline store that knows
    each one's winning rows."""

    offline: Any  # OfflineStore (not imported: the stores do not import each other)
    tables: tuple[tuple[FeatureTable, tuple[str, ...]], ...]


class ColocatedPart:
    """A table's part of a service's items, compared by part and put whole. Syncs of the
    tables of one service share a Dagster pool, so no two of them put the same items at once;
    pushes that race a put are re-applied."""

    def __init__(
        self,
        items: ColocatedItems,
        table: FeatureTable,
        features: tuple[str, ...],
        companions: Companions | None = None,
    ):
        self.items = items
        self.table = table
        self.name = items.name
        self._features = features
        self.companions = companions
        # What this sync put of each other table's part, per key (their sync states' entries).
        self.companion_entries: dict[str, dict[tuple, dict[str, Any]]] = {}
        self._expected: list[tuple] | None = None
        self._winners: dict[tuple, tuple[dict[str, Any], dict[str, dict[str, Any]]]] = {}

    def features(self) -> Sequence[str]:
        return self._features

    @property
    def reads_to_merge(self) -> bool:
        return self.companions is None

    def expect(self, keys: list[tuple]) -> None:
        """The keys this sync may put. The other tables' winning rows of all of them are read
        in one scan, when the first item is put; a scan per 2,500-item chunk re-read every
        published day of each other table."""
        self._expected = keys

    def others(
        self, keys: list[tuple], stored: dict[tuple, dict[str, Any]], empty: bool
    ) -> dict[tuple, dict[str, Any]]:
        """The other tables' parts of the items of `keys`: each one's winning row (its own
        sync writes the same, and then finds it unchanged), or without companions the items
        as stored."""
        if self.companions is None:
            missing = [key for key in keys if key not in stored]
            if missing and not empty:
                stored.update(self.read(missing))
            return stored
        parts: dict[tuple, dict[str, Any]] = {}
        missing = [key for key in keys if key not in self._winners]
        if missing:
            wanted = missing if self._expected is None else [*missing, *self._expected]
            self._winners.update(self._companion_parts(list(dict.fromkeys(wanted))))
            self._expected = None
        for key in keys:
            own, entries = self._winners.get(key, ({}, {}))
            if own:
                parts[key] = own  # merged() reads it and builds a new item
            for name, entry in entries.items():
                self.companion_entries.setdefault(name, {})[key] = entry
        return parts

    def _companion_parts(
        self, keys: list[tuple]
    ) -> dict[tuple, tuple[dict[str, Any], dict[str, dict[str, Any]]]]:
        """Per key: the other tables' parts of its item, and each one's state entry."""
        found: dict[tuple, tuple[dict[str, Any], dict[str, dict[str, Any]]]] = {
            key: ({}, {}) for key in keys
        }
        for other, features in self.companions.tables:
            winners = self.companions.offline.latest_rows(other, keys=keys)
            if not winners.num_rows:
                continue
            other_keys = zip(*(winners.column(k).to_pylist() for k in other.keys), strict=True)
            for key, item in zip(other_keys, items_of(other, winners), strict=True):
                own, entries = found[key]
                for attribute in (*features, *TIMES):
                    if attribute in item:
                        own[part(other, attribute)] = item[attribute]
                entries[other.name] = entry_of(item, features)
        return found

    def creation_time(self) -> str:
        return table_creation_time(self.items.online, self.name)

    def read(self, keys: list[tuple]) -> dict[tuple, dict[str, Any]]:
        return read_items(self.items.online, self.name, self.items.key_table, keys)

    def part_of(self, full: Mapping[str, Any] | None) -> dict[str, Any] | None:
        own = _part_of(self.table, self._features, full)
        if own is not None:
            for attribute in (CREATED_TIMESTAMP_ATTRIBUTE, EXPIRY_ATTRIBUTE):
                if part(self.table, attribute) in full:
                    own[attribute] = full[part(self.table, attribute)]
        return own

    def merged(
        self, key: tuple, full: Mapping[str, Any] | None, item: Mapping[str, Any]
    ) -> dict[str, Any]:
        mine = f"{self.table.name}__"
        merged = {k: v for k, v in (full or {}).items() if not k.startswith(mine)}
        merged.update(key_attributes(self.items.key_table, key))
        for attribute in (*self._features, *TIMES):
            if attribute in item:
                merged[part(self.table, attribute)] = item[attribute]
        return merged

    def ensure(self) -> bool:
        return self.items.ensure_table()

    def put(self, items: Iterator[dict[str, Any]], on_written: Callable[[int], None] | None) -> int:
        return self.items.online.write_items(self.name, items, on_written)


def _part_of(
    table: FeatureTable, features: Sequence[str], item: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """One table's part of a co-located item, shaped like that table's own item (None when
    the table never wrote this entity)."""
    if item is None or part(table, EVENT_TIMESTAMP_ATTRIBUTE) not in item:
        return None
    own = {f: item[part(table, f)] for f in features if part(table, f) in item}
    own[EVENT_TIMESTAMP_ATTRIBUTE] = item[part(table, EVENT_TIMESTAMP_ATTRIBUTE)]
    return own
