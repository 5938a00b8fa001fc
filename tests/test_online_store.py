"""The online store against a real DynamoDB-compatible server over HTTP on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from datetime import date, datetime, timedelta

import boto3
import pandas as pd
import pyarrow as pa
import pytest

from feature_assets.kernel.contract import FeatureColumn
from feature_assets.kernel.errors import EntityInputError, PartitionNotPublishedError
from feature_assets.sdk import FeatureStore
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from resources.settings import PROJECT_ROOT
from tests.builders import end_of, publish_rows, synthetic_table

T0 = datetime(2026, 1, 2)


@pytest.fixture
def online(online_server) -> OnlineStore:
    return OnlineStore(
        endpoint_url=online_server.endpoint, table_prefix=f"t{uuid.uuid4().hex[:8]}_"
    )


@pytest.fixture
def offline(tmp_path) -> OfflineStore:
    return OfflineStore(root=str(tmp_path / "offline"), staging_root=str(tmp_path / "staging"))


def values(reads) -> list[dict | None]:
    """What a caller sees: the values of present items, None for missing or expired ones."""
    return [read.values if read.status == "present" else None for read in reads]


def row(user_id: int, day: date, value: int, created_hour: int = 1) -> dict:
    return {
        "user_id": user_id,
        "feature_date": day,
        "event_timestamp": end_of(day),
        "created_at": T0 + timedelta(hours=created_hour),
        "value": value,
    }


def test_items_are_native_attributes_readable_with_plain_boto3(
    online, offline, online_server
) -> None:
    table = replace(
        synthetic_table(ttl=timedelta(days=30)),
        features=(
            FeatureColumn("value", "int"),
            FeatureColumn("ratio", "float"),
            FeatureColumn("label", "str"),
        ),
    )
    online.ensure_table(table)
    rows = [
        {**row(1, date(2026, 1, 1), 5), "ratio": 0.1 + 0.2, "label": "gold"},
        {**row(2, date(2026, 1, 1), 6), "ratio": None, "label": None},
    ]
    online.write_rows(table, pa.Table.from_pylist(rows))
    client = boto3.client(
        "dynamodb",
        endpoint_url=online_server.endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    item = client.get_item(TableName=online.table_name(table), Key={"user_id": {"N": "1"}})["Item"]
    assert item["value"] == {"N": "5"}
    assert float(item["ratio"]["N"]) == 0.1 + 0.2  # exact round trip of the double
    assert item["label"] == {"S": "gold"}
    assert item["event_timestamp"] == {"S": "2026-01-02T00:00:00.000000Z"}
    assert int(item["expires_at"]["N"]) == int(
        (datetime(2026, 2, 1) - datetime(1970, 1, 1)).total_seconds()
    )
    ttl = client.describe_time_to_live(TableName=online.table_name(table))["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at" and ttl["TimeToLiveStatus"] == "ENABLED"
    nulls = client.get_item(TableName=online.table_name(table), Key={"user_id": {"N": "2"}})["Item"]
    assert nulls["ratio"] == {"NULL": True}
    [first, second] = values(
        online.read(table, [{"user_id": 1}, {"user_id": 2}], ["value", "ratio", "label"], now=T0)
    )
    assert first == {"value": 5, "ratio": 0.1 + 0.2, "label": "gold"}
    assert type(first["value"]) is int and type(first["ratio"]) is float
    assert second == {"value": 6, "ratio": None, "label": None}


def test_expired_item_is_returned_as_missing_although_server_still_holds_it(
    online, offline
) -> None:
    table = synthetic_table(ttl=timedelta(days=2))
    publish_rows(offline, table, [row(1, date(2026, 1, 1), 5)])  # event time 2026-01-02 00:00
    online.write_rows(table, offline.latest_rows(table))
    edge = datetime(2026, 1, 4)  # event time + ttl: still valid, as in the training-set join
    [valid] = online.read(table, [{"user_id": 1}], ["value"], now=edge)
    assert valid.status == "present" and valid.values == {"value": 5}
    [expired] = online.read(
        table, [{"user_id": 1}], ["value"], now=edge + timedelta(microseconds=1)
    )
    assert expired.status == "expired" and expired.values == {"value": None}
    raw = online.client.get_item(TableName=online.table_name(table), Key={"user_id": {"N": "1"}})
    assert "Item" in raw  # the server has not deleted it; the read applied the TTL


def test_missing_entities_come_back_missing_in_request_order(online, offline) -> None:
    table = synthetic_table(ttl=None)
    publish_rows(offline, table, [row(u, date(2026, 1, 1), u * 10) for u in range(1, 251)])
    online.write_rows(table, offline.latest_rows(table))
    wanted = [{"user_id": u} for u in (250, 9999, 3, 3, 120)] + [
        {"user_id": u} for u in range(1, 200)
    ]
    reads = online.read(table, wanted, ["value"], now=T0)  # more than one BatchGetItem of 100
    assert values(reads)[:5] == [
        {"value": 2500},
        None,
        {"value": 30},
        {"value": 30},
        {"value": 1200},
    ]
    assert reads[1].status == "not_found"
    assert [r["value"] for r in values(reads)[5:]] == [u * 10 for u in range(1, 200)]


def test_wrong_key_type_and_missing_key_are_clear_errors(online) -> None:
    table = synthetic_table()
    with pytest.raises(EntityInputError, match="key 'user_id' must be an integer, got '7'"):
        online.read(table, [{"user_id": "7"}], ["value"])
    with pytest.raises(EntityInputError, match="has no key 'user_id'"):
        online.read(table, [{"customer_id": 7}], ["value"])


def test_backfill_of_old_partition_never_overwrites_newer_online_value(online, offline) -> None:
    table = synthetic_table(ttl=None)
    publish_rows(offline, table, [row(1, date(2026, 1, 1), 100), row(2, date(2026, 1, 1), 200)])
    publish_rows(offline, table, [row(1, date(2026, 1, 2), 101)])
    online.write_rows(table, offline.rows_to_serve(table, [date(2026, 1, 2)]))
    # Re-syncing the older day writes only entities whose newest value it holds (user 2).
    old = offline.rows_to_serve(table, [date(2026, 1, 1)])
    assert old.column("user_id").to_pylist() == [2]
    online.write_rows(table, old)
    assert values(online.read(table, [{"user_id": 1}, {"user_id": 2}], ["value"])) == [
        {"value": 101},
        {"value": 200},
    ]
    # force is the explicit way to write a correction over a newer value
    online.write_rows(table, offline.rows_to_serve(table, [date(2026, 1, 1)], force=True))
    assert values(online.read(table, [{"user_id": 1}], ["value"])) == [{"value": 100}]


def test_online_and_offline_pick_the_same_row_on_a_tie(online, offline) -> None:
    table = synthetic_table(ttl=None)
    # Same key and event time in two partitions (midnight belongs to either day); created ties too.
    tie = {"event_timestamp": datetime(2026, 1, 2), "created_at": T0}
    publish_rows(
        offline, table, [{"user_id": 1, "feature_date": date(2026, 1, 1), "value": 1, **tie}]
    )
    publish_rows(
        offline, table, [{"user_id": 1, "feature_date": date(2026, 1, 2), "value": 2, **tie}]
    )
    online.write_rows(table, offline.latest_rows(table))
    sdk = FeatureStore({table.name: table}, offline, online)
    training = sdk.get_historical_features(
        pd.DataFrame({"user_id": [1], "event_timestamp": [datetime(2026, 1, 3)]}),
        [f"{table.name}:value"],
    ).to_pandas()
    online_value = sdk.get_online_features([f"{table.name}:value"], [{"user_id": 1}]).to_dict()[
        "value"
    ]
    assert online_value == [int(training["value"][0])] == [2]


def test_unpublished_partition_is_refused_by_the_sync(offline) -> None:
    table = synthetic_table()
    with pytest.raises(
        PartitionNotPublishedError, match="partition\\(s\\) 2026-01-05 are not published"
    ):
        offline.rows_to_serve(table, [date(2026, 1, 5)])


def test_three_keys_become_one_documented_string_key(online, offline, online_server) -> None:
    table = synthetic_table(
        name="user_daily_fx_spend_30d",
        keys=("user_id", "merchant_id", "currency"),
        key_types={"user_id": "int", "merchant_id": "int", "currency": "str"},
        ttl=None,
    )
    online.ensure_table(table)
    rows = [
        {
            "user_id": 1,
            "merchant_id": 7,
            "currency": "EUR",
            "feature_date": date(2026, 1, 1),
            "event_timestamp": datetime(2026, 1, 2),
            "created_at": T0,
            "value": 5,
        }
    ]
    online.write_rows(table, pa.Table.from_pylist(rows))
    item = online.client.get_item(
        TableName=online.table_name(table), Key={"entity_key": {"S": "1#7#EUR"}}
    )["Item"]
    assert item["currency"] == {"S": "EUR"} and item["value"] == {"N": "5"}
    reads = online.read(
        table,
        [
            {"user_id": 1, "merchant_id": 7, "currency": "EUR"},
            {"user_id": 1, "merchant_id": 7, "currency": "USD"},
        ],
        ["value"],
    )
    assert values(reads) == [{"value": 5}, None]


def test_one_entity_from_three_tables_is_one_batch_get(online, offline) -> None:
    tables = [synthetic_table(name=f"user_daily_t{i}_7d", ttl=None) for i in range(3)]
    for i, table in enumerate(tables):
        publish_rows(offline, table, [row(1, date(2026, 1, 1), 10 + i)])
        online.write_rows(table, offline.latest_rows(table))
    calls = []
    original = online.client.batch_get_item
    online.client.batch_get_item = lambda **kw: calls.append(kw) or original(**kw)
    sdk = FeatureStore({t.name: t for t in tables}, offline, online)
    result = sdk.get_online_features(
        [f"{t.name}:value" for t in tables], [{"user_id": 1}], full_feature_names=True
    )
    assert len(calls) == 1 and len(calls[0]["RequestItems"]) == 3
    assert result.rows == [
        {"user_id": 1, **{f"{t.name}__value": 10 + i for i, t in enumerate(tables)}}
    ]
    assert result.statuses == [{t.name: "present" for t in tables}]


def test_sync_killed_half_way_then_rerun_loses_nothing_and_never_goes_back(
    online, offline, tmp_path
) -> None:
    table = synthetic_table(ttl=None)
    users = range(1, 12_001)
    publish_rows(offline, table, [row(u, date(2026, 1, 1), 1) for u in users])
    publish_rows(offline, table, [row(u, date(2026, 1, 2), 2) for u in users if u % 3 == 0])
    online.write_rows(table, offline.rows_to_serve(table, [date(2026, 1, 2)]))  # newer values first
    script = f"""
from tests.builders import synthetic_table
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
table = synthetic_table(ttl=None)
offline = OfflineStore(root={offline.root!r}, staging_root={offline.staging_root!r})
online = OnlineStore(endpoint_url={online.endpoint_url!r}, table_prefix={online.table_prefix!r},
                     write_concurrency=1)
online.write_rows(table, offline.rows_to_serve(table, [__import__("datetime").date(2026, 1, 1)]))
"""
    name = online.table_name(table)

    def count() -> int:
        return online.client.scan(TableName=name, Select="COUNT")["Count"]

    process = subprocess.Popen([sys.executable, "-c", script], cwd=PROJECT_ROOT)
    try:
        while count() < 4_000 + 500 and process.poll() is None:
            time.sleep(0.2)
        process.kill()
    finally:
        process.wait()
    assert 4_000 < count() < 12_000, "the sync was not killed half-way"
    online.write_rows(table, offline.rows_to_serve(table, [date(2026, 1, 1)]))  # the re-run
    reads = online.read(table, [{"user_id": u} for u in users], ["value"])
    assert [r.values["value"] for r in reads] == [2 if u % 3 == 0 else 1 for u in users]


class FlakyClient:
    """Wraps a real client; the first batch call of each kind answers 'unprocessed' for everything."""

    def __init__(self, client) -> None:
        self.client, self.calls = client, {"get": 0, "write": 0}
        self.lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.client, name)

    def batch_get_item(self, RequestItems):  # noqa: N803 - boto3's parameter name
        with self.lock:
            self.calls["get"] += 1
            first = self.calls["get"] == 1
        if first:
            return {"Responses": {}, "UnprocessedKeys": RequestItems}
        return self.client.batch_get_item(RequestItems=RequestItems)

    def batch_write_item(self, RequestItems):  # noqa: N803
        with self.lock:
            self.calls["write"] += 1
            first = self.calls["write"] == 1
        if first:
            return {"UnprocessedItems": RequestItems}
        return self.client.batch_write_item(RequestItems=RequestItems)


def test_unprocessed_keys_and_items_are_retried(online, offline) -> None:
    table = synthetic_table(ttl=None)
    publish_rows(offline, table, [row(u, date(2026, 1, 1), u) for u in (1, 2, 3)])
    online.ensure_table(table)
    flaky = FlakyClient(online.client)
    online = OnlineStore(table_prefix=online.table_prefix, client=flaky)
    assert online.write_rows(table, offline.latest_rows(table)) == 3
    assert values(online.read(table, [{"user_id": u} for u in (1, 2, 3)], ["value"])) == [
        {"value": 1},
        {"value": 2},
        {"value": 3},
    ]
    # One request each, refused once, then retried: the values above prove the retry completed.
    assert flaky.calls == {"get": 2, "write": 2}
