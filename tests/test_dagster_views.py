"""What the Dagster UI shows, read through its own GraphQL: a check outcome per day of a
single-run range (Passed, or Failed with pandera's samples), partition counts equal to the
built days, and each published day's feature statistics."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from feature_assets.assets.build import build_definitions
from feature_assets.assets.runs import materialize_range
from feature_assets.demo_data import DemoDataSpec, generate_landing_data
from feature_assets.kernel.dates import days_between
from feature_assets.kernel.names import PUBLISH_CHECK, online_asset_path, table_asset_path
from feature_assets.sdk import FeatureStore
from resources.settings import PROJECT_ROOT
from tests.builders import make_settings, settings_env

pytestmark = pytest.mark.integration

TABLE = "user_daily_transactions_7d"
SPEC = DemoDataSpec(users=120, merchants=20, transactions_per_day=600, seed=11)
LAST = datetime.now(UTC).date() - timedelta(days=1)
FIRST = LAST - timedelta(days=3)
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}

QUERY = """
query Views($key: AssetKeyInput!, $check: String!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      partitionStats { numMaterialized numPartitions numFailed }
      assetChecksOrError {
        ... on AssetChecks {
          checks {
            name
            partitionStatuses {
              ... on AssetCheckTimePartitionStatuses { ranges { startKey endKey status } }
            }
          }
        }
      }
    }
  }
  assetCheckExecutions(assetKey: $key, checkName: $check, limit: 50) {
    partition
    status
    evaluation {
      severity
      description
      metadataEntries {
        label
        ... on IntMetadataEntry { intValue }
        ... on FloatMetadataEntry { floatValue }
        ... on TableMetadataEntry { table { records } }
      }
    }
  }
}
"""


@pytest.fixture(scope="module")
def views(tmp_path_factory, online_server) -> Iterator:
    """Four days built in one run, partitions starting at the first; the UI's own GraphQL."""
    home = tmp_path_factory.mktemp("views")
    settings = replace(
        make_settings(home, online_server.endpoint), partition_start_date=FIRST.isoformat()
    )
    generate_landing_data(
        settings.landing_dir, FIRST - timedelta(days=7), LAST + timedelta(days=1), SPEC
    )
    with pytest.MonkeyPatch.context() as env, dg.instance_for_test() as instance:
        for name, value in settings_env(settings).items():
            env.setenv(name, value)  # the code server started below reads them
        result = materialize_range(
            build_definitions(settings), instance, FIRST, LAST, run_config=QUIET
        )
        assert result.success
        workspace = str(PROJECT_ROOT / "workspace.yaml")
        with define_out_of_process_context(workspace, None, instance) as context:

            def query() -> dict:
                variables = {"key": {"path": table_asset_path(TABLE)}, "check": PUBLISH_CHECK}
                answer = execute_dagster_graphql(context, QUERY, variables)
                assert not answer.errors, answer.errors
                return answer.data

            yield settings, instance, query


def day_statuses(data: dict) -> dict[date, str]:
    (check,) = [
        c
        for c in data["assetNodeOrError"]["assetChecksOrError"]["checks"]
        if c["name"] == PUBLISH_CHECK
    ]
    return {
        day: r["status"]
        for r in check["partitionStatuses"]["ranges"]
        for day in days_between(date.fromisoformat(r["startKey"]), date.fromisoformat(r["endKey"]))
    }


def latest_by_day(data: dict) -> dict[date, dict]:
    latest: dict[date, dict] = {}
    for execution in data["assetCheckExecutions"]:  # newest first
        latest.setdefault(date.fromisoformat(execution["partition"]), execution)
    return latest


def entries(execution: dict) -> dict:
    return {
        e["label"]: e.get("intValue", e.get("floatValue", e.get("table")))
        for e in execution["evaluation"]["metadataEntries"]
    }


def test_every_day_of_a_range_run_has_its_own_passed_check_and_statistics(views) -> None:
    settings, _, query = views
    data = query()
    assert day_statuses(data) == dict.fromkeys(days_between(FIRST, LAST), "SUCCEEDED")
    stats = data["assetNodeOrError"]["partitionStats"]
    built = len(days_between(FIRST, LAST))
    assert (stats["numPartitions"], stats["numMaterialized"], stats["numFailed"]) == (
        built,
        built,
        0,
    )

    store = FeatureStore.from_settings(settings)
    table = store.tables[TABLE]
    for day, execution in latest_by_day(data).items():
        rows = store.offline.read_partition(table, day)
        metadata = entries(execution)
        assert metadata["rows"] == len(rows), day
        for column in ("transaction_count_7d", "transaction_amount_mean_7d"):
            assert metadata[f"{column}.mean"] == pytest.approx(rows[column].mean()), (day, column)
            assert metadata[f"{column}.max"] == pytest.approx(rows[column].max()), (day, column)
            assert metadata[f"{column}.distinct"] == rows[column].nunique(), (day, column)
            assert metadata[f"{column}.null_rate"] == pytest.approx(rows[column].isna().mean())


def test_a_day_with_bad_rows_fails_on_its_own_with_samples_and_holds_back_its_run(
    views, tmp_path
) -> None:
    settings, instance, query = views
    project = tmp_path / "dbt_project"
    shutil.copytree(
        settings.dbt_project_dir, project, ignore=shutil.ignore_patterns("target", "logs")
    )
    model = project / "models" / "features" / f"{TABLE}.sql"
    sql = model.read_text().rstrip()
    assert sql.endswith("select * from final")
    model.write_text(
        f"{sql}\nunion all by name (select * replace (-5 as transaction_count_7d) from final "
        f"where feature_date = date '{LAST}' order by user_id limit 2)\n"
    )
    bad = replace(settings, dbt_project_dir=project)
    store = FeatureStore.from_settings(settings)
    table = store.tables[TABLE]
    before = {day: store.offline.read_partition(table, day) for day in (LAST - timedelta(1), LAST)}

    result = materialize_range(
        build_definitions(bad),
        instance,
        LAST - timedelta(days=1),
        LAST,
        asset_selection=[dg.AssetKey(table_asset_path(TABLE))],
        run_config=QUIET,
    )

    assert not result.success
    data = query()
    statuses = day_statuses(data)
    assert statuses[LAST] == "FAILED"
    assert statuses[LAST - timedelta(days=1)] == "FAILED"  # held back with it
    assert all(statuses[d] == "SUCCEEDED" for d in days_between(FIRST, LAST - timedelta(2)))
    latest = latest_by_day(data)
    culprit, held = latest[LAST]["evaluation"], latest[LAST - timedelta(1)]["evaluation"]
    assert culprit["severity"] == "ERROR" and f"partition {LAST}" in culprit["description"]
    assert "greater_than_or_equal_to(0)" in culprit["description"]
    samples = entries(latest[LAST])["failure_samples"]["records"]
    assert any('"-5"' in record and "transaction_count_7d" in record for record in samples)
    assert held["severity"] == "WARN" and str(LAST) in held["description"]
    for day, rows in before.items():  # neither day was republished
        assert store.offline.read_partition(table, day).equals(rows), day


def test_storage_metadata_names_where_each_asset_lives(views) -> None:
    settings, _, _ = views
    specs = {s.key: s for s in build_definitions(settings).resolve_all_asset_specs()}
    store = FeatureStore.from_settings(settings)
    offline = specs[dg.AssetKey(table_asset_path(TABLE))].metadata
    assert offline["dagster/uri"] == f"{settings.offline_dir}/{TABLE}"
    assert offline["dagster/storage_kind"] == "parquet" and "dagster/table_name" not in offline
    online = specs[dg.AssetKey(online_asset_path(TABLE))]
    name = store.online.table_name(store.tables[TABLE])
    assert online.metadata["dagster/table_name"] == name
    assert online.metadata["dagster/storage_kind"] == "dynamodb"
    assert name in (online.description or "")


def test_each_day_of_the_online_asset_tells_its_own_items_written(views) -> None:
    settings, instance, _ = views
    store = FeatureStore.from_settings(settings)
    table = store.tables[TABLE]
    # Oracle: the newest row per user over the range (pandas), counted by the day it came from.
    rows = pd.concat(store.offline.read_partition(table, d) for d in days_between(FIRST, LAST))
    newest = rows.sort_values(["event_timestamp", "created_at"]).groupby("user_id").tail(1)
    expected = newest["feature_date"].map(pd.Timestamp).dt.date.value_counts().to_dict()

    records = instance.fetch_materializations(
        dg.AssetKey(online_asset_path(TABLE)), limit=100
    ).records
    written = {
        date.fromisoformat(r.partition_key): r.asset_materialization.metadata for r in records
    }

    assert set(written) == set(days_between(FIRST, LAST))
    assert {day: m["items_written"].value for day, m in written.items()} == {
        day: expected.get(day, 0) for day in days_between(FIRST, LAST)
    }
    assert all(m["items_written_by_run"].value == len(newest) for m in written.values())


def test_syncing_a_day_again_writes_nothing_and_records_what_it_skipped(views) -> None:
    """Runs last in this module: it adds a materialization of the last day."""
    settings, instance, _ = views
    store = FeatureStore.from_settings(settings)
    table = store.tables[TABLE]
    serving = store.offline.rows_to_serve(table, [LAST]).num_rows
    assert serving > 0

    result = materialize_range(
        build_definitions(settings),
        instance,
        LAST,
        LAST,
        asset_selection=[dg.AssetKey(online_asset_path(TABLE))],
        run_config=QUIET,
    )

    assert result.success
    latest = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(online_asset_path(TABLE)), asset_partitions=[LAST.isoformat()]
        ),
        limit=1,
    ).records[0]
    metadata = latest.asset_materialization.metadata
    assert metadata["items_written_by_run"].value == 0
    assert metadata["items_written"].value == 0
    assert metadata["items_skipped"].value == serving
    assert metadata["items_skipped_unchanged"].value == serving
