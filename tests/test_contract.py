"""The feature-table contract: YAML meta parsed once, bad definitions rejected with names."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest

from feature_assets.assets.build import build_definitions
from feature_assets.kernel.contract import format_duration, parse_duration
from feature_assets.kernel.errors import FeatureDefinitionError
from feature_assets.kernel.manifest import (
    feature_table_from_node,
    load_feature_services,
    load_feature_tables,
    raw_source_from_node,
)
from resources.dbt_manifest import load_project_contract
from resources.settings import PROJECT_ROOT
from tests.builders import make_settings, run_within

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
    "patch_path": "feature_store://models/features/user_daily_transactions_7d.yml",
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


def without_column_type(column: str) -> dict[str, Any]:
    columns = copy.deepcopy(GOOD_NODE["columns"])
    columns[column] = {"description": "no type"}
    return node_with(columns=columns)


# (broken node, the field the message must name, the offending value it must quote)
BAD_DEFINITIONS = {
    "name breaks the convention": (node_with(name="transactions"), "name", "entity_grain"),
    "name without a window": (node_with(name="user_daily_transactions"), "name", "window"),
    "entity is not the name's prefix": (node_with(entity="customer"), "entity", "'customer'"),
    "key column missing": (node_with(keys=["account_id"]), "keys", "'account_id'"),
    "no keys": (node_with(keys=[]), "keys", "required"),
    "timestamp column missing": (node_with(timestamp="ts"), "timestamp", "'ts'"),
    "created timestamp missing": (
        node_with(created_timestamp="written_at"),
        "created_timestamp",
        "'written_at'",
    ),
    "ttl does not parse": (node_with(ttl="thirty days"), "ttl", "'thirty days'"),
    "ttl of zero": (node_with(ttl="0d"), "ttl", "'0d'"),
    "freshness does not parse": (
        node_with(freshness="1 fortnight"),
        "freshness",
        "'1 fortnight'",
    ),
    "owner neither email nor team": (node_with(owner="risk team"), "owner", "'risk team'"),
    "no owner": (node_with(owner=None), "owner", "required"),
    "feature column without a type": (
        without_column_type("transaction_count_7d"),
        "columns.transaction_count_7d.data_type",
        "'transaction_count_7d'",
    ),
    "key column without a type": (
        without_column_type("user_id"),
        "columns.user_id.data_type",
        "'user_id'",
    ),
    "unsupported type": (
        node_with(columns={**GOOD_NODE["columns"], "blob_7d": {"data_type": "blob"}}),
        "columns.blob_7d.data_type",
        "'blob'",
    ),
    "unknown check": (
        node_with(
            columns={
                **GOOD_NODE["columns"],
                "amount_7d": {"data_type": "double", "meta": {"checks": {"positive": True}}},
            }
        ),
        "columns.amount_7d.meta.checks",
        "'positive'",
    ),
    # Strings where a bool or list is due, durations and bounds that load with a wrong meaning.
    "online as a string": (node_with(online="false"), "online", "not 'false'"),
    "tags as a string": (node_with(tags="fraud"), "tags", "not 'fraud'"),
    "keys as a string": (node_with(keys="user_id"), "keys", "not 'user_id'"),
    "ttl out of range": (node_with(ttl="99999999999d"), "ttl", "'99999999999d'"),
    "nullable as a string": (
        node_with(
            columns={
                **GOOD_NODE["columns"],
                "amount_7d": {"data_type": "double", "meta": {"nullable": "false"}},
            }
        ),
        "columns.amount_7d.meta.nullable",
        "not 'false'",
    ),
    "non-numeric check bound": (
        node_with(
            columns={
                **GOOD_NODE["columns"],
                "amount_7d": {"data_type": "double", "meta": {"checks": {"ge": "abc"}}},
            }
        ),
        "columns.amount_7d.meta.checks.ge",
        "not 'abc'",
    ),
    "feature named like an online attribute": (
        node_with(columns={**GOOD_NODE["columns"], "expires_at": {"data_type": "bigint"}}),
        "columns.expires_at",
        "reserved",
    ),
}


@pytest.mark.parametrize(("node", "field", "value"), BAD_DEFINITIONS.values(), ids=BAD_DEFINITIONS)
def test_bad_definition_names_model_and_field(node: dict[str, Any], field: str, value: str) -> None:
    with pytest.raises(FeatureDefinitionError) as error:
        feature_table_from_node(node)
    message = str(error.value)
    assert f"feature table {node['name']!r}" in message
    assert "models/features/user_daily_transactions_7d.yml" in message
    assert f"field {field!r}" in message
    assert value in message


def test_duplicate_table_names_are_rejected() -> None:
    manifest = {"nodes": {"model.a.x": GOOD_NODE, "model.b.x": copy.deepcopy(GOOD_NODE)}}
    with pytest.raises(FeatureDefinitionError) as error:
        load_feature_tables(manifest)
    message = str(error.value)
    assert "'user_daily_transactions_7d', field 'name': defined twice" in message
    assert "model.a.x" in message and "model.b.x" in message


def exposure(features: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "name": "fraud_v2",
        "owner": {"email": "risk-ml@example.com"},
        "config": {"meta": {"feature_service": {"features": features, **spec}}},
    }


def test_a_feature_name_served_from_two_tables_is_rejected_unless_full_names() -> None:
    other = copy.deepcopy(GOOD_NODE)
    other["name"] = "card_daily_usage_7d"
    other["config"]["meta"]["feature_table"]["entity"] = "card"
    tables = load_feature_tables({"nodes": {"model.p.a": GOOD_NODE, "model.p.b": other}})
    clashing = [
        "user_daily_transactions_7d:transaction_count_7d",
        "card_daily_usage_7d:transaction_count_7d",
    ]
    with pytest.raises(FeatureDefinitionError) as error:
        load_feature_services({"exposures": {"e": exposure(clashing)}}, tables)
    assert "feature service 'fraud_v2', field 'features'" in str(error.value)
    assert "'transaction_count_7d'" in str(error.value)
    assert "['card_daily_usage_7d', 'user_daily_transactions_7d']" in str(error.value)

    services = load_feature_services(
        {"exposures": {"e": exposure(clashing, full_feature_names=True)}}, tables
    )
    assert services["fraud_v2"].full_feature_names is True


def test_durations_round_trip_to_their_shortest_spelling() -> None:
    for text in ["30d", "12h", "14d", "90m", "45s", "36h"]:
        assert format_duration(parse_duration(text)) == text
    assert format_duration(parse_duration("2w")) == "14d"
    assert format_duration(parse_duration("48h")) == "2d"
    assert format_duration(None) is None


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


@pytest.mark.parametrize(
    ("yaml_edit", "field", "value"),
    [
        (("ttl: 3d", "ttl: three days"), "ttl", "'three days'"),
        (("keys: [customer_id]", "keys: [account_id]"), "keys", "'account_id'"),
    ],
)
def test_definitions_fail_to_load_naming_the_model_file_and_field(
    tmp_path, online_server, yaml_edit: tuple[str, str], field: str, value: str
) -> None:
    project = tmp_path / "dbt_project"
    shutil.copytree(
        PROJECT_ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs")
    )
    path = project / "models" / "features" / "customer_daily_balance_30d.yml"
    old, new = yaml_edit
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    with pytest.raises(FeatureDefinitionError) as error:
        build_definitions(make_settings(tmp_path, online_server.endpoint, dbt_project_dir=project))
    message = str(error.value)
    assert "feature table 'customer_daily_balance_30d'" in message
    assert "models/features/customer_daily_balance_30d.yml" in message
    assert f"field {field!r}" in message and value in message


def test_a_column_declared_twice_fails_at_load_naming_file_and_column(tmp_path) -> None:
    project = tmp_path / "dbt_project"
    shutil.copytree(
        PROJECT_ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs")
    )
    path = project / "models" / "features" / "user_daily_transactions_7d.yml"
    entry = "      - name: transaction_count_7d\n"
    assert entry in path.read_text()
    path.write_text(
        path.read_text().replace(entry, entry + "        data_type: double\n" + entry, 1)
    )
    with pytest.raises(FeatureDefinitionError) as error:
        load_project_contract(project)
    message = str(error.value)
    assert "feature table 'user_daily_transactions_7d'" in message
    assert "models/features/user_daily_transactions_7d.yml" in message
    assert "'transaction_count_7d' declared more than once" in message


def test_raw_source_rules_are_strict_and_name_the_source() -> None:
    node = {
        "source_name": "raw",
        "name": "card_transactions",
        "meta": {"landing_partition": "day", "unique_key": "transaction_id"},
        "columns": {"transaction_id": {"data_type": "bigint"}, "day": {"data_type": "date"}},
        "original_file_path": "models/sources/raw.yml",
    }
    with pytest.raises(FeatureDefinitionError) as error:
        raw_source_from_node(node)
    assert str(error.value) == (
        "raw source 'raw.card_transactions' (models/sources/raw.yml), field 'unique_key': "
        "must be a list of names, not 'transaction_id'"
    )


def test_processes_starting_at_once_on_a_fresh_project_parse_it_once(tmp_path) -> None:
    """Two test workers in a fresh clone both found no manifest, both ran `dbt parse`, and the
    second write left target/manifest.json corrupt for everyone."""
    project = tmp_path / "dbt_project"
    shutil.copytree(
        PROJECT_ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs")
    )
    read = (
        "import sys; from pathlib import Path; from resources.dbt_manifest import read_manifest; "
        "print(read_manifest(Path(sys.argv[1]))['metadata']['invocation_id'])"
    )
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", read, str(project)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=PROJECT_ROOT,
        )
        for _ in range(3)
    ]
    outputs = run_within(readers, 600, "three processes reading a fresh project's manifest")
    assert all(p.returncode == 0 for p in readers), outputs
    assert len({out.strip() for out, _ in outputs}) == 1, outputs
    # One parse: the others waited for it and found the manifest fresh.
    assert (project / "logs" / "dbt.log").read_text().count("Running with dbt=") == 1
