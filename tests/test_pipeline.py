"""The walking skeleton end to end: real dbt runs, real Dagster runs, a real DynamoDB-compatible server."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path

import boto3
import dagster as dg
import pandas as pd
import pytest

from feature_assets.assets.build import build_definitions
from feature_assets.assets.feature_tables import parse_to_start_from, run_environment
from feature_assets.assets.online_sync import online_asset_key
from feature_assets.assets.runs import QUIET_RUN_CONFIG as QUIET
from feature_assets.assets.runs import materialize_range
from feature_assets.demo_data import (
    DemoDataSpec,
    generate_landing_data,
    transactions_for_day,
    write_day,
)
from feature_assets.kernel.contract import FeatureTable
from feature_assets.kernel.names import PUBLISH_CHECK as CHECK_NAME
from feature_assets.kernel.names import online_sync_step
from feature_assets.sdk import FeatureStore
from resources.dbt_child import dbt_executable
from resources.settings import PROJECT_ROOT, Settings
from tests.builders import BUDGET_FACTOR, make_settings, settings_env, timed

TABLE = "user_daily_transactions_7d"
SPEC = DemoDataSpec(users=400, merchants=50, transactions_per_day=2_500, seed=11)
DAY_A, DAY_B, DAY_C = date(2026, 1, 8), date(2026, 1, 9), date(2026, 1, 10)

pytestmark = pytest.mark.integration


@dataclass
class Pipeline:
    settings: Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance
    store: FeatureStore
    started: float = 0.0
    unit: float = 0.0  # how long the fixture's two-day run took: the unit of test budgets

    @property
    def table(self) -> FeatureTable:
        return self.store.tables[TABLE]

    def run(self, first: date, last: date, **kwargs) -> dg.ExecuteInProcessResult:
        return materialize_range(
            self.defs,
            self.instance,
            first,
            last,
            run_config=kwargs.pop("run_config", QUIET),
            **kwargs,
        )

    def online_items(self) -> list[dict]:
        client = self.store.online.client
        items = client.scan(TableName=self.store.online.table_name(self.table))["Items"]
        return sorted(items, key=lambda item: int(item["user_id"]["N"]))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, online_server) -> Iterator[Pipeline]:
    settings = make_settings(tmp_path_factory.mktemp("pipeline"), online_server.endpoint)
    generate_landing_data(settings.landing_dir, date(2026, 1, 1), date(2026, 1, 11), SPEC)
    with dg.instance_for_test() as instance:
        defs = build_definitions(settings)
        pipeline = Pipeline(
            settings, defs, instance, FeatureStore.from_settings(settings), time.time()
        )
        result, pipeline.unit = timed(lambda: pipeline.run(DAY_A, DAY_B))
        assert result.success
        yield pipeline


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_evaluations(result: dg.ExecuteInProcessResult) -> list:
    return [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]


def test_materialized_partitions_are_validated_published_and_served(pipeline) -> None:
    offline = pipeline.store.offline
    assert offline.published_days(pipeline.table) == [DAY_A, DAY_B]
    day_b = offline.read_partition(pipeline.table, DAY_B)
    # Every transaction of the 7 days up to DAY_B is counted exactly once in DAY_B's rows.
    assert day_b["transaction_count_7d"].sum() == 7 * SPEC.transactions_per_day
    day_a = offline.read_partition(pipeline.table, DAY_A)
    # One item per user seen on either day, each holding that user's newest row.
    items = {
        int(item["user_id"]["N"]): item["event_timestamp"]["S"] for item in pipeline.online_items()
    }
    assert set(items) == set(day_a["user_id"]) | set(day_b["user_id"])
    assert {items[u] for u in day_b["user_id"]} == {"2026-01-10T00:00:00.000000Z"}


def test_a_succeeded_dbt_run_leaves_no_target_folder_behind(pipeline) -> None:
    target = PROJECT_ROOT / "dbt_project" / "target"
    # Folders are named <op>-<run id[:7]>-<uuid[:7]>; the target is shared with other test
    # files running at the same time (a run killed on purpose there leaves its folder).
    succeeded = {
        run.run_id[:7]
        for run in pipeline.instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
    }
    assert succeeded
    left = [p for p in target.glob("feature_tables-*") if p.name.split("-")[1] in succeeded]
    assert left == []


def test_a_build_starts_from_the_parse_its_homes_last_build_left(pipeline, tmp_path) -> None:
    """dbt re-parses the sources' YAML when the landing folder differs from its saved parse's:
    the project's parse (from `dbt parse`) re-parses it for every home; the parse a build of
    this home left re-parses nothing."""
    home_parse = pipeline.settings.dbt_parse_file
    assert home_parse.exists()
    project = pipeline.settings.dbt_project_dir

    def files_parsed(parse_file: Path) -> int:
        target = tmp_path / parse_file.parent.name
        env = run_environment(
            DAY_A,
            DAY_B,
            pipeline.settings.landing_dir,
            str(tmp_path / "{table}.parquet"),
            parse_file,
            tmp_path / "spark",
        )
        command = [dbt_executable(), "parse", "--quiet", "--target-path", str(target)]
        command += ["--profiles-dir", str(project)]
        subprocess.run(command, cwd=project, env={**os.environ, **env}, check=True)
        info = json.loads((target / "perf_info.json").read_text())
        assert info["is_partial_parse_enabled"]
        return info["parsed_path_count"]

    assert parse_to_start_from(home_parse, project) == home_parse
    assert files_parsed(project / "target" / "partial_parse.msgpack") >= 1
    assert files_parsed(home_parse) == 0


def test_boto3_get_item_returns_plain_numbers_equal_to_the_offline_value(pipeline) -> None:
    latest = pipeline.store.offline.read_partition(pipeline.table, DAY_B).set_index("user_id")
    client = boto3.client(
        "dynamodb",
        endpoint_url=pipeline.settings.dynamodb_endpoint,
        region_name="us-east-1",
        aws_access_key_id="any",
        aws_secret_access_key="any",
    )
    for user_id in latest.index[:5]:
        item = client.get_item(
            TableName=pipeline.store.online.table_name(pipeline.table),
            Key={"user_id": {"N": str(user_id)}},
        )["Item"]
        for feature in pipeline.table.features:
            expected = latest.loc[user_id, feature.name]
            if pd.isna(expected):
                assert item[feature.name] == {"NULL": True}
            elif feature.logical_type == "int":
                assert int(item[feature.name]["N"]) == expected
            else:
                assert float(item[feature.name]["N"]) == expected


def test_online_value_equals_training_set_value_at_now(pipeline) -> None:
    users = (
        pipeline.store.offline.read_partition(pipeline.table, DAY_B)["user_id"].head(20).tolist()
    )
    now = datetime(2026, 1, 10, 6)
    features = [f"{TABLE}:{f}" for f in pipeline.table.feature_names]
    online = pipeline.store.get_online_features(
        features, [{"user_id": u} for u in users], now=now
    ).to_df()
    training = pipeline.store.get_historical_features(
        pd.DataFrame({"user_id": users, "event_timestamp": [now] * len(users)}), features
    ).to_pandas()
    pd.testing.assert_frame_equal(
        online[list(pipeline.table.feature_names)],
        training[list(pipeline.table.feature_names)],
        check_dtype=False,
    )


def test_syncing_an_old_partition_after_a_newer_one_leaves_the_newer_value(pipeline) -> None:
    before = pipeline.online_items()
    result = pipeline.run(DAY_A, DAY_A, asset_selection=[online_asset_key(pipeline.table)])
    assert result.success
    assert pipeline.online_items() == before
    # The forced correction path does move values back, which is what the guard prevents.
    forced = pipeline.run(
        DAY_A,
        DAY_A,
        asset_selection=[online_asset_key(pipeline.table)],
        run_config={**QUIET, "ops": {online_sync_step(TABLE): {"config": {"force": True}}}},
    )
    assert forced.success
    assert pipeline.online_items() != before
    assert pipeline.run(DAY_B, DAY_B, asset_selection=[online_asset_key(pipeline.table)]).success
    assert pipeline.online_items() == before


def test_partition_with_bad_rows_fails_its_check_and_never_reaches_the_online_store(
    pipeline, tmp_path
) -> None:
    project = tmp_path / "dbt_project"
    shutil.copytree(
        PROJECT_ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs")
    )
    model = project / "models" / "features" / f"{TABLE}.sql"
    sql = model.read_text()
    assert sql.rstrip().endswith("select * from final")
    model.write_text(
        sql.rstrip()
        + """
union all by name (select * replace (cast(null as bigint) as user_id) from final limit 1)
union all by name (select * replace (999999 as user_id, -5 as transaction_count_7d) from final limit 1)
union all by name (select * from final order by user_id limit 1)
"""
    )
    published = pipeline.store.offline.partition_path(pipeline.table, DAY_B)
    digest, items = file_digest(published), pipeline.online_items()

    bad_settings = replace(pipeline.settings, dbt_project_dir=project)
    result = materialize_range(
        build_definitions(bad_settings), pipeline.instance, DAY_B, DAY_B, run_config=QUIET
    )

    assert not result.success
    evaluations = {e.asset_key.to_user_string(): e for e in check_evaluations(result)}
    evaluation = evaluations.pop(TABLE)
    assert evaluation.check_name == CHECK_NAME and not evaluation.passed
    # The other tables of the same run are unaffected: validated and published.
    assert evaluations and all(e.passed for e in evaluations.values())
    message = evaluation.description
    assert "feature table 'user_daily_transactions_7d', partition 2026-01-09" in message
    assert "column 'user_id': not_nullable" in message
    assert "column 'transaction_count_7d': greater_than_or_equal_to(0)" in message
    assert "duplicate key" in message
    assert file_digest(published) == digest  # the published day is still the good one
    assert pipeline.online_items() == items
    sync_steps = [
        e for e in result.all_events if e.step_key == online_sync_step(TABLE) and e.is_step_success
    ]
    assert sync_steps == []


def test_rebuilding_a_partition_replaces_that_day_and_nothing_else(pipeline) -> None:
    offline = pipeline.store.offline
    day_a_path = offline.partition_path(pipeline.table, DAY_A)
    digest_a, mtime_a = file_digest(day_a_path), day_a_path.stat().st_mtime_ns
    before_b = offline.read_partition(pipeline.table, DAY_B)
    # Upstream re-delivers DAY_B with fewer transactions.
    smaller = transactions_for_day(DAY_B, SPEC).slice(0, 1_000)
    write_day(pipeline.settings.landing_dir, DAY_B, smaller)

    assert pipeline.run(DAY_B, DAY_B).success

    after_b = offline.read_partition(pipeline.table, DAY_B)
    assert offline.published_days(pipeline.table) == [DAY_A, DAY_B]
    assert file_digest(day_a_path) == digest_a and day_a_path.stat().st_mtime_ns == mtime_a
    removed = SPEC.transactions_per_day - 1_000
    assert after_b["transaction_count_7d"].sum() == before_b["transaction_count_7d"].sum() - removed
    assert after_b["created_at"].min() > before_b["created_at"].max()
    write_day(pipeline.settings.landing_dir, DAY_B, transactions_for_day(DAY_B, SPEC))
    assert pipeline.run(DAY_B, DAY_B).success


def test_training_set_read_succeeds_while_another_partition_materializes(pipeline) -> None:
    env = settings_env(pipeline.settings)
    users = (
        pipeline.store.offline.read_partition(pipeline.table, DAY_B)["user_id"].head(50).tolist()
    )
    entity_df = pd.DataFrame(
        {"user_id": users, "event_timestamp": [datetime(2026, 1, 10)] * len(users)}
    )
    features = [f"{TABLE}:transaction_count_7d"]
    expected = pipeline.store.get_historical_features(entity_df, features).to_pandas()

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "feature_assets.cli",
            "materialize",
            DAY_C.isoformat(),
            DAY_C.isoformat(),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    reads_during_run = 0
    try:
        while process.poll() is None:
            result = pipeline.store.get_historical_features(entity_df, features).to_pandas()
            pd.testing.assert_frame_equal(result, expected)
            if process.poll() is None:
                reads_during_run += 1
            time.sleep(0.05)
        output = process.stdout.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert reads_during_run > 10
    assert DAY_C in pipeline.store.offline.published_days(pipeline.table)


def test_resync_rebuilds_a_lost_online_store_from_the_offline_store(pipeline) -> None:
    before = pipeline.online_items()
    pipeline.store.online.delete_table(pipeline.table)  # the embedded server lost its state
    done = subprocess.run(
        [sys.executable, "-m", "feature_assets.cli", "resync"],
        env=settings_env(pipeline.settings),
        capture_output=True,
        text=True,
        timeout=BUDGET_FACTOR * pipeline.unit,
    )
    assert done.returncode == 0, done.stderr
    after = pipeline.online_items()
    assert [item["user_id"] for item in after] == [item["user_id"] for item in before]
    assert after == before  # each entity's newest published row, as the partition syncs left it
