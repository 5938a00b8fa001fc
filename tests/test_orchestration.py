"""Schedules, sensors, freshness and backfills against a real DagsterInstance and real runs."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from feature_assets import cli
from feature_assets.assets.build import build_definitions
from feature_assets.assets.online_sync import online_asset_key
from feature_assets.assets.runs import QUIET_RUN_CONFIG as QUIET
from feature_assets.assets.runs import prepare_dagster_home
from feature_assets.demo_data import (
    DemoDataSpec,
    generate_landing_data,
    transactions_for_day,
    write_day,
)
from feature_assets.kernel.contract import parse_duration
from feature_assets.kernel.dates import days_between
from feature_assets.kernel.errors import FeatureDefinitionError
from feature_assets.kernel.names import (
    LANDING_GATE,
    LANDING_SENSOR,
    PIPELINE_JOB,
    RANGE_END_TAG,
    RANGE_START_TAG,
    online_asset_path,
    online_sync_step,
)
from feature_assets.kernel.names import ONLINE_SYNC_SENSOR as SYNC_SENSOR
from feature_assets.kernel.names import PUBLISH_CHECK as CHECK_NAME
from feature_assets.kernel.names import refresh_job as refresh_job_name
from feature_assets.kernel.refresh_policy import check_refresh_policy
from feature_assets.sdk import FeatureStore
from resources.local_dynamodb import start_server, stop_server
from resources.settings import PROJECT_ROOT
from tests.builders import (
    BUDGET_FACTOR,
    PipelineEnv,
    backfill_process,
    free_port,
    make_settings,
    pipeline_env,
    publish_rows,
    run_within,
    synthetic_table,
    timed,
    yaml_feature_tables,
)

SPEC = DemoDataSpec(
    users=300, merchants=40, transactions_per_day=1_500, app_events_per_day=900, seed=5
)
TABLE = "user_daily_transactions_7d"
LANDED = (date(2026, 1, 1), date(2026, 1, 16))  # [first, end)

YAML_TABLES = yaml_feature_tables()

pytestmark = pytest.mark.integration


Env = PipelineEnv


def online_items(env: Env, table: str = TABLE) -> dict[int, str]:
    client, online = env.store.online.client, env.store.online
    items = client.scan(TableName=online.table_name(env.store.tables[table]))["Items"]
    return {int(i["user_id"]["N"]): i["event_timestamp"]["S"] for i in items}


@pytest.fixture(scope="module")
def env(tmp_path_factory, online_server) -> Iterator[Env]:
    home = tmp_path_factory.mktemp("orchestration")
    with pipeline_env(home, online_server.endpoint, LANDED, SPEC) as env:
        yield env


days = days_between


def request_ranges(requests: list[dg.RunRequest]) -> dict[str, tuple[str, str]]:
    return {
        "/".join(r.asset_selection[0].path): (r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG])
        for r in requests
    }


def test_a_new_landing_day_rebuilds_exactly_the_partitions_that_read_it(env: Env) -> None:
    requests, cursor = env.tick(LANDING_SENSOR, None)
    assert requests == [] and cursor  # the first tick records what is already there

    new_day = LANDED[1]  # 2026-01-16, card transactions only
    write_day(env.settings.landing_dir, new_day, transactions_for_day(new_day, SPEC))
    requests, next_cursor = env.tick(LANDING_SENSOR, cursor)
    # Both tables reading card_transactions, over [day, day + window]; the others not at all.
    assert request_ranges(requests) == {
        TABLE: ("2026-01-16", "2026-01-23"),
        "user_category_daily_spend_30d": ("2026-01-16", "2026-02-15"),
    }
    assert env.tick(LANDING_SENSOR, next_cursor)[0] == []  # nothing twice
    again, _ = env.tick(LANDING_SENSOR, cursor)  # a tick whose cursor was lost ...
    assert [r.run_key for r in again] == [r.run_key for r in requests]  # ... dedupes by run key

    # A replaced (corrected) old day counts as new too.
    old = date(2026, 1, 3)
    write_day(env.settings.landing_dir, old, transactions_for_day(old, SPEC).slice(0, 100))
    requests, _ = env.tick(LANDING_SENSOR, next_cursor)
    assert request_ranges(requests)[TABLE] == ("2026-01-03", "2026-01-10")
    write_day(env.settings.landing_dir, old, transactions_for_day(old, SPEC))

    # The request runs the table, and its blocking check, over exactly that range.
    result = env.launch(next(r for r in requests if r.asset_selection == [dg.AssetKey(TABLE)]))
    assert result.success
    evaluations = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    assert all(e.passed for e in evaluations)
    assert sorted(
        e.partition
        for e in evaluations
        if e.check_name == CHECK_NAME and e.asset_key == dg.AssetKey(TABLE)
    ) == [d.isoformat() for d in days(date(2026, 1, 3), date(2026, 1, 10))]  # one per day
    table = env.store.tables[TABLE]
    assert env.store.offline.published_days(table) == days(date(2026, 1, 3), date(2026, 1, 10))


def test_a_five_day_backfill_is_synced_as_one_range_once(env: Env) -> None:
    _, cursor = env.tick(SYNC_SENSOR, None)
    table = env.store.tables["customer_daily_engagement_7d"]
    refresh = env.defs.resolve_job_def(refresh_job_name(table.name)).execute_in_process(
        instance=env.instance,
        tags={RANGE_START_TAG: "2026-01-08", RANGE_END_TAG: "2026-01-12"},
        run_config=QUIET,
    )
    assert refresh.success
    assert not any(e.step_key and e.step_key.startswith("online__") for e in refresh.all_events)

    requests, next_cursor = env.tick(SYNC_SENSOR, cursor)
    assert request_ranges(requests) == {
        "/".join(online_asset_path("customer_daily_engagement_7d")): ("2026-01-08", "2026-01-12")
    }
    assert env.tick(SYNC_SENSOR, next_cursor)[0] == []
    assert [r.run_key for r in env.tick(SYNC_SENSOR, cursor)[0]] == [r.run_key for r in requests]

    assert env.launch(requests[0]).success
    offline = env.store.offline
    newest = offline.rows_to_serve(table, days(date(2026, 1, 8), date(2026, 1, 12))).to_pandas()
    client = env.store.online.client
    items = client.scan(TableName=env.store.online.table_name(table))["Items"]
    online = {int(i["customer_id"]["N"]): float(i["engagement_score_7d"]["N"]) for i in items}
    # Every customer of all five days is online, each with its newest day's score.
    assert online == dict(
        zip(newest["customer_id"], newest["engagement_score_7d"].astype(float), strict=True)
    )
    assert len(online) == len(
        set().union(
            *(
                set(offline.read_partition(table, d)["customer_id"])
                for d in days(date(2026, 1, 8), date(2026, 1, 12))
            )
        )
    )


def test_a_run_that_synced_itself_is_not_synced_again(env: Env) -> None:
    _, cursor = env.tick(SYNC_SENSOR, None)
    tables = [env.store.tables[TABLE]]
    result = env.defs.resolve_job_def(PIPELINE_JOB).execute_in_process(
        instance=env.instance,
        asset_selection=[dg.AssetKey(TABLE), online_asset_key(tables[0])],
        tags={RANGE_START_TAG: "2026-01-12", RANGE_END_TAG: "2026-01-12"},
        run_config=QUIET,
    )
    assert result.success
    assert env.tick(SYNC_SENSOR, cursor)[0] == []


def test_a_partition_whose_check_failed_is_never_synced_nor_retried(env: Env, tmp_path) -> None:
    project = tmp_path / "dbt_project"
    shutil.copytree(
        PROJECT_ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs")
    )
    model = project / "models" / "features" / f"{TABLE}.sql"
    model.write_text(
        model.read_text().rstrip()
        + "\nunion all by name (select * replace (-1 as transaction_count_7d) from final limit 1)\n"
    )
    bad = build_definitions(replace(env.settings, dbt_project_dir=project))
    _, cursor = env.tick(SYNC_SENSOR, None)
    table = env.store.tables[TABLE]
    before = online_items(env)
    result = bad.resolve_job_def(refresh_job_name(table.name)).execute_in_process(
        instance=env.instance,
        tags={RANGE_START_TAG: "2026-01-14", RANGE_END_TAG: "2026-01-15"},
        run_config=QUIET,
        raise_on_error=False,
    )
    assert not result.success
    evaluations = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    # The landing gate passed (the raw day is fine); the built partition failed its check.
    assert [(e.check_name, e.passed) for e in evaluations if e.check_name == LANDING_GATE] == [
        (LANDING_GATE, True)
    ]
    assert sorted((e.partition, e.passed) for e in evaluations if e.check_name == CHECK_NAME) == [
        ("2026-01-14", False),
        ("2026-01-15", False),
    ]
    assert not any(e.event_type_value == "STEP_RESTARTED" for e in result.all_events)
    assert date(2026, 1, 15) not in env.store.offline.published_days(table)
    assert env.tick(SYNC_SENSOR, cursor)[0] == []
    assert online_items(env) == before


def expected_interval_hours(meta: dict) -> int:
    """The README's rule, computed from the YAML alone."""
    hours = [24] + [
        parse_duration(meta[f]).total_seconds() / 3600 / 2 for f in ("freshness", "ttl")
    ]
    return max(h for h in (1, 2, 3, 4, 6, 8, 12, 24) if h <= min(hours))


@pytest.mark.parametrize("name", sorted(YAML_TABLES))
def test_each_table_has_a_schedule_at_the_cadence_its_contract_implies(env: Env, name: str) -> None:
    hours = expected_interval_hours(YAML_TABLES[name]["feature_table"])
    [schedule] = [s for s in env.defs.schedules if s.job_name == f"refresh_{name}"]
    assert schedule.cron_schedule == ("15 0 * * *" if hours == 24 else f"15 */{hours} * * *")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    tick = datetime(2026, 3, 5, 12, 15, tzinfo=UTC)
    context = dg.build_schedule_context(
        scheduled_execution_time=tick, repository_def=env.defs.get_repository_def()
    )
    data = schedule.evaluate_tick(context)
    [request] = data.run_requests
    assert request.partition_key == "2026-03-04"  # the newest complete day


def test_the_demo_tables_get_different_cadences() -> None:
    cadences = {expected_interval_hours(t["feature_table"]) for t in YAML_TABLES.values()}
    assert cadences == {6, 12, 24}


@pytest.mark.parametrize(
    ("ttl", "freshness", "ok"),
    [
        ("36h", "1d", True),
        ("35h", "1d", False),
        ("2d", "1d", True),
        ("1d", None, False),
        ("12h", "1d", False),
    ],
)
def test_an_online_ttl_shorter_than_a_partition_plus_the_refresh_interval_fails_to_load(
    ttl: str, freshness: str | None, ok: bool
) -> None:
    table = replace(
        synthetic_table("user_daily_clicks_1d", ttl=parse_duration(ttl)),
        freshness=parse_duration(freshness) if freshness else None,
    )
    if ok:
        check_refresh_policy(table)
        return
    with pytest.raises(FeatureDefinitionError) as error:
        check_refresh_policy(table)
    assert "'user_daily_clicks_1d', field 'ttl'" in str(error.value)
    check_refresh_policy(replace(table, online=False))  # offline-only tables may expire


def test_cli_reports_a_table_past_its_freshness_sla_as_stale(
    tmp_path, online_server, monkeypatch, capsys
) -> None:
    settings = make_settings(tmp_path, online_server.endpoint)
    monkeypatch.setenv("FEATURE_STORE_HOME", str(settings.home))
    store = FeatureStore.from_settings(settings)
    table = store.tables["customer_daily_balance_30d"]  # freshness 1d
    day = date(2026, 4, 10)
    publish_rows(
        store.offline,
        table,
        [
            {
                "customer_id": 1,
                "feature_date": day,
                "event_timestamp": datetime(2026, 4, 11),
                "created_at": datetime(2026, 4, 11),
                **dict.fromkeys(table.feature_names, 1),
            }
        ],
    )

    def freshness(now: str) -> tuple[int, dict[str, str]]:
        code = cli.main(["freshness", "--now", now])
        lines = capsys.readouterr().out.splitlines()[1:]
        rows = {line.split()[0]: line for line in lines}
        return code, rows

    # Day 11 is due one day (the SLA) after it ends: by 2026-04-13 00:00.
    code, rows = freshness("2026-04-12T23:59")
    assert "fresh" in rows[table.name] and "STALE" in rows["customer_daily_engagement_7d"]
    assert code == 1  # tables never published are stale too
    code, rows = freshness("2026-04-13T00:01")
    assert "STALE (1 day(s) behind)" in rows[table.name]


def test_instance_retries_crashed_runs_but_not_failed_steps(tmp_path) -> None:
    home = prepare_dagster_home(tmp_path)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_retries_retry_on_asset_or_op_failure is False
        assert instance.freshness_enabled


def test_the_online_sync_step_retries_until_the_store_is_back(env: Env, tmp_path) -> None:
    table = env.store.tables[TABLE]
    port = free_port()
    # One botocore attempt per call, so the step's Dagster retry, not botocore's, meets the outage.
    down = replace(
        env.settings, dynamodb_endpoint=f"http://127.0.0.1:{port}", dynamodb_max_attempts=1
    )
    defs = build_definitions(down)
    server_home = tmp_path / "late_server"
    # Newer than any day the other tests publish, so its rows win and are written.
    tags = {RANGE_START_TAG: "2026-01-13", RANGE_END_TAG: "2026-01-13"}
    published = env.defs.resolve_job_def(refresh_job_name(table.name)).execute_in_process(
        instance=env.instance, tags=tags, run_config=QUIET
    )
    assert published.success
    # The store comes back while the sync step waits for its first retry.
    starter = threading.Timer(2.0, lambda: start_server(server_home, port, "moto"))
    starter.start()
    try:
        result = defs.resolve_job_def(PIPELINE_JOB).execute_in_process(
            instance=env.instance,
            asset_selection=[online_asset_key(table)],
            tags=tags,
            run_config=QUIET,
            raise_on_error=False,
        )
    finally:
        starter.join()
        stop_server(server_home)
    assert result.success
    assert any(e.event_type_value == "STEP_RESTARTED" for e in result.all_events)
    synced = result.asset_materializations_for_node(online_sync_step(TABLE))
    assert synced and synced[-1].metadata["items_written"].value > 0


def test_eight_partitions_launched_at_once_all_publish_and_sync(tmp_path, online_server) -> None:
    settings = make_settings(tmp_path, online_server.endpoint)
    generate_landing_data(settings.landing_dir, date(2026, 1, 1), date(2026, 1, 16), SPEC)
    first = date(2026, 1, 8)

    def backfill(day: date) -> subprocess.Popen:
        return backfill_process(settings, day, day, TABLE)

    # One day alone first: its duration is the unit the eight runs' budget is derived from
    # (they share two cores and queue at the table's publish and sync pools).
    (calibration,), unit = timed(
        lambda: run_within([backfill(first - timedelta(days=1))], 3_600, "one-day backfill")
    )
    assert "succeeded" in calibration[0], calibration[0]
    runs = [backfill(day) for day in days(first, first + timedelta(days=7))]
    outputs = run_within(runs, BUDGET_FACTOR * len(runs) * unit, "eight concurrent backfills")
    for run, (out, _) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, out
        assert "lock" not in out.lower()

    store = FeatureStore.from_settings(settings)
    table = store.tables[TABLE]
    assert store.offline.published_days(table) == days(
        first - timedelta(days=1), first + timedelta(days=7)
    )
    for day in store.offline.published_days(table):
        # Every transaction of the 7 days up to each day is counted once: no lost rows.
        assert (
            store.offline.read_partition(table, day)["transaction_count_7d"].sum()
            == 7 * SPEC.transactions_per_day
        )
    winners = store.offline.latest_rows(table).to_pandas()
    items = store.online.client.scan(TableName=store.online.table_name(table))["Items"]
    online = {int(i["user_id"]["N"]): int(i["transaction_count_7d"]["N"]) for i in items}
    assert online == dict(zip(winners["user_id"], winners["transaction_count_7d"], strict=True))
