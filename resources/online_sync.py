"""One online sync of a table: its own items and its parts of co-located services, each
written change-only (`resources.item_sync`), then the pushes that raced it re-applied."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc

from feature_assets.kernel.contract import FeatureTable
from resources.colocated import ColocatedItems, ColocatedPart, Companions
from resources.item_sync import Destination, SyncCounts, SyncState, TableItems, write_changed
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore, unavailable_as_error
from resources.push_log import RACE_MARGIN_NS

# Per co-located service: its other tables and the features of each it holds.
ServiceCompanions = Mapping[str, Sequence[tuple[FeatureTable, tuple[str, ...]]]]


def destinations(
    online: OnlineStore,
    table: FeatureTable,
    services: Mapping[str, tuple[str, ...]],
    companions: ServiceCompanions | None = None,
    offline: OfflineStore | None = None,
    own_items: bool = True,
) -> list[Destination]:
    """The table's own items first (unless `own_items` is False: written elsewhere), then its
    part of each co-located service's items (put whole with the other tables' winning rows
    when `companions` names them)."""
    return [
        *([TableItems(online, table)] if own_items else []),
        *(
            ColocatedItems(online, service, table).destination(
                table,
                features,
                Companions(offline, tuple(companions[service]))
                if companions is not None and service in companions
                else None,
            )
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
    companions: ServiceCompanions | None = None,
    own_items: bool = True,
) -> dict[str, SyncCounts]:
    """Write `rows` (the offline store's winners) where serving needs them; returns the counts
    per DynamoDB table. Deferred items falling due by `horizon` are rewritten too. `full` (a
    resync) writes every row and remembers only what it wrote. `companions`: the other tables
    of each co-located service, whose parts of the items put are their winning rows (without
    it, the items are read to keep the other parts as stored). `own_items` False: the table's
    own items are written elsewhere (from Spark), its services' parts here."""
    started = time.time_ns()

    def sync(destination: Destination) -> SyncCounts:
        with unavailable_as_error(f"online table {destination.name!r}"):
            empty = destination.ensure()
            table_created = destination.creation_time()
        state = SyncState(offline.state_root, table, destination.name)
        remembered, since_ns = (None, 0) if full else state.load(table_created)
        candidates, read_keys = rows, frozenset()
        if remembered is not None:
            candidates = _with_due(offline, table, rows, SyncState.due(remembered, horizon))
            # Pushes write online directly: what a push since may have changed is read.
            pushed = offline.push_log.rows_since(table, since_ns - RACE_MARGIN_NS)
            read_keys = frozenset(_keys(table, pushed)) if pushed is not None else frozenset()
        colocated = isinstance(destination, ColocatedPart) and destination.companions is not None
        if colocated:
            destination.expect(_keys(table, candidates))
        with unavailable_as_error(f"online table {destination.name!r}"):
            counts, now_stored = write_changed(
                destination,
                table,
                candidates,
                horizon=horizon,
                remembered=remembered,
                read_keys=read_keys,
                empty=empty,
                always_write=always_write or full,
                on_written=on_written if destination.name == online.table_name(table) else None,
            )
        state.save({**(remembered or {}), **now_stored}, table_created, started)
        if colocated:
            _remember_companions(offline, destination, table_created, started, empty)
        return counts

    # Each DynamoDB table is written by its own thread: the server works on several tables
    # at once (DynamoDB Local ~1.4x the items/s of one table at a time on 2 cores).
    targets = destinations(online, table, services, companions, offline, own_items)
    with ThreadPoolExecutor(max_workers=max(len(targets), 1)) as pool:
        done = {d.name: pool.submit(sync, d) for d in targets}
    results = {name: future.result() for name, future in done.items()}
    # A push that landed while this sync wrote may have been overwritten by an older value:
    # pushes are conditional, these writes are not, so re-apply the pushes (of the tables
    # whose parts of co-located items this sync put, too).
    raced = offline.push_log.raced(table, started)
    if raced is not None:
        apply_pushes(offline, online, table, services, raced, horizon=horizon)
    for service, others in (companions or {}).items():
        if service not in services:
            continue
        for other, features in others:
            raced = offline.push_log.raced(other, started)
            if raced is not None:
                apply_pushes(offline, online, other, {service: features}, raced, horizon=horizon)
    return results


def _remember_companions(
    offline: OfflineStore, destination: ColocatedPart, table_created: str, started: int, empty: bool
) -> None:
    """The other tables' parts this sync put are now what is stored for them: their next sync
    finds them unchanged. A companion without a trusted memory of the service's table gets one
    only when the table was created by this sync (every item in it was put here)."""
    for other, _ in destination.companions.tables:
        entries = destination.companion_entries.get(other.name)
        if not entries:
            continue
        state = SyncState(offline.state_root, other, destination.name)
        remembered, _ = state.load(table_created)
        if remembered is not None:
            state.update(entries)
        elif empty:
            state.save(entries, table_created, started)


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
        state = SyncState(offline.state_root, table, destination.name)
        beaten = pa.array(state.beaten(rows), pa.bool_())
        fresh = rows.filter(pc.invert(beaten))
        if isinstance(destination, TableItems):
            written, kept = online.put_if_newer(table, fresh)
            own = (written, kept + rows.num_rows - fresh.num_rows)
        else:
            destination.items.write(table, destination.features(), fresh, newer_only=True)
        lost = rows.filter(beaten)
        if horizon is not None and lost.num_rows:
            winners = offline.latest_rows(table, keys=_keys(table, lost))
            _, now_stored = write_changed(
                destination, table, winners, horizon=horizon, always_write=True
            )
            state.update(now_stored)
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
