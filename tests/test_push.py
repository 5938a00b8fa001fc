"""Push: fresh values served at once, never over newer ones, and seen by training sets from
their event time on; bad rows are refused by row and column with nothing written."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from feature_assets.feature_server import make_server
from feature_assets.kernel.errors import PushValidationError
from feature_assets.sdk import FeatureStore
from feature_assets.validation.push import MAX_CLOCK_SKEW
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from tests.builders import publish_rows, s3_offline_store, synthetic_table

TABLE = synthetic_table(
    name="user_daily_clicks_1d",
    ttl=timedelta(days=30),
    features=("clicks", "score"),
    feature_types={"clicks": "int", "score": "float"},
)
# clicks must be >= 0, as a contract check would say.
TABLE = type(TABLE)(
    **{
        **TABLE.__dict__,
        "features": (
            type(TABLE.features[0])("clicks", "int", nullable=False, checks={"ge": 0}),
            TABLE.features[1],
        ),
    }
)
PUBLISHED_AT = datetime(2026, 1, 2)  # the midnight after feature date 2026-01-01
PUSHED_AT = datetime(2026, 1, 2, 15, 30)
NOW = datetime(2026, 1, 3, tzinfo=UTC)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, online_server) -> FeatureStore:
    """The same store on a local offline root and on an S3 one (pushes, syncs and training
    sets read and write through the same layout)."""
    offline = (
        s3_offline_store(tmp_path, online_server.endpoint)
        if request.param == "s3"
        else OfflineStore(root=tmp_path / "offline", staging_root=tmp_path / "staging")
    )
    store = FeatureStore(
        {TABLE.name: TABLE},
        offline,
        OnlineStore(endpoint_url=online_server.endpoint, table_prefix=f"t{uuid.uuid4().hex[:8]}_"),
    )
    publish_rows(
        store.offline,
        TABLE,
        [
            {
                "user_id": user,
                "feature_date": date(2026, 1, 1),
                "event_timestamp": PUBLISHED_AT,
                "created_at": PUBLISHED_AT,
                "clicks": 10 * user,
                "score": 0.5,
            }
            for user in (1, 2)
        ],
    )
    store.online.write_rows(TABLE, store.offline.latest_rows(TABLE))
    return store


def online(store: FeatureStore, user: int) -> tuple[int | None, str]:
    read = store.get_online_features([f"{TABLE.name}:clicks"], [{"user_id": user}], now=NOW)
    return read.rows[0]["clicks"], read.statuses[0][TABLE.name]


def trained(store: FeatureStore, user: int, at: datetime) -> int | None:
    frame = pa.table({"user_id": [user], "event_timestamp": [at]})
    return (
        store.get_historical_features(frame, [f"{TABLE.name}:clicks"])
        .to_arrow()["clicks"][0]
        .as_py()
    )


def test_a_pushed_value_is_served_at_once_and_a_late_one_changes_nothing(store) -> None:
    result = store.push(
        TABLE.name, [{"user_id": 1, "event_timestamp": PUSHED_AT, "clicks": 99, "score": 1.0}]
    )
    assert (result.rows, result.written, result.kept_newer) == (1, 1, 0)
    assert online(store, 1) == (99, "present")
    late = store.push(
        TABLE.name,
        [
            {
                "user_id": 1,
                "event_timestamp": PUSHED_AT - timedelta(hours=1),
                "clicks": 5,
                "score": 1.0,
            }
        ],
    )
    assert (late.written, late.kept_newer) == (0, 1)
    assert online(store, 1) == (99, "present")
    assert online(store, 2) == (20, "present")  # untouched
    # A push also reaches keys the store never had; ISO strings with a zone are UTC.
    store.push(
        TABLE.name,
        [{"user_id": 7, "event_timestamp": "2026-01-02T16:30:00+01:00", "clicks": 3, "score": 1.0}],
    )
    assert online(store, 7) == (3, "present")
    assert trained(store, 7, datetime(2026, 1, 2, 15, 30)) == 3
    assert trained(store, 7, datetime(2026, 1, 2, 15, 29, 59)) is None


def test_a_training_set_sees_a_push_from_its_event_time_on(store) -> None:
    store.push(
        TABLE.name, [{"user_id": 1, "event_timestamp": PUSHED_AT, "clicks": 99, "score": 1.0}]
    )
    assert trained(store, 1, PUSHED_AT + timedelta(seconds=1)) == 99
    assert trained(store, 1, PUSHED_AT) == 99  # inclusive, as for published rows
    assert trained(store, 1, PUSHED_AT - timedelta(microseconds=1)) == 10
    assert trained(store, 1, PUBLISHED_AT - timedelta(microseconds=1)) is None
    # A late push (older than the published value) loses offline as it does online.
    store.push(
        TABLE.name,
        [
            {
                "user_id": 2,
                "event_timestamp": PUBLISHED_AT - timedelta(hours=1),
                "clicks": 1,
                "score": None,
            }
        ],
    )
    assert trained(store, 2, PUBLISHED_AT) == 20
    assert trained(store, 2, PUBLISHED_AT - timedelta(minutes=1)) == 1


def test_the_sync_never_serves_a_published_row_a_push_beats_and_resync_keeps_pushes(store) -> None:
    store.push(
        TABLE.name, [{"user_id": 1, "event_timestamp": PUSHED_AT, "clicks": 99, "score": 1.0}]
    )
    served = store.offline.rows_to_serve(TABLE, [date(2026, 1, 1)])
    assert served["user_id"].to_pylist() == [2]
    latest = {r["user_id"]: r["clicks"] for r in store.offline.latest_rows(TABLE).to_pylist()}
    assert latest == {1: 99, 2: 20}


def test_a_push_raced_by_a_sync_wins_again_when_the_sync_reapplies_it(store) -> None:
    """A sync reads the offline store, a push lands, then the sync writes its older row
    unconditionally over it; re-applying the pushes that began around the sync restores it."""
    import time

    sync_started = time.time_ns()
    older = store.offline.latest_rows(TABLE)  # read before the push
    store.push(
        TABLE.name, [{"user_id": 1, "event_timestamp": PUSHED_AT, "clicks": 99, "score": 1.0}]
    )
    store.online.write_rows(TABLE, older)
    assert online(store, 1) == (10, "present")  # the race, as it happens
    raced = store.offline.push_log.raced(TABLE, sync_started)
    assert raced is not None and raced["clicks"].to_pylist() == [99]
    store.online.put_if_newer(TABLE, raced)
    assert online(store, 1) == (99, "present")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [
                {"user_id": 1, "event_timestamp": PUSHED_AT, "clicks": 1, "score": None},
                {"user_id": 2, "event_timestamp": PUSHED_AT, "clicks": -4, "score": 2.0},
            ],
            "row 1, column 'clicks': greater_than_or_equal_to(0) failed (value -4)",
        ),
        (
            [{"user_id": 1, "event_timestamp": "yesterday", "clicks": 1, "score": None}],
            "row 0, column 'event_timestamp': 'yesterday' is not a time",
        ),
        (
            [{"user_id": 1, "event_timestamp": PUSHED_AT, "clicks": None, "score": 1.0}],
            "row 0, column 'clicks': not_nullable failed",
        ),
        (
            [
                {
                    "user_id": 1,
                    "event_timestamp": PUSHED_AT,
                    "clicks": 1,
                    "score": 1.0,
                    "colour": "red",
                }
            ],
            "column 'colour': is not a column of the table",
        ),
        (
            [
                {"user_id": 1, "event_timestamp": PUSHED_AT, "clicks": 1, "score": None},
                {"user_id": 1, "event_timestamp": PUSHED_AT, "clicks": 2, "score": 1.0},
            ],
            "duplicate keys and event time",
        ),
        (
            [
                {
                    "user_id": 1,
                    "event_timestamp": datetime.now(UTC) + timedelta(days=1),
                    "clicks": 1,
                    "score": 1.0,
                }
            ],
            "row 0, column 'event_timestamp'",
        ),
    ],
    ids=["check", "time", "null", "unknown column", "duplicate", "future"],
)
def test_bad_rows_are_refused_by_row_and_column_and_nothing_is_written(
    store, rows, message
) -> None:
    with pytest.raises(PushValidationError) as raised:
        store.push(TABLE.name, rows)
    assert message in str(raised.value)
    assert f"push to feature table {TABLE.name!r}" in str(raised.value)
    assert store.offline.push_log.files(TABLE) == []
    assert online(store, 1) == (10, "present")


def test_push_over_http(store) -> None:
    server = make_server(store, "127.0.0.1", 0, token="t")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/push"

    def post(body: dict) -> tuple[int, dict]:
        request = urllib.request.Request(url, json.dumps(body).encode(), method="POST")
        request.add_header("Authorization", "Bearer t")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    try:
        good = {"user_id": 1, "event_timestamp": "2026-01-02T15:30:00Z", "clicks": 99, "score": 1.0}
        status, body = post({"table": TABLE.name, "rows": [good]})
        assert (status, body["written"], body["kept_newer"]) == (200, 1, 0)
        assert online(store, 1) == (99, "present")
        status, body = post(
            {"table": TABLE.name, "rows": [good, {**good, "user_id": 2, "clicks": -1}]}
        )
        assert status == 400 and "row 1, column 'clicks'" in body["error"]
        assert online(store, 2) == (20, "present")
        status, body = post({"table": "nope_daily_x_1d", "rows": [good]})
        assert status == 400 and "unknown feature table" in body["error"]
    finally:
        server.shutdown()
        server.server_close()


def test_a_push_in_its_window_makes_a_saved_training_set_refuse_to_rebuild(store, tmp_path) -> None:
    from feature_assets.kernel.errors import TrainingSetDriftError

    entities = pa.table({"user_id": [1], "event_timestamp": [PUSHED_AT + timedelta(hours=1)]})
    store.save_training_set(tmp_path / "set", entities, [f"{TABLE.name}:clicks"])
    store.rebuild_training_set(tmp_path / "set", tmp_path / "again.parquet")  # unchanged: fine
    store.push(
        TABLE.name, [{"user_id": 1, "event_timestamp": PUSHED_AT, "clicks": 99, "score": 1.0}]
    )
    with pytest.raises(TrainingSetDriftError, match="push"):
        store.rebuild_training_set(tmp_path / "set", tmp_path / "again.parquet")


def test_a_push_a_little_ahead_of_our_clock_is_taken_a_day_ahead_is_not(store) -> None:
    now = datetime.now(UTC)
    skewed = now + MAX_CLOCK_SKEW - timedelta(minutes=1)
    result = store.push(
        TABLE.name, [{"user_id": 1, "event_timestamp": skewed, "clicks": 42, "score": 1.0}]
    )
    assert result.written == 1 and online(store, 1) == (42, "present")
    with pytest.raises(PushValidationError, match="after the time of the push"):
        store.push(
            TABLE.name,
            [{"user_id": 2, "event_timestamp": now + timedelta(days=1), "clicks": 7, "score": 1.0}],
        )
    assert online(store, 2) == (20, "present")
