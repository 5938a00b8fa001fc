"""One online sync of a table: its own items and its parts of co-located services, each
written change-only (`resources.item_sync`), then the pushes that raced it re-applied."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from feature_assets.kernel.contract import FeatureTable
from resources.colocated import ColocatedItems
from resources.item_sync import DeferredLedger, Destination, SyncCounts, TableItems, write_changed
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore, unavailable_as_error


def destinations(
    online: OnlineStore, table: FeatureTable, services: Mapping[str, tuple[str, ...]]
) -> list[Destination]:
    """The table's own items first, then its part of each co-located service's items."""
    return [
        TableItems(online, table),
        *(
            ColocatedItems(online, service, table).destination(table, features)
            for service, features in services.items()
        ),
    ]


def sync_table(
    offline: OfflineStore,
    online: OnlineStore,
    table: FeatureTable,
    services: Mapping[str, tuple[str, ...]],
    rows: pa.Table,
    *,
    horizon: int,
    always_write: bool = False,
    full: bool = False,
    on_written: Callable[[int], None] | None = None,
) -> dict[str, SyncCounts]:
    """Write `rows` (the offline store's winners) where serving needs them; returns the counts
    per DynamoDB table. Ledger entries falling due by `horizon` are rewritten too. `full` (a
    resync) writes every row and forgets the ledger."""
    started = time.time_ns()
    results = {}
    for destination in destinations(online, table, services):
        with unavailable_as_error(f"online table {destination.name!r}"):
            created = destination.ensure()
        ledger = DeferredLedger(offline.root, table, destination.name)
        if full:
            ledger.clear()
        candidates = rows if full else _with_due(offline, table, rows, ledger.due(horizon))
        with unavailable_as_error(f"online table {destination.name!r}"):
            counts, deferred = write_changed(
                destination,
                table,
                candidates,
                horizon=horizon,
                read_stored=not created,
                always_write=always_write or full,
                on_written=on_written if destination.name == online.table_name(table) else None,
            )
        ledger.update(_keys(table, candidates), deferred)
        results[destination.name] = counts
    # A push that landed while this sync wrote may have been overwritten by an older value:
    # pushes are conditional, these writes are not, so re-apply the pushes.
    raced = offline.push_log.raced(table, started)
    if raced is not None:
        apply_pushes(offline, online, table, services, raced, horizon=horizon)
    return results


def apply_pushes(
    offline: OfflineStore,
    online: OnlineStore,
    table: FeatureTable,
    services: Mapping[str, tuple[str, ...]],
    rows: pa.Table,
    *,
    horizon: int | None = None,
) -> tuple[int, int]:
    """Pushed rows online where newer; returns (written, kept newer) for the table's own items.

    A row older than a deferred row of its key (whose item still shows an older event time)
    is not written. Given `horizon` (re-applying pushes that raced a sync, which may already
    have written such a row), those keys get their winning row back."""
    own = (0, 0)
    for destination in destinations(online, table, services):
        ledger = DeferredLedger(offline.root, table, destination.name)
        beaten = pa.array(ledger.beaten(rows), pa.bool_())
        fresh = rows.filter(pc.invert(beaten))
        if isinstance(destination, TableItems):
            written, kept = online.put_if_newer(table, fresh)
            own = (written, kept + rows.num_rows - fresh.num_rows)
        else:
            destination.items.write(table, destination.features(), fresh, newer_only=True)
        lost = rows.filter(beaten)
        if horizon is not None and lost.num_rows:
            winners = offline.latest_rows(table, keys=_keys(table, lost))
            write_changed(destination, table, winners, horizon=horizon, always_write=True)
            ledger.update(_keys(table, winners), [])
    return own


def _keys(table: FeatureTable, rows: pa.Table) -> list[tuple]:
    columns = [rows.column(k).to_pylist() for k in table.keys]
    return list(zip(*columns, strict=True)) if columns and rows.num_rows else []


def _with_due(
    offline: OfflineStore, table: FeatureTable, rows: pa.Table, due: list[tuple]
) -> pa.Table:
    """The window's rows plus the current winner of each due key not among them."""
    if not due:
        return rows
    present = set(_keys(table, rows))
    missing = [key for key in due if key not in present]
    if not missing:
        return rows
    extra = offline.latest_rows(table, keys=missing)
    if rows.num_rows == 0:
        return extra
    return pa.concat_tables([rows, extra.select(rows.column_names).cast(rows.schema)])
