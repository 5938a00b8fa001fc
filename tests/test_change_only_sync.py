"""The change-only sync against a real DynamoDB-compatible server: it skips items whose values
did not change, and still never lets a served value expire early nor goes back in time."""

from __future__ import annotations

import threading
import uuid
from datetime import date, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_assets.kernel.refresh_policy import refresh_interval, rewrite_horizon
from resources.colocated import ColocatedItems
from resources.item_sync import TRUE_EVENT, SyncState, computed_ahead
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from resources.online_sync import apply_pushes, sync_table
from tests.builders import end_of, publish_rows, synthetic_table

FIRST_DAY = date(2026, 3, 1)
ENTITIES = (1, 2, 3)
# Long enough that an unchanged value may be left with its older event time (deferred).
TABLE = synthetic_table(name="user_daily_balance_4d", ttl=timedelta(days=4))


def feature_row(user_id: int, day: date, value: int) -> dict:
    return {
        "user_id": user_id,
        "feature_date": day,
        "event_timestamp": end_of(day),
        "created_at": end_of(day) + timedelta(minutes=5),
        "value": value,
    }


def stores(endpoint: str, tmp_path) -> tuple[OfflineStore, OnlineStore]:
    root = tmp_path / uuid.uuid4().hex[:8]
    offline = OfflineStore(root=str(root / "offline"), staging_root=str(root / "staging"))
    online = OnlineStore(endpoint_url=endpoint, table_prefix=f"c{uuid.uuid4().hex[:8]}_")
    return offline, online


def sync_day(offline: OfflineStore, online: OnlineStore, day: date, now: datetime):
    rows = offline.rows_to_serve(TABLE, [day])
    return sync_table(offline, online, TABLE, {}, rows, horizon=rewrite_horizon(TABLE, now))[
        online.table_name(TABLE)
    ]


def offline_truth(history: dict[int, list[dict]], user_id: int, at: datetime) -> dict | None:
    """What the point-in-time rule serves at `at`: the latest row, if within the ttl."""
    rows = [r for r in history.get(user_id, []) if r["event_timestamp"] <= at]
    if not rows:
        return None
    latest = max(rows, key=lambda r: (r["event_timestamp"], r["created_at"]))
    return {"value": latest["value"]} if latest["event_timestamp"] >= at - TABLE.ttl else None


# Per day and entity: no row, a row with the previous value, or a row with a new value.
ACTIONS = st.lists(
    st.lists(st.sampled_from(["none", "same", "new"]), min_size=3, max_size=3),
    min_size=2,
    max_size=9,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(days=ACTIONS)
def test_change_only_sync_serves_what_the_offline_rule_serves_until_the_next_refresh(
    online_server, tmp_path, days
) -> None:
    offline, online = stores(online_server.endpoint, tmp_path)
    history: dict[int, list[dict]] = {}
    value = dict.fromkeys(ENTITIES, 0)
    interval = refresh_interval(TABLE)
    for n, actions in enumerate(days):
        day = FIRST_DAY + timedelta(days=n)
        rows = []
        for user_id, action in zip(ENTITIES, actions, strict=True):
            if action == "none":
                continue
            if action == "new" or not history.get(user_id):
                value[user_id] += 1
            rows.append(feature_row(user_id, day, value[user_id]))
        if rows:
            publish_rows(offline, TABLE, rows)
        else:
            publish_rows(offline, TABLE, [feature_row(99, day, 0)])  # the day exists
            history.setdefault(99, []).append(feature_row(99, day, 0))
        for row in rows:
            history.setdefault(row["user_id"], []).append(row)
        now = end_of(day) + timedelta(hours=1)
        sync_day(offline, online, day, now)
        # Until the next scheduled refresh, online answers as the offline rule does.
        for at in (now, now + interval / 2, now + interval - timedelta(seconds=1)):
            reads = online.read(TABLE, [{"user_id": u} for u in ENTITIES], ["value"], now=at)
            for user_id, read in zip(ENTITIES, reads, strict=True):
                served = read.values if read.status == "present" else None
                assert served == offline_truth(history, user_id, at), (
                    f"user {user_id} at {at} after syncing {day}: {read}"
                )


def test_unchanged_values_are_skipped_and_counted(online_server, tmp_path) -> None:
    offline, online = stores(online_server.endpoint, tmp_path)
    day1, day2 = FIRST_DAY, FIRST_DAY + timedelta(days=1)
    publish_rows(offline, TABLE, [feature_row(1, day1, 10), feature_row(2, day1, 20)])
    first = sync_day(offline, online, day1, end_of(day1) + timedelta(hours=1))
    assert (first.written, first.skipped) == (2, 0)
    # Re-syncing the same day changes nothing.
    again = sync_day(offline, online, day1, end_of(day1) + timedelta(hours=2))
    assert (again.written, again.unchanged) == (0, 2)
    # Day 2: user 1 unchanged (deferred: its stored expiry is days away), user 2 changed.
    publish_rows(offline, TABLE, [feature_row(1, day2, 10), feature_row(2, day2, 21)])
    second = sync_day(offline, online, day2, end_of(day2) + timedelta(hours=1))
    assert (second.written, second.deferred) == (1, 1)
    state = SyncState(offline.root, TABLE, online.table_name(TABLE))
    assert deferred(state) == [(1,)]
    # Near the stored expiry the deferred item is rewritten, though day 5 has no row of it.
    day5 = FIRST_DAY + timedelta(days=4)
    publish_rows(offline, TABLE, [feature_row(2, day5, 22)])
    later = sync_day(offline, online, day5, end_of(day5) + timedelta(hours=1))
    assert later.written == 2
    assert deferred(state) == []
    item = online.client.get_item(TableName=online.table_name(TABLE), Key={"user_id": {"N": "1"}})[
        "Item"
    ]
    assert item["event_timestamp"]["S"] == "2026-03-03T00:00:00.000000Z"  # day 2's row


def deferred(state: SyncState) -> list[tuple]:
    return [key for key, entry in state.entries().items() if entry[TRUE_EVENT] is not None]


@pytest.mark.parametrize("remembered", [False, True])
def test_the_sync_never_writes_an_older_value_over_a_newer_one(
    online_server, tmp_path, remembered
) -> None:
    offline, online = stores(online_server.endpoint, tmp_path)
    day1 = FIRST_DAY
    publish_rows(offline, TABLE, [feature_row(1, day1, 10)])
    rows = offline.rows_to_serve(TABLE, [day1])  # chosen before the newer value arrives
    newer = pa.Table.from_pylist([feature_row(1, day1 + timedelta(days=3), 99)])
    if remembered:
        # The sync remembers the table; a push lands after the rows were chosen: the pushed
        # key is read online, not taken from memory.
        sync_day(offline, online, day1, end_of(day1) + timedelta(minutes=30))
        offline.push_log.append(TABLE, newer)
        apply_pushes(offline, online, TABLE, {}, newer)
    else:
        online.put_if_newer(TABLE, newer)  # no memory: every key is read
    horizon = rewrite_horizon(TABLE, end_of(day1) + timedelta(hours=1))
    counts = sync_table(offline, online, TABLE, {}, rows, horizon=horizon)
    assert (
        counts[online.table_name(TABLE)].written,
        counts[online.table_name(TABLE)].stored_newer,
    ) == (0, 1)
    read = online.read(TABLE, [{"user_id": 1}], ["value"], now=end_of(day1 + timedelta(days=3)))
    assert read[0].values == {"value": 99}


def test_a_push_older_than_a_deferred_row_is_not_served(online_server, tmp_path) -> None:
    offline, online = stores(online_server.endpoint, tmp_path)
    day1, day2 = FIRST_DAY, FIRST_DAY + timedelta(days=1)
    publish_rows(offline, TABLE, [feature_row(1, day1, 10)])
    sync_day(offline, online, day1, end_of(day1) + timedelta(hours=1))
    publish_rows(offline, TABLE, [feature_row(1, day2, 10)])
    assert sync_day(offline, online, day2, end_of(day2) + timedelta(hours=1)).deferred == 1
    # The stored item still says day 1; a push from mid day 2 is older than the true row.
    late = {**feature_row(1, day2, 55), "event_timestamp": end_of(day1) + timedelta(hours=12)}
    offline.push_log.append(TABLE, pa.Table.from_pylist([late]))
    assert apply_pushes(offline, online, TABLE, {}, pa.Table.from_pylist([late])) == (0, 1)
    read = online.read(TABLE, [{"user_id": 1}], ["value"], now=end_of(day2))
    assert read[0].values == {"value": 10}
    # A newer push is served as always.
    fresh = pa.Table.from_pylist([feature_row(1, day2 + timedelta(days=1), 77)])
    offline.push_log.append(TABLE, fresh)
    assert apply_pushes(offline, online, TABLE, {}, fresh) == (1, 0)


@pytest.mark.parametrize("forced", [False, True])
def test_a_resync_or_forced_sync_writes_everything_and_forgets_deferrals(
    online_server, tmp_path, forced
) -> None:
    offline, online = stores(online_server.endpoint, tmp_path)
    day1, day2 = FIRST_DAY, FIRST_DAY + timedelta(days=1)
    publish_rows(offline, TABLE, [feature_row(1, day1, 10)])
    sync_day(offline, online, day1, end_of(day1) + timedelta(hours=1))
    publish_rows(offline, TABLE, [feature_row(1, day2, 10)])
    horizon = rewrite_horizon(TABLE, end_of(day2) + timedelta(hours=1))
    rows = offline.rows_to_serve(TABLE, [day2])
    if forced:
        counts = sync_table(offline, online, TABLE, {}, rows, horizon=horizon, always_write=True)
    else:
        counts = sync_table(
            offline, online, TABLE, {}, offline.latest_rows(TABLE), horizon=horizon, full=True
        )
    assert counts[online.table_name(TABLE)].written == 1
    assert deferred(SyncState(offline.root, TABLE, online.table_name(TABLE))) == []


def test_an_unchanged_day_costs_no_read_and_no_write_and_a_recreated_table_is_refilled(
    online_server, tmp_path
) -> None:
    offline, online = stores(online_server.endpoint, tmp_path)
    calls: list[str] = []
    online.client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
    )
    day1 = FIRST_DAY
    publish_rows(offline, TABLE, [feature_row(u, day1, u) for u in range(1, 301)])
    sync_day(offline, online, day1, end_of(day1) + timedelta(hours=1))
    calls.clear()
    again = sync_day(offline, online, day1, end_of(day1) + timedelta(hours=2))
    assert (again.written, again.unchanged) == (0, 300)
    assert "BatchGetItem" not in calls and "BatchWriteItem" not in calls, calls
    # The online table is lost (a restarted embedded store) and recreated by someone else:
    # the sync's memory no longer holds, so it reads, finds nothing and writes everything.
    online.delete_table(TABLE)
    online.ensure_table(TABLE)
    refilled = sync_day(offline, online, day1, end_of(day1) + timedelta(hours=3))
    assert refilled.written == 300
    reads = online.read(TABLE, [{"user_id": 7}], ["value"], now=end_of(day1))
    assert reads[0].values == {"value": 7}


def test_a_raced_push_older_than_a_deferred_row_gets_the_winner_back_and_is_read_next_time(
    online_server, tmp_path
) -> None:
    offline, online = stores(online_server.endpoint, tmp_path)
    day1, day2 = FIRST_DAY, FIRST_DAY + timedelta(days=1)
    publish_rows(offline, TABLE, [feature_row(1, day1, 10)])
    sync_day(offline, online, day1, end_of(day1) + timedelta(hours=1))
    publish_rows(offline, TABLE, [feature_row(1, day2, 10)])
    assert sync_day(offline, online, day2, end_of(day2) + timedelta(hours=1)).deferred == 1
    state = SyncState(offline.root, TABLE, online.table_name(TABLE))
    created = online.client.describe_table(TableName=online.table_name(TABLE))["Table"]
    _, stamped = state.load(created["CreationDateTime"].isoformat())
    # A push older than the deferred row reached the store before the deferral was known
    # (it raced the sync): re-applied with the sync's horizon, the key gets its winner back.
    late = {**feature_row(1, day2, 55), "event_timestamp": end_of(day1) + timedelta(hours=12)}
    offline.push_log.append(TABLE, pa.Table.from_pylist([late]))
    online.put_if_newer(TABLE, pa.Table.from_pylist([late]))
    horizon = rewrite_horizon(TABLE, end_of(day2) + timedelta(hours=1))
    apply_pushes(offline, online, TABLE, {}, pa.Table.from_pylist([late]), horizon=horizon)
    read = online.read(TABLE, [{"user_id": 1}], ["value"], now=end_of(day2))
    assert read[0].values == {"value": 10}
    # The state still dates from its sync, so the next sync reads the pushed key online.
    assert state.load(created["CreationDateTime"].isoformat())[1] == stamped


# Two tables sharing a co-located service: each sync puts whole items, the other table's part
# being its winning row, so the service's items answer as the tables' own items do.
OTHER = synthetic_table(name="user_daily_visits_2d", ttl=timedelta(days=2))
SERVICE = "pair"
PAIR = {
    TABLE.name: {SERVICE: ("value",)},
    OTHER.name: {SERVICE: ("value",)},
}
PAIR_COMPANIONS = {
    TABLE.name: {SERVICE: ((OTHER, ("value",)),)},
    OTHER.name: {SERVICE: ((TABLE, ("value",)),)},
}


def sync_pair(offline, online, table, day: date, now: datetime):
    return sync_table(
        offline,
        online,
        table,
        PAIR[table.name],
        offline.rows_to_serve(table, [day]),
        horizon=rewrite_horizon(table, now),
        companions=PAIR_COMPANIONS[table.name],
    )


def colocated_reads(online, at: datetime) -> list[list]:
    items = ColocatedItems(online, SERVICE, TABLE)
    entities = [{"user_id": u} for u in ENTITIES]
    return items.read([(TABLE, ["value"]), (OTHER, ["value"])], entities, now=at)


# Per day: which table syncs first, then per table and entity: no row, same value, new value.
PAIR_DAYS = st.lists(
    st.tuples(
        st.booleans(),
        st.lists(st.sampled_from(["none", "same", "new"]), min_size=6, max_size=6),
    ),
    min_size=2,
    max_size=7,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(days=PAIR_DAYS)
def test_colocated_items_put_whole_answer_as_each_tables_own_items(
    online_server, tmp_path, days
) -> None:
    offline, online = stores(online_server.endpoint, tmp_path)
    value: dict[tuple[str, int], int] = {}
    seen: set[tuple[str, int]] = set()
    for n, (table_first, actions) in enumerate(days):
        day = FIRST_DAY + timedelta(days=n)
        for table, table_actions in ((TABLE, actions[:3]), (OTHER, actions[3:])):
            rows = []
            for user_id, action in zip(ENTITIES, table_actions, strict=True):
                if action == "none":
                    continue
                if action == "new" or (table.name, user_id) not in seen:
                    value[table.name, user_id] = value.get((table.name, user_id), 0) + 1
                seen.add((table.name, user_id))
                rows.append(feature_row(user_id, day, value[table.name, user_id]))
            publish_rows(offline, table, rows or [feature_row(99, day, 0)])
        now = end_of(day) + timedelta(hours=1)
        for table in (TABLE, OTHER) if table_first else (OTHER, TABLE):
            sync_pair(offline, online, table, day, now)
        interval = min(refresh_interval(TABLE), refresh_interval(OTHER))
        for at in (now, now + interval / 2, now + interval - timedelta(seconds=1)):
            together = colocated_reads(online, at)
            for table, reads in zip((TABLE, OTHER), together, strict=True):
                apart = online.read(table, [{"user_id": u} for u in ENTITIES], ["value"], now=at)
                assert [(r.status, r.values) for r in reads] == [
                    (r.status, r.values) for r in apart
                ], f"{table.name} at {at} after day {day}"


def test_a_colocated_item_is_put_once_per_run_and_nothing_is_read_to_merge(
    online_server, tmp_path
) -> None:
    offline, online = stores(online_server.endpoint, tmp_path)
    service_table = ColocatedItems(online, SERVICE, TABLE).name
    calls: list[tuple[str, str]] = []

    def record(model, params, **_) -> None:
        for name in params.get("RequestItems", {}) or [params.get("TableName")]:
            calls.append((model.name, name))

    online.client.meta.events.register("provide-client-params.dynamodb.*", record)
    for n in range(2):
        day = FIRST_DAY + timedelta(days=n)
        for table in (TABLE, OTHER):
            publish_rows(offline, table, [feature_row(u, day, u * 10 + n) for u in range(1, 201)])
        calls.clear()
        now = end_of(day) + timedelta(hours=1)
        first = sync_pair(offline, online, TABLE, day, now)
        second = sync_pair(offline, online, OTHER, day, now)
        # The first sync put each service item whole (both parts); the second found its own
        # part there already, unchanged.
        assert first[service_table].written == 200
        assert (second[service_table].written, second[service_table].unchanged) == (0, 200)
        assert ("BatchGetItem", service_table) not in calls, calls
    reads = colocated_reads(online, end_of(day))
    assert [r.values for r in reads[1][:2]] == [{"value": 11}, {"value": 21}]


def test_the_next_chunk_is_computed_while_this_ones_items_are_put() -> None:
    """`computed_ahead` overlaps a sync's Python work with its puts: chunk 2 is being computed
    before the consumer has taken the last item of chunk 1, and errors reach the consumer."""
    events: list[str] = []
    second_started = threading.Event()

    def chunks():
        for n in range(3):
            events.append(f"compute {n}")
            if n == 1:
                second_started.set()
            yield [f"{n}.{i}" for i in range(3)]

    taken = []
    for item in computed_ahead(chunks()):
        if item == "0.2":
            # Still consuming chunk 0: chunk 1 is computed meanwhile, not after.
            assert second_started.wait(timeout=30), events
        taken.append(item)
    assert taken == [f"{n}.{i}" for n in range(3) for i in range(3)]

    def failing():
        yield ["a"]
        raise ValueError("feature table 't': bad row")

    with pytest.raises(ValueError, match="bad row"):
        list(computed_ahead(failing()))


def test_a_tables_destinations_are_written_at_the_same_time(online_server, tmp_path) -> None:
    """The table's own items and its co-located service's items go to the server from two
    threads: each destination's first put is under way before either's puts end."""
    offline, online = stores(online_server.endpoint, tmp_path)
    day = FIRST_DAY
    for table in (TABLE, OTHER):
        publish_rows(offline, table, [feature_row(u, day, u) for u in range(1, 601)])
    in_flight: dict[str, int] = {}
    both, missed = threading.Event(), threading.Event()
    lock = threading.Lock()
    original = OnlineStore._write_batch

    def write_batch(self, name, items):
        with lock:
            in_flight[name] = in_flight.get(name, 0) + 1
            if len(in_flight) == 2:
                both.set()
        # Without overlap, the first destination waits here in vain (once).
        if not missed.is_set() and not both.wait(timeout=30):
            missed.set()
        try:
            return original(self, name, items)
        finally:
            with lock:
                in_flight[name] -= 1
                if not in_flight[name]:
                    del in_flight[name]

    OnlineStore._write_batch = write_batch
    try:
        counts = sync_pair(offline, online, TABLE, day, end_of(day) + timedelta(hours=1))
    finally:
        OnlineStore._write_batch = original
    assert both.is_set()
    assert sorted(c.written for c in counts.values()) == [600, 600]
