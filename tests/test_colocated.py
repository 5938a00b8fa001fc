"""Co-located services: one item per entity, one round trip, the same answer as reading the
tables one by one (TTL per table, missing per table, newer-wins)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from feature_assets.kernel.contract import FeatureService
from feature_assets.kernel.errors import FeatureDefinitionError
from feature_assets.kernel.manifest import load_contract
from feature_assets.sdk import FeatureStore
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from tests.builders import feature_table_node, publish_rows, synthetic_table

SHORT = synthetic_table(name="user_daily_logins_1d", ttl=timedelta(days=2), features=("logins",))
LONG = synthetic_table(
    name="user_daily_spend_30d",
    ttl=timedelta(days=40),
    features=("spend", "orders"),
    feature_types={"spend": "float"},
)
SERVICE = FeatureService(
    "risk",
    (f"{SHORT.name}:logins", f"{LONG.name}:spend", f"{LONG.name}:orders"),
    online_colocated=True,
)
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


def row(user: int, day: date, **features) -> dict:
    stamp = datetime.combine(day + timedelta(days=1), datetime.min.time())
    return {
        "user_id": user,
        "feature_date": day,
        "event_timestamp": stamp,
        "created_at": stamp,
        **features,
    }


def sync(store: FeatureStore) -> None:
    """What the online sync of each table does: its own items, then its part of the service's."""
    for table in (SHORT, LONG):
        rows = store.offline.latest_rows(table)
        store.online.write_rows(table, rows)
        features = [f.split(":")[1] for f in SERVICE.features if f.startswith(table.name)]
        store.colocated(SERVICE.name).write(table, features, rows, newer_only=True)


@pytest.fixture
def store(tmp_path, online_server) -> FeatureStore:
    return FeatureStore(
        {SHORT.name: SHORT, LONG.name: LONG},
        OfflineStore(root=tmp_path / "offline", staging_root=tmp_path / "staging"),
        OnlineStore(endpoint_url=online_server.endpoint, table_prefix=f"t{uuid.uuid4().hex[:8]}_"),
        {SERVICE.name: SERVICE},
    )


def count_batch_gets(store: FeatureStore) -> list[str]:
    calls: list[str] = []
    store.online.client.meta.events.register(
        "before-call.dynamodb.BatchGetItem", lambda **kw: calls.append("BatchGetItem")
    )
    return calls


@pytest.mark.parametrize("seed", range(4))
def test_the_colocated_read_equals_reading_table_by_table(store, seed) -> None:
    rng = random.Random(seed)
    fresh, stale = date(2026, 3, 9), date(2026, 3, 1)  # stale: past SHORT's ttl, within LONG's
    short_rows, long_rows = [], []
    for user in range(1, 41):
        kind = rng.choice(["both", "short only", "long only", "short expired", "neither"])
        if kind in ("both", "short only"):
            short_rows.append(row(user, fresh, logins=rng.randint(0, 9)))
        if kind == "short expired":
            short_rows.append(row(user, stale, logins=rng.randint(0, 9)))
        if kind in ("both", "long only", "short expired"):
            spend = None if rng.random() < 0.2 else round(rng.uniform(0, 500), 2)
            long_rows.append(row(user, fresh, spend=spend, orders=rng.randint(0, 5)))
    # The cases the issue names, whatever the draw: expired in one table only, missing in one.
    short_rows.append(row(41, stale, logins=1))
    long_rows.append(row(41, fresh, spend=1.0, orders=1))
    long_rows.append(row(42, fresh, spend=2.0, orders=2))
    publish_rows(store.offline, SHORT, short_rows)
    publish_rows(store.offline, LONG, long_rows)
    sync(store)
    entities = [{"user_id": u} for u in rng.sample(range(1, 45), 30)] + [
        {"user_id": 41},
        {"user_id": 42},
    ]

    calls = count_batch_gets(store)
    together = store.get_online_features("risk", entities, now=NOW)
    assert calls == ["BatchGetItem"]  # one round trip for all entities and both tables
    one_by_one = store.get_online_features(list(SERVICE.features), entities, now=NOW)
    assert together.rows == one_by_one.rows
    assert together.statuses == one_by_one.statuses
    by_user = {e["user_id"]: s for e, s in zip(entities, together.statuses, strict=True)}
    assert by_user[41] == {SHORT.name: "expired", LONG.name: "present"}
    assert by_user[42] == {SHORT.name: "not_found", LONG.name: "present"}


def test_colocated_parts_never_go_back_in_time(store) -> None:
    publish_rows(store.offline, SHORT, [row(1, date(2026, 3, 9), logins=5)])
    publish_rows(store.offline, LONG, [row(1, date(2026, 3, 9), spend=1.0, orders=1)])
    sync(store)
    older = store.offline.latest_rows(SHORT).to_pylist()
    older[0].update(event_timestamp=datetime(2026, 3, 5), logins=0)
    import pyarrow as pa

    items = store.colocated("risk")
    written, kept = items.write(SHORT, ["logins"], pa.Table.from_pylist(older), newer_only=True)
    assert (written, kept) == (0, 1)
    assert store.get_online_features("risk", [{"user_id": 1}], now=NOW).rows[0]["logins"] == 5
    # A push of a newer value reaches the co-located item too.
    store.push(
        SHORT.name, [{"user_id": 1, "event_timestamp": datetime(2026, 3, 10, 9), "logins": 7}]
    )
    assert store.get_online_features("risk", [{"user_id": 1}], now=NOW).rows[0] == {
        "user_id": 1,
        "logins": 7,
        "spend": 1.0,
        "orders": 1,
    }


def test_a_colocated_service_over_tables_with_different_keys_fails_at_load() -> None:
    manifest = {
        "nodes": {
            "model.a": feature_table_node("user_daily_a_1d", ["user_id"], {"x": "bigint"}),
            "model.b": feature_table_node(
                "user_daily_b_1d", ["user_id", "merchant_id"], {"x": "bigint"}
            ),
        },
        "exposures": {
            "exposure.s": {
                "name": "s",
                "original_file_path": "models/features/feature_services.yml",
                "meta": {
                    "feature_service": {
                        "online_colocated": True,
                        "full_feature_names": True,
                        "features": ["user_daily_a_1d:x", "user_daily_b_1d:x"],
                    }
                },
            }
        },
    }
    with pytest.raises(FeatureDefinitionError) as raised:
        load_contract(manifest)
    assert (
        "feature service 's' (models/features/feature_services.yml), field 'online_colocated'"
        in str(raised.value)
    )
    assert "different keys" in str(raised.value)


def test_a_colocated_service_with_full_feature_names_is_written_and_read(
    tmp_path, online_server
) -> None:
    """Two tables sharing a feature name: the service spells table__feature; resolving its
    item's layout without that flag failed (found by the benchmark)."""
    other = synthetic_table(name="user_daily_visits_1d", ttl=None, features=("logins",))
    service = FeatureService(
        "both",
        (f"{SHORT.name}:logins", f"{other.name}:logins"),
        full_feature_names=True,
        online_colocated=True,
    )
    store = FeatureStore(
        {SHORT.name: SHORT, other.name: other},
        OfflineStore(root=tmp_path / "offline", staging_root=tmp_path / "staging"),
        OnlineStore(endpoint_url=online_server.endpoint, table_prefix=f"t{uuid.uuid4().hex[:8]}_"),
        {service.name: service},
    )
    store.push(SHORT.name, [{"user_id": 1, "event_timestamp": datetime(2026, 3, 10), "logins": 2}])
    store.push(other.name, [{"user_id": 1, "event_timestamp": datetime(2026, 3, 10), "logins": 9}])
    read = store.get_online_features("both", [{"user_id": 1}], now=NOW)
    assert read.rows == [{"user_id": 1, f"{SHORT.name}__logins": 2, f"{other.name}__logins": 9}]
