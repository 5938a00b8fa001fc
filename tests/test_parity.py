"""Online/offline parity against a real DynamoDB-compatible server: a synced table is served as
its training set has it; a corrupted item or a stale online table fails, naming the table,
the key and the feature."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, timedelta

import boto3
import dagster as dg
import pytest

from feature_assets.assets.online_sync import build_online_sync_asset, online_asset_key
from feature_assets.assets.parity_check import build_parity_check
from feature_assets.kernel.names import PARITY_CHECK
from feature_assets.kernel.refresh_policy import rewrite_horizon
from feature_assets.monitoring.parity import Mismatch, check_parity, values_agree
from feature_assets.sdk import FeatureStore
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from resources.online_sync import sync_table
from tests.builders import end_of, publish_rows, synthetic_table

TABLE = synthetic_table(
    name="user_daily_score_3d",
    ttl=timedelta(days=3),
    features=("value", "score"),
    feature_types={"score": "float"},
)
FIRST_DAY = date(2026, 4, 1)
DAYS = [FIRST_DAY + timedelta(days=n) for n in range(5)]
USERS = range(1, 31)
# Their latest row is on the first day: long expired when the last day is served.
GONE_QUIET = (1, 2, 3)


def feature_row(user_id: int, day: date, value: int, score: float | None = None) -> dict:
    return {
        "user_id": user_id,
        "feature_date": day,
        "event_timestamp": end_of(day),
        "created_at": end_of(day) + timedelta(minutes=5),
        "value": value,
        # Thirds and tenths do not round-trip through a short decimal: repr must be kept.
        "score": user_id / 3 + day.day / 10 if score is None else score,
    }


def history() -> list[dict]:
    """Five days of rows: most users change every day, a few go quiet after the first day,
    one has a NaN score and one a null value."""
    rows = []
    for n, day in enumerate(DAYS):
        for user_id in USERS:
            if user_id in GONE_QUIET and n > 0:
                continue
            rows.append(feature_row(user_id, day, user_id * 100 + n))
    rows.append(feature_row(40, DAYS[-1], 1, score=math.nan))
    rows.append({**feature_row(41, DAYS[-1], 0), "value": None})
    return rows


@pytest.fixture
def store(online_server, tmp_path) -> FeatureStore:
    offline = OfflineStore(root=str(tmp_path / "offline"), staging_root=str(tmp_path / "staging"))
    online = OnlineStore(
        endpoint_url=online_server.endpoint, table_prefix=f"p{uuid.uuid4().hex[:8]}_"
    )
    return FeatureStore({TABLE.name: TABLE}, offline, online)


def sync(store: FeatureStore, days: list[date], now: datetime) -> None:
    for day in days:
        rows = store.offline.rows_to_serve(TABLE, [day])
        sync_table(
            store.offline, store.online, TABLE, {}, rows, horizon=rewrite_horizon(TABLE, now)
        )


def served_at(day: date) -> datetime:
    return end_of(day) + timedelta(hours=1)


def raw_client(store: FeatureStore):
    """A plain boto3 client, as anyone with access to the table could use."""
    return boto3.client(
        "dynamodb",
        endpoint_url=store.online.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def set_value(store: FeatureStore, user_id: int, feature: str, number: int) -> None:
    raw_client(store).update_item(
        TableName=store.online.table_name(TABLE),
        Key={"user_id": {"N": str(user_id)}},
        UpdateExpression="SET #f = :v",
        ExpressionAttributeNames={"#f": feature},
        ExpressionAttributeValues={":v": {"N": str(number)}},
    )


def synced_history(store: FeatureStore) -> datetime:
    publish_rows(store.offline, TABLE, history())
    now = served_at(DAYS[-1])
    sync(store, DAYS, now)
    return now


def test_synced_table_with_expired_keys_and_many_days_passes(store) -> None:
    now = synced_history(store)

    report = check_parity(store, TABLE, now=now, seed=1)

    assert report.passed, report.summary()
    assert report.sampled == len(USERS) + 2  # every published key
    assert report.mismatches_by_feature == {"value": 0, "score": 0}
    # The sample held keys both paths must leave empty (expired) and ones with five days of rows.
    statuses = store.get_online_features(
        [f"{TABLE.name}:value"], [{"user_id": u} for u in (*GONE_QUIET, 10)], now=now
    ).statuses
    assert [s[TABLE.name] for s in statuses] == ["expired"] * 3 + ["present"]


def test_sample_is_bounded_and_repeatable_with_a_seed(store) -> None:
    now = synced_history(store)

    first = check_parity(store, TABLE, now=now, sample_size=7, seed=3)
    again = check_parity(store, TABLE, now=now, sample_size=7, seed=3)

    assert first.sampled == 7
    assert first == again


def test_corrupted_online_item_fails_naming_table_key_and_feature(store) -> None:
    now = synced_history(store)
    set_value(store, 7, "value", 999)

    report = check_parity(store, TABLE, now=now, seed=1)

    assert not report.passed
    assert report.mismatches == [
        Mismatch(
            key={"user_id": 7}, feature="value", online=999, offline=704, online_status="present"
        )
    ]
    assert report.mismatches_by_feature == {"value": 1, "score": 0}
    assert report.mismatched_keys == 1
    assert f"'{TABLE.name}'" in report.summary()
    assert "{'user_id': 7} value" in report.summary()


def test_stale_online_table_fails_naming_the_changed_keys(store) -> None:
    synced_history(store)
    newer = DAYS[-1] + timedelta(days=1)
    # Published, never synced: two users changed, one sent the same value again.
    publish_rows(
        store.offline,
        TABLE,
        [
            feature_row(5, newer, 1),
            feature_row(8, newer, 2),
            feature_row(9, newer, 904, score=9 / 3 + DAYS[-1].day / 10),
        ],
    )

    report = check_parity(store, TABLE, now=served_at(newer), seed=1)

    assert not report.passed
    assert {(m.key["user_id"], m.feature) for m in report.mismatches} == {
        (5, "value"),
        (5, "score"),
        (8, "value"),
        (8, "score"),
    }
    assert report.mismatched_keys == 2


def test_item_with_event_after_now_is_reported(store) -> None:
    """The online read serves the latest item whatever its event time; the join at `now`
    takes the row before it. A model served that value would disagree with its training set."""
    synced_history(store)
    before_last_day = end_of(DAYS[-2]) + timedelta(hours=1)

    report = check_parity(store, TABLE, now=before_last_day, seed=1)

    # Users 40 and 41 have no row before the last day: online serves theirs, offline nothing.
    assert report.mismatched_keys == len(USERS) - len(GONE_QUIET) + 2
    assert {m.online_status for m in report.mismatches} == {"present"}


@pytest.mark.parametrize(
    ("logical_type", "online", "offline", "agree"),
    [
        ("float", 1 / 3, 1 / 3, True),
        ("float", 0.1 + 0.2, 0.3, True),  # one unit in the last place
        ("float", 0.3000001, 0.3, False),
        ("float", None, math.nan, True),  # the online layout stores NaN as null
        ("float", None, math.inf, False),  # ...and infinity too, which a model sees differently
        ("float", 1.0, None, False),
        ("int", None, None, True),
        ("int", 1, True, False),
        ("str", "1", 1, False),
        ("timestamp", "2026-01-01T12:30:00.123456Z", datetime(2026, 1, 1, 12, 30, 0, 123456), True),
        ("timestamp", "2026-01-01T12:30:00.000000Z", datetime(2026, 1, 1, 12, 30, 1), False),
        ("date", "2026-01-05", date(2026, 1, 5), True),
        ("date", "not a date", date(2026, 1, 5), False),
    ],
)
def test_values_compare_by_logical_type(logical_type, online, offline, agree) -> None:
    assert values_agree(logical_type, online, offline) is agree


def test_parity_check_reports_in_a_dagster_run(store) -> None:
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    publish_rows(store.offline, TABLE, [feature_row(u, yesterday, u) for u in (1, 2, 3)])
    partitions = dg.DailyPartitionsDefinition(start_date=(today - timedelta(days=7)).isoformat())
    sync_asset = build_online_sync_asset(TABLE, partitions, store.online.table_name(TABLE))
    check = build_parity_check(TABLE)
    resources = {"offline_store": store.offline, "online_store": store.online}
    check_key = dg.AssetCheckKey(online_asset_key(TABLE), PARITY_CHECK)

    with dg.instance_for_test() as instance:
        # Not partitioned: it runs once, as of now, in the partitioned run of the sync.
        synced = dg.materialize(
            [sync_asset, check],
            partition_key=yesterday.isoformat(),
            instance=instance,
            resources=resources,
        )
        set_value(store, 2, "value", 77)
        corrupted = dg.materialize(
            [sync_asset, check],
            selection=dg.AssetSelection.checks(check_key),
            instance=instance,
            resources=resources,
            raise_on_error=False,
        )

    (passed,) = synced.get_asset_check_evaluations()
    assert passed.passed
    assert passed.partition is None
    assert {k: passed.metadata[k].value for k in ("sampled", "mismatches", "mismatches/value")} == {
        "sampled": 3,
        "mismatches": 0,
        "mismatches/value": 0,
    }
    (failed,) = corrupted.get_asset_check_evaluations()
    assert corrupted.success  # non-blocking: the run goes on
    assert not failed.passed
    assert failed.severity == dg.AssetCheckSeverity.ERROR
    assert TABLE.name in failed.description and "{'user_id': 2} value" in failed.description
    assert failed.metadata["mismatches"].value == 1
    assert failed.metadata["mismatches/value"].value == 1
    assert failed.metadata["mismatches/score"].value == 0
    (record,) = failed.metadata["sample_mismatches"].value.records
    assert record.data == {
        "key": "user_id=2",
        "feature": "value",
        "online": "77",
        "offline": "2",
        "online_status": "present",
    }
