"""The dbt docs catalog, from a real `dbt docs generate` on the project: a landing page,
readable feature services, each feature's checks, and the online tables in the lineage."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from feature_assets.catalog import check_text, generate_catalog, key_layout
from feature_assets.kernel.contract import Contract, FeatureColumn, FeatureTable
from resources.dbt_manifest import load_project_contract
from resources.online_store import OnlineStore
from resources.settings import PROJECT_ROOT
from tests.builders import MODELS_DIR, synthetic_table, yaml_feature_tables

# The catalog comes from a real `dbt docs generate` run: the integration tier.
runs_dbt = pytest.mark.integration

PROJECT_DIR = PROJECT_ROOT / "dbt_project"
YAML_TABLES = yaml_feature_tables()
YAML_SERVICES = {
    exposure["name"]: exposure
    for exposure in yaml.safe_load((MODELS_DIR / "features" / "feature_services.yml").read_text())[
        "exposures"
    ]
}
ONLINE_STORE = OnlineStore(table_prefix="docs_")


@pytest.fixture(scope="module")
def contract() -> Contract:
    return load_project_contract(PROJECT_DIR)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory, contract: Contract) -> dict[str, Any]:
    target = generate_catalog(
        PROJECT_DIR,
        tmp_path_factory.mktemp("catalog"),
        contract.tables,
        contract.services,
        ONLINE_STORE.table_name,
        contract.on_demand,
    )
    return json.loads((target / "manifest.json").read_text())


def model_id(table_name: str) -> str:
    return f"model.feature_store.{table_name}"


@runs_dbt
def test_the_landing_page_is_the_projects_overview_naming_every_table_and_service(
    manifest: dict[str, Any],
) -> None:
    overview = manifest["docs"]["doc.feature_store.__overview__"]["block_contents"]
    for name in [*YAML_TABLES, *YAML_SERVICES]:
        assert f"`{name}`" in overview, name
    for command in ("make demo", "feature-store tables", "feature-store describe", "catalog"):
        assert command in overview, command


@runs_dbt
@pytest.mark.parametrize("service", sorted(YAML_SERVICES))
def test_a_feature_service_shows_flat_meta_and_a_table_of_its_features(
    manifest: dict[str, Any], contract: Contract, service: str
) -> None:
    node = manifest["exposures"][f"exposure.feature_store.{service}"]
    assert node["meta"], "the service's meta rows are missing"
    assert all(isinstance(value, str) for value in node["meta"].values()), node["meta"]
    for reference in YAML_SERVICES[service]["meta"]["feature_service"]["features"]:
        table_name, _, feature = reference.partition(":")
        assert table_name in node["meta"]["features"]
        assert feature in node["meta"]["features"]
        owner = contract.tables.get(table_name) or contract.on_demand[table_name]
        row = f"| `{table_name}` | `{feature}` | {owner.feature(feature).type_name} |"
        assert row in node["description"], reference


@runs_dbt
def test_an_on_demand_feature_shows_its_function_inputs_and_outputs(
    manifest: dict[str, Any], contract: Contract
) -> None:
    assert contract.on_demand, "the demo declares on-demand features"
    for name, feature in contract.on_demand.items():
        node = manifest["exposures"][f"exposure.feature_store.{name}"]
        assert node["meta"]["function"] == feature.function
        for item in feature.inputs:
            source = f"`{item.feature}`" if item.feature else "request field"
            assert f"| `{item.name}` | {item.logical_type} | {source} |" in node["description"]
        for output in feature.outputs:
            assert f"| `{output.name}` | {output.type_name} |" in node["description"]
    overview = manifest["docs"]["doc.feature_store.__overview__"]["block_contents"]
    assert all(f"`{name}`" in overview for name in contract.on_demand)


@runs_dbt
@pytest.mark.parametrize(
    ("column", "present", "absent"),
    [
        ("transaction_count_7d", ["Checks:", "≥ 0", "not null"], []),
        ("transaction_amount_sum_7d", ["≥ 0", "not null"], []),
        ("transaction_amount_mean_7d", ["≥ 0"], ["not null"]),
        ("transaction_amount_max_7d", ["≥ 0"], ["not null"]),
        ("distinct_merchant_count_7d", ["≥ 0", "not null"], []),
        ("user_id", ["Checks: not null"], []),
        ("event_timestamp", ["Checks: not null"], []),
    ],
)
def test_each_column_description_of_a_table_shows_its_checks(
    manifest: dict[str, Any], column: str, present: list[str], absent: list[str]
) -> None:
    node = manifest["nodes"][model_id("user_daily_transactions_7d")]
    description = node["columns"][column]["description"]
    assert all(text in description for text in present), description
    assert not any(text in description for text in absent), description


@runs_dbt
def test_the_feature_table_section_has_a_checks_column(manifest: dict[str, Any]) -> None:
    description = manifest["nodes"][model_id("customer_daily_balance_30d")]["description"]
    assert "| feature | type | checks | description |" in description
    assert "| `overdrawn_days_30d` | bigint | ≥ 0, ≤ 30; not null |" in description


def online_tables(contract: Contract) -> list[FeatureTable]:
    return [table for table in contract.tables.values() if table.online]


@runs_dbt
def test_each_online_table_is_an_exposure_downstream_of_its_model(
    manifest: dict[str, Any], contract: Contract
) -> None:
    assert len(online_tables(contract)) == 3  # every demo table but the training-only one
    service_node = manifest["exposures"]["exposure.feature_store.fraud_detection_v1"]
    online_ids = set()
    for table in online_tables(contract):
        unique_id = f"exposure.feature_store.online_{table.name}"
        online_ids.add(unique_id)
        node = manifest["exposures"][unique_id]
        assert set(node) == set(service_node)  # the shape dbt docs expects of an exposure
        assert node["label"] == f"Online: {table.name}"
        assert node["type"] == "application"
        assert f"docs_{table.name}" in node["description"]
        assert node["depends_on"]["nodes"] == [model_id(table.name)]
        assert manifest["parent_map"][unique_id] == [model_id(table.name)]
        assert unique_id in manifest["child_map"][model_id(table.name)]
        assert manifest["child_map"][unique_id] == []
    assert {i for i in manifest["exposures"] if "online_" in i} == online_ids


@runs_dbt
def test_the_online_key_layout_is_described(manifest: dict[str, Any]) -> None:
    node = manifest["exposures"]["exposure.feature_store.online_user_daily_transactions_7d"]
    assert "hash key `user_id`" in node["description"]
    assert "expires_at" in node["description"]


@pytest.mark.parametrize(
    ("keys", "layout"),
    [
        (("user_id",), "hash key `user_id` (N)"),
        (("user_id", "merchant_id"), "hash key `user_id` (N), range key `merchant_id` (N)"),
        (("a", "b", "c"), "hash key `entity_key` (S) = `a#b#c`"),
    ],
)
def test_the_online_key_layout_follows_the_online_stores_rule(
    keys: tuple[str, ...], layout: str
) -> None:
    assert key_layout(synthetic_table(keys=keys)) == layout


@pytest.mark.parametrize(
    ("checks", "nullable", "text"),
    [
        ({"ge": 0, "le": 30}, False, "≥ 0, ≤ 30; not null"),
        ({"gt": 0, "lt": 1.5}, True, "> 0, < 1.5"),
        ({"isin": ["EUR", "USD"]}, True, "one of EUR, USD"),
        ({"str_matches": "^[A-Z]{3}$"}, False, "matches `^[A-Z]{3}$`; not null"),
        ({"unique_values_eq": [1, 2]}, True, "unique_values_eq([1, 2])"),
        ({}, True, "none"),
    ],
)
def test_checks_read_as_a_person_would_write_them(
    checks: dict[str, Any], nullable: bool, text: str
) -> None:
    assert check_text(FeatureColumn("x", "float", nullable=nullable, checks=checks)) == text
