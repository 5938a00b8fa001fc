"""The feature-table contract: YAML meta parsed once, bad definitions rejected with names."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from feature_assets.contract import (
    FeatureDefinitionError,
    feature_table_from_node,
    load_feature_tables,
)

GOOD_NODE: dict[str, Any] = {
    "name": "user_daily_transactions_7d",
    "resource_type": "model",
    "description": "d",
    "config": {
        "meta": {
            "feature_table": {
                "entity": "user",
                "keys": ["user_id"],
                "timestamp": "event_timestamp",
                "created_timestamp": "created_at",
                "ttl": "30d",
                "freshness": "12h",
                "owner": "risk-ml@example.com",
                "tags": ["fraud"],
            }
        }
    },
    "columns": {
        "user_id": {"data_type": "bigint"},
        "feature_date": {"data_type": "date"},
        "event_timestamp": {"data_type": "timestamp"},
        "created_at": {"data_type": "timestamp"},
        "transaction_count_7d": {
            "data_type": "bigint",
            "meta": {"checks": {"ge": 0}, "nullable": False},
        },
    },
    "depends_on": {"nodes": ["source.feature_store.raw.card_transactions"]},
}


def node_with(**changes: Any) -> dict[str, Any]:
    node = copy.deepcopy(GOOD_NODE)
    meta = node["config"]["meta"]["feature_table"]
    for key, value in changes.items():
        if key in ("name", "columns"):
            node[key] = value
        elif value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    return node


def test_meta_is_parsed_into_one_typed_object() -> None:
    table = feature_table_from_node(GOOD_NODE)
    assert table.keys == ("user_id",)
    assert table.key_types == {"user_id": "int"}
    assert table.ttl == timedelta(days=30)
    assert table.freshness == timedelta(hours=12)
    assert table.feature_names == ("transaction_count_7d",)
    assert table.feature("transaction_count_7d").checks == {"ge": 0}
    assert table.feature("transaction_count_7d").nullable is False
    assert table.source_tables == ("raw.card_transactions",)


@pytest.mark.parametrize(
    ("node", "words"),
    [
        (node_with(name="transactions"), ["'transactions'", "entity_grain_metric_window"]),
        (node_with(keys=["account_id"]), ["key column 'account_id'"]),
        (node_with(timestamp="ts"), ["timestamp column 'ts'"]),
        (node_with(ttl="thirty days"), ["ttl 'thirty days'"]),
        (node_with(freshness="1 fortnight"), ["freshness '1 fortnight'"]),
        (node_with(owner="risk team"), ["owner 'risk team'"]),
        (
            node_with(
                columns={**GOOD_NODE["columns"], "amount_sum_7d": {"description": "no type"}}
            ),
            ["column 'amount_sum_7d'", "data_type"],
        ),
    ],
)
def test_bad_definition_names_model_and_field(node: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(FeatureDefinitionError) as error:
        feature_table_from_node(node)
    assert node["name"] in str(error.value)
    for word in words:
        assert word in str(error.value)


def test_duplicate_table_names_are_rejected() -> None:
    manifest = {"nodes": {"model.a.x": GOOD_NODE, "model.b.x": copy.deepcopy(GOOD_NODE)}}
    with pytest.raises(
        FeatureDefinitionError, match="'user_daily_transactions_7d' is defined twice"
    ):
        load_feature_tables(manifest)


def test_demo_table_is_loaded_from_the_dbt_manifest(demo_tables) -> None:
    table = demo_tables["user_daily_transactions_7d"]
    assert table.entity == "user"
    assert table.created_timestamp == "created_at"
    assert set(table.feature_names) == {
        "transaction_count_7d",
        "transaction_amount_sum_7d",
        "transaction_amount_mean_7d",
        "transaction_amount_max_7d",
        "distinct_merchant_count_7d",
    }
