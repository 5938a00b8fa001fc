"""Training sets: every input form, every output form, clear input errors, saved and rebuilt."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_assets.kernel.contract import FeatureService
from feature_assets.kernel.errors import (
    EntityInputError,
    FeatureReferenceError,
    TrainingSetDriftError,
)
from feature_assets.sdk import FeatureStore
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from tests.builders import publish_rows, synthetic_table

CLICKS = synthetic_table(
    name="user_daily_clicks_7d", ttl=timedelta(days=3), features=("clicks", "value")
)
SPEND = synthetic_table(
    name="user_daily_merchant_spend_30d",
    keys=("user_id", "merchant_id"),
    ttl=None,
    features=("spend", "value"),
)


def row(table, day: int, value: int, **keys) -> dict:
    features = {name: value for name in table.feature_names}
    return {
        **keys,
        "feature_date": date(2026, 1, day),
        "event_timestamp": datetime(2026, 1, day, 12),
        "created_at": datetime(2026, 1, day, 13),
        **features,
    }


@pytest.fixture
def store(tmp_path) -> FeatureStore:
    offline = OfflineStore(root=str(tmp_path / "offline"), staging_root=str(tmp_path / "staging"))
    for day in (1, 2, 3):
        publish_rows(offline, CLICKS, [row(CLICKS, day, day * 10 + u, user_id=u) for u in (1, 2)])
        publish_rows(
            offline,
            SPEND,
            [row(SPEND, day, day * 100 + u, user_id=u, merchant_id=7) for u in (1, 2)],
        )
    services = {"churn_v1": FeatureService("churn_v1", ("user_daily_clicks_7d:clicks",))}
    return FeatureStore({CLICKS.name: CLICKS, SPEND.name: SPEND}, offline, OnlineStore(), services)


ENTITIES = pd.DataFrame(
    {
        "user_id": [2, 1, 1, 2],
        "merchant_id": [7, 7, 7, 8],
        "event_timestamp": pd.to_datetime(
            ["2026-01-02 12:00", "2026-01-03 11:59", "2026-01-09 00:00", "2026-01-03 12:00"]
        ),
        "label": [1, 0, 1, 0],
    }
)
FEATURES = ["user_daily_clicks_7d:clicks", "user_daily_merchant_spend_30d:spend"]
EXPECTED_CLICKS = [22, 21, None, 32]  # the 9th is more than 3 days after the last click row
EXPECTED_SPEND = [202, 201, 301, None]  # merchant 8 has no rows


def values(column) -> list:
    return [None if pd.isna(v) else int(v) for v in column]


def test_several_tables_and_composite_keys_in_one_call(store) -> None:
    result = store.get_historical_features(ENTITIES, FEATURES).to_pandas()
    assert list(result.columns) == [
        "user_id",
        "merchant_id",
        "event_timestamp",
        "label",
        "clicks",
        "spend",
    ]
    assert values(result["clicks"]) == EXPECTED_CLICKS
    assert values(result["spend"]) == EXPECTED_SPEND


@pytest.mark.parametrize("form", ["arrow", "polars", "parquet", "sql"])
def test_every_entity_form_gives_the_same_rows(store, tmp_path, form) -> None:
    if form == "arrow":
        entity = pa.Table.from_pandas(ENTITIES, preserve_index=False)
    elif form == "polars":
        entity = pl.from_pandas(ENTITIES)
    elif form == "parquet":
        entity = tmp_path / "entities.parquet"
        ENTITIES.to_parquet(entity)
    else:
        # Entity rows from the offline store itself: every (user, day) of the clicks table at noon.
        entity = (
            "SELECT user_id, 7 AS merchant_id, event_timestamp, 0 AS label FROM user_daily_clicks_7d "
            "ORDER BY event_timestamp, user_id"
        )
        result = store.get_historical_features(entity, FEATURES).to_pandas()
        assert values(result["clicks"]) == [11, 12, 21, 22, 31, 32]
        assert values(result["spend"]) == [101, 102, 201, 202, 301, 302]
        return
    result = store.get_historical_features(entity, FEATURES).to_pandas()
    assert values(result["clicks"]) == EXPECTED_CLICKS and values(result["spend"]) == EXPECTED_SPEND


def test_outputs_as_arrow_polars_and_parquet(store, tmp_path) -> None:
    training_set = store.get_historical_features(ENTITIES, FEATURES)
    assert training_set.columns == [*ENTITIES.columns, "clicks", "spend"]
    arrow = training_set.to_arrow()
    assert isinstance(arrow, pa.Table) and arrow.column("spend").to_pylist() == EXPECTED_SPEND
    polars = training_set.to_polars()
    assert isinstance(polars, pl.DataFrame) and polars["clicks"].to_list() == EXPECTED_CLICKS
    pandas = training_set.to_pandas()
    assert isinstance(pandas, pd.DataFrame) and values(pandas["clicks"]) == EXPECTED_CLICKS
    path = training_set.to_parquet(tmp_path / "train.parquet")
    assert pq.read_table(path).column("label").to_pylist() == [1, 0, 1, 0]


def test_full_feature_names_resolve_ambiguous_features(store) -> None:
    ambiguous = ["user_daily_clicks_7d:value", "user_daily_merchant_spend_30d:value"]
    with pytest.raises(FeatureReferenceError, match=r"\['value'\] come from several tables"):
        store.get_historical_features(ENTITIES, ambiguous)
    result = store.get_historical_features(ENTITIES, ambiguous, full_feature_names=True).to_pandas()
    assert values(result["user_daily_clicks_7d__value"]) == EXPECTED_CLICKS
    assert values(result["user_daily_merchant_spend_30d__value"]) == EXPECTED_SPEND


def test_feature_service_name_stands_for_its_features(store) -> None:
    result = store.get_historical_features(ENTITIES, "churn_v1").to_pandas()
    assert values(result["clicks"]) == EXPECTED_CLICKS
    with pytest.raises(FeatureReferenceError, match="unknown feature service 'fraud_v9'"):
        store.get_historical_features(ENTITIES, "fraud_v9")


@pytest.mark.parametrize(
    ("entity", "message"),
    [
        (
            ENTITIES.drop(columns=["merchant_id"]),
            "feature table 'user_daily_merchant_spend_30d': entity rows lack key column 'merchant_id'",
        ),
        (
            ENTITIES.assign(user_id=ENTITIES["user_id"].astype(str)),
            "feature table 'user_daily_clicks_7d': key 'user_id' must be an integer, "
            "but the entity column is VARCHAR",
        ),
        (
            ENTITIES.drop(columns=["event_timestamp"]),
            "entity rows have no timestamp column 'event_timestamp'",
        ),
        (
            ENTITIES.assign(user_id=pd.array([1, None, 2, 2], dtype="Int64")),
            "null keys or timestamps: 1 in 'user_id'",
        ),
        (
            ENTITIES.assign(event_timestamp=[pd.NaT, *ENTITIES["event_timestamp"][1:]]),
            "null keys or timestamps: 1 in 'event_timestamp'",
        ),
        (ENTITIES.assign(clicks=1), "already have column(s) ['clicks']"),
        (
            ENTITIES.assign(event_timestamp="yesterday"),
            "'event_timestamp' is large_string, not a timestamp",
        ),
    ],
)
def test_bad_entity_rows_get_clear_errors(store, entity, message) -> None:
    with pytest.raises(EntityInputError) as error:
        store.get_historical_features(entity, FEATURES)
    assert message in str(error.value)


def test_saved_training_set_rebuilds_identically_and_detects_changed_partitions(
    store, tmp_path
) -> None:
    manifest = store.save_training_set(
        tmp_path / "ts", ENTITIES, FEATURES, created_timestamp_cutoff=True
    )
    assert manifest["rows"] == 4
    assert manifest["options"]["created_timestamp_cutoff"] is True
    assert sorted(manifest["tables"]["user_daily_merchant_spend_30d"]["partitions"]) == [
        "2026-01-01",
        "2026-01-02",
        "2026-01-03",
    ]
    saved = pq.read_table(tmp_path / "ts" / "data.parquet")
    rebuilt = pq.read_table(store.rebuild_training_set(tmp_path / "ts", tmp_path / "again.parquet"))
    assert rebuilt.equals(saved)
    publish_rows(store.offline, CLICKS, [row(CLICKS, 2, 99, user_id=1)])  # day 2 republished
    with pytest.raises(TrainingSetDriftError, match="user_daily_clicks_7d 2026-01-02"):
        store.rebuild_training_set(tmp_path / "ts", tmp_path / "third.parquet")
