"""The asset graph as a registry: specs equal the YAML, discovery lists and searches it."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml

from feature_assets import cli
from feature_assets.assets.build import build_definitions
from feature_assets.catalog import CONTRACT_HEADING
from feature_assets.kernel.contract import parse_duration
from feature_assets.kernel.errors import FeatureReferenceError
from feature_assets.kernel.names import RAW_GROUP, online_asset_path
from feature_assets.registry import Registry
from feature_assets.sdk import FeatureStore
from tests.builders import MODELS_DIR, make_settings, publish_rows, yaml_feature_tables

SOURCES_YAML = MODELS_DIR / "sources" / "raw.yml"
YAML_TABLES = yaml_feature_tables()


@pytest.fixture(scope="module")
def defs(tmp_path_factory, online_server) -> dg.Definitions:
    return build_definitions(
        make_settings(tmp_path_factory.mktemp("registry"), online_server.endpoint)
    )


def spec_of(defs: dg.Definitions, key: dg.AssetKey) -> dg.AssetSpec:
    return defs.resolve_assets_def(key).specs_by_key[key]


def test_the_demo_has_four_tables_from_four_raw_sources_one_with_a_composite_key() -> None:
    assert set(YAML_TABLES) == {
        "user_daily_transactions_7d",
        "customer_daily_balance_30d",
        "customer_daily_engagement_7d",
        "user_category_daily_spend_30d",
    }
    assert ["user_id", "merchant_category"] in [
        t["feature_table"]["keys"] for t in YAML_TABLES.values()
    ]
    sources = yaml.safe_load(SOURCES_YAML.read_text())["sources"][0]["tables"]
    assert len(sources) == 4


@pytest.mark.parametrize("name", sorted(YAML_TABLES))
def test_asset_spec_of_each_table_equals_its_yaml(defs: dg.Definitions, name: str) -> None:
    model = YAML_TABLES[name]
    meta = model["feature_table"]
    spec = spec_of(defs, dg.AssetKey(name))
    metadata = spec.metadata

    for field in ("entity", "keys", "timestamp", "created_timestamp", "partition", "owner"):
        assert metadata[field] == meta[field], field
    assert metadata["online"] == meta.get("online", True)
    assert metadata["tags"] == meta["tags"]
    for field in ("ttl", "freshness"):
        assert parse_duration(metadata[field]) == parse_duration(meta[field]), field

    structural = {*meta["keys"], meta["timestamp"], meta["created_timestamp"], meta["partition"]}
    expected = [
        (c["name"], c["data_type"], c["description"].strip())
        for c in model["columns"]
        if c["name"] not in structural
    ]
    features = metadata["features"].columns
    assert [(c.name, c.type, c.description) for c in features] == expected
    nullability = {c["name"]: c.get("meta", {}).get("nullable", True) for c in model["columns"]}
    assert all(c.constraints.nullable == nullability[c.name] for c in features)

    assert spec.owners == [meta["owner"]]
    assert spec.group_name == meta["entity"]
    assert {"feature_table", *meta["tags"]} <= set(spec.tags)
    assert spec.freshness_policy.fail_window.to_timedelta() == parse_duration(meta["freshness"])
    assert spec.description.split()[:4] == model["description"].split()[:4]


@pytest.mark.parametrize("name", sorted(YAML_TABLES))
def test_lineage_runs_from_raw_sources_through_the_table_to_its_online_table(
    defs: dg.Definitions, name: str
) -> None:
    graph = defs.resolve_asset_graph()
    sql = (MODELS_DIR / "features" / f"{name}.sql").read_text()
    read_sources = {
        dg.AssetKey(["raw", table["name"]])
        for table in yaml.safe_load(SOURCES_YAML.read_text())["sources"][0]["tables"]
        if f"source('raw', '{table['name']}')" in sql
    }
    assert read_sources and graph.get(dg.AssetKey(name)).parent_keys == read_sources
    for key in read_sources:
        assert graph.get(key).group_name == RAW_GROUP
        assert spec_of(defs, key).description
    online = dg.AssetKey(online_asset_path(name))
    if YAML_TABLES[name]["feature_table"].get("online", True):
        assert graph.get(online).parent_keys == {dg.AssetKey(name)}
        assert graph.get(online).owners == [YAML_TABLES[name]["feature_table"]["owner"]]
    else:
        assert not graph.has(online)


def test_no_two_assets_share_a_label(defs: dg.Definitions) -> None:
    """Dagster labels a node by its key's last part: the online table must not read as the
    offline one."""
    labels = [spec.key.path[-1] for spec in defs.resolve_all_asset_specs()]
    assert len(labels) == len(set(labels)), sorted(labels)


@pytest.fixture
def registry(tmp_path, online_server) -> Registry:
    store = FeatureStore.from_settings(make_settings(tmp_path, online_server.endpoint))
    return Registry(store.tables, store.services, store.offline, store.contract.on_demand)


def test_search_finds_a_feature_by_a_word_of_its_description(registry: Registry) -> None:
    # "overdrawn" is only in the feature's name; "negative" only in its description.
    hits = registry.search("negative")
    assert [h.name for h in hits] == ["customer_daily_balance_30d:overdrawn_days_30d"]
    assert hits[0].matched == ("description",)
    # A word prefix matches: "merchant" finds "merchants" and "merchant category".
    names = {h.name for h in registry.search("merchant")}
    assert "user_daily_transactions_7d:distinct_merchant_count_7d" in names
    assert "user_category_daily_spend_30d" in names


def test_search_by_tag_needs_every_word_and_ranks_names_first(registry: Registry) -> None:
    churn = registry.search("churn")
    assert {h.name for h in churn if h.kind == "table"} == {"customer_daily_engagement_7d"}
    assert "churn_prediction_v1" in {h.name for h in churn if h.kind == "service"}
    # The churn team owns the engagement table and the tenure on-demand feature.
    assert all(
        h.name.startswith(("customer_daily_engagement_7d", "customer_tenure"))
        for h in churn
        if h.kind == "feature"
    )
    both = registry.search("credit balance")
    assert both and all("customer_daily_balance_30d" in h.name or h.kind == "service" for h in both)
    assert both[0].score >= both[-1].score
    assert registry.search("balance")[0].kind != "service"
    assert registry.search("no such words anywhere") == []


def test_tables_list_owner_ttl_and_the_last_published_partition(registry: Registry) -> None:
    table = registry.tables["customer_daily_engagement_7d"]
    rows = {r.table: r for r in registry.table_summaries()}
    assert rows[table.name].last_partition is None
    publish_rows(
        registry.offline,
        table,
        [
            {
                "customer_id": 1,
                "feature_date": day,
                "event_timestamp": datetime.combine(day, time()),
                "created_at": datetime.combine(day, time()),
                **dict.fromkeys(table.feature_names, 1),
            }
            for day in (date(2026, 3, 1), date(2026, 3, 4))
        ],
    )
    rows = {r.table: r for r in registry.table_summaries()}
    assert rows[table.name].last_partition == date(2026, 3, 4)
    assert rows[table.name].owner == "churn-ml@example.com"
    assert rows[table.name].ttl == timedelta(days=14)
    assert rows["user_category_daily_spend_30d"].keys == ("user_id", "merchant_category")
    assert rows["user_category_daily_spend_30d"].online is False
    described = registry.describe(table.name)
    assert described.published_partitions == 2
    assert described.services == ("churn_prediction_v1", "churn_prediction_v2")
    with pytest.raises(FeatureReferenceError, match="unknown feature table 'nope'"):
        registry.describe("nope")


def test_cli_search_and_describe(tmp_path, online_server, monkeypatch, capsys) -> None:
    settings = make_settings(tmp_path, online_server.endpoint)
    monkeypatch.setenv("FEATURE_STORE_HOME", str(settings.home))
    assert cli.main(["search", "--json", "merchants", "paid"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [h["name"] for h in hits] == ["user_daily_transactions_7d:distinct_merchant_count_7d"]
    assert cli.main(["search", "zebra"]) == 1
    capsys.readouterr()
    assert cli.main(["describe", "customer_daily_balance_30d"]) == 0
    out = capsys.readouterr().out
    for text in ["team:credit-risk", "30 days", "avg_balance_30d", "ge 0 le 30", "3d"]:
        assert text in out
    assert cli.main(["features", "--json", "user_category_daily_spend_30d"]) == 0
    features = json.loads(capsys.readouterr().out)
    assert [f["feature"].split(":")[1] for f in features] == [
        "transaction_count_30d",
        "spend_amount_sum_30d",
        "share_of_spend_30d",
    ]


def test_catalog_shows_owner_ttl_keys_and_features_of_every_table(
    tmp_path: Path, online_server, monkeypatch
) -> None:
    settings = make_settings(tmp_path, online_server.endpoint)
    monkeypatch.setenv("FEATURE_STORE_HOME", str(settings.home))
    assert cli.main(["catalog", "--no-serve"]) == 0
    manifest = json.loads((settings.catalog_dir / "manifest.json").read_text())
    catalog = json.loads((settings.catalog_dir / "catalog.json").read_text())
    assert (settings.catalog_dir / "index.html").exists()
    for name, model in YAML_TABLES.items():
        unique_id = f"model.feature_store.{name}"
        node = manifest["nodes"][unique_id]
        meta = model["feature_table"]
        assert node["meta"]["owner"] == meta["owner"]
        assert parse_duration(node["meta"]["ttl"]) == parse_duration(meta["ttl"])
        assert node["meta"]["keys"] == ", ".join(meta["keys"])
        assert CONTRACT_HEADING in node["description"]
        for column in model["columns"]:
            assert (
                catalog["nodes"][unique_id]["columns"][column["name"]]["type"]
                == column["data_type"]
            )
            if column["name"] not in meta["keys"] and column["name"] != meta["partition"]:
                assert f"`{column['name']}`" in node["description"] or column["name"] in (
                    meta["timestamp"],
                    meta["created_timestamp"],
                )
        assert catalog["nodes"][unique_id]["metadata"]["owner"] == meta["owner"]


YAML_ON_DEMAND = {
    exposure["name"]: exposure["meta"]["on_demand_feature"]
    for exposure in yaml.safe_load(
        (MODELS_DIR / "features" / "on_demand_features.yml").read_text()
    )["exposures"]
}


def test_on_demand_features_are_listed_described_and_found(registry: Registry) -> None:
    assert {s.on_demand for s in registry.on_demand_summaries()} == set(YAML_ON_DEMAND)
    outputs = {
        f.feature for f in registry.feature_summaries() if f.feature.split(":")[0] in YAML_ON_DEMAND
    }
    assert outputs == {
        f"{name}:{o['name']}" for name, spec in YAML_ON_DEMAND.items() for o in spec["outputs"]
    }
    details = registry.describe_on_demand("transaction_amount_anomaly")
    assert details.summary.function == YAML_ON_DEMAND["transaction_amount_anomaly"]["function"]
    assert details.summary.reads_tables == ("user_daily_transactions_7d",)
    assert {(i.name, i.source) for i in details.inputs} == {
        ("amount", "request"),
        ("usd_rate", "request"),
        ("mean_amount_7d", "user_daily_transactions_7d:transaction_amount_mean_7d"),
    }
    assert details.services == ("fraud_detection_v2",)
    hits = registry.search("tenure")
    assert ("on_demand", "customer_tenure") in {(h.kind, h.name) for h in hits}
    assert ("feature", "customer_tenure:tenure_days") in {(h.kind, h.name) for h in hits}


def test_on_demand_features_sit_downstream_of_their_stored_inputs(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    for name, spec in YAML_ON_DEMAND.items():
        node = graph.get(dg.AssetKey(["on_demand", name]))
        stored = {i["feature"].split(":")[0] for i in spec["inputs"] if "feature" in i}
        assert node.parent_keys == {dg.AssetKey(t) for t in stored}, name
        assert not node.is_materializable


def test_the_cli_describes_an_on_demand_feature(
    tmp_path, online_server, capsys, monkeypatch
) -> None:
    settings = make_settings(tmp_path, online_server.endpoint)
    for name, value in {
        "FEATURE_STORE_HOME": str(settings.home),
        "FEATURE_STORE_DYNAMODB_ENDPOINT": online_server.endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["describe", "customer_tenure"]) == 0
    shown = capsys.readouterr().out
    assert "customer_tenure (on-demand)" in shown
    assert "feature_assets.on_demand_features:customer_tenure" in shown
    assert "request_date" in shown and "tenure_days" in shown
    assert cli.main(["tables", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["on_demand"] for r in rows if "on_demand" in r} == set(YAML_ON_DEMAND)
