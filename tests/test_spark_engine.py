"""The engine setting: the same models built on DuckDB or Spark publish the same rows, and
bad settings are clear errors.

The Spark join plan's correctness lives with the join's oracle tests (`JOIN_ENGINES`)."""

from __future__ import annotations

import argparse
import uuid
from dataclasses import replace
from datetime import date, timedelta

import dagster as dg
import duckdb
import pytest

from feature_assets.assets.build import build_definitions
from feature_assets.assets.runs import materialize_range
from feature_assets.cli.commands import cmd_resync
from feature_assets.demo_data import DemoDataSpec, generate_landing_data
from feature_assets.kernel.errors import CallerError
from resources.item_sync import SyncState
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from resources.settings import Settings
from resources.spark_session import _conf_from_env, spark_session
from resources.spark_sync import spark_sync
from resources.sql import literal
from tests.builders import end_of, make_settings, publish_rows, synthetic_table

SPEC = DemoDataSpec(users=300, merchants=40, transactions_per_day=1_500, seed=5)
LANDED = (date(2026, 1, 1), date(2026, 1, 11))
FIRST, LAST = date(2026, 1, 8), date(2026, 1, 10)


@pytest.mark.spark
def test_both_engines_publish_the_same_rows_from_the_same_models(
    tmp_path, online_server, demo_tables
) -> None:
    """A few days of the seeded demo data through the whole pipeline (build, check, publish,
    sync) on each engine: every published day holds the same rows, of the same types (the
    created time, when the run computed a row, aside). Then a resync on Spark of the lost
    online tables puts back the items the embedded syncs wrote."""
    stores, settings = {}, {}
    for engine in ("duckdb", "spark"):
        settings[engine] = replace(
            make_settings(tmp_path / engine, online_server.endpoint), engine=engine
        )
        generate_landing_data(settings[engine].landing_dir, *LANDED, SPEC)
        with dg.instance_for_test() as instance:
            result = materialize_range(build_definitions(settings[engine]), instance, FIRST, LAST)
        assert result.success, f"the {engine} run failed"
        stores[engine] = OfflineStore.from_settings(settings[engine])
    # Spark built it: its session in dbt made the landing views' database in its warehouse.
    assert list((stores["spark"].spark_work_dir / "warehouse").glob("raw.db"))
    assert not (stores["duckdb"].spark_work_dir / "warehouse").exists()
    con = duckdb.connect()
    for table in demo_tables.values():
        days = stores["duckdb"].published_days(table)
        assert days == stores["spark"].published_days(table) and days, table.name
        for day in days:
            on = {e: literal(stores[e].partition_path(table, day)) for e in stores}
            rows = {e: con.sql(f"SELECT * EXCLUDE (created_at) FROM {on[e]}") for e in stores}
            assert rows["duckdb"].types == rows["spark"].types, (table.name, day)
            differ = con.sql(
                f"(SELECT * EXCLUDE (created_at) FROM {on['duckdb']} EXCEPT ALL "
                f"SELECT * EXCLUDE (created_at) FROM {on['spark']}) UNION ALL "
                f"(SELECT * EXCLUDE (created_at) FROM {on['spark']} EXCEPT ALL "
                f"SELECT * EXCLUDE (created_at) FROM {on['duckdb']})"
            ).fetchall()
            assert differ == [], f"{table.name} {day}: {len(differ)} rows differ, e.g. {differ[:3]}"
            count = con.sql(f"SELECT count(*) FROM {on['duckdb']}").fetchall()[0][0]
            assert count > 0, f"{table.name} {day}: no rows to compare"

    online = {engine: OnlineStore.from_settings(settings[engine]) for engine in settings}
    # Every page: the session's server holds the tables of many tests (100 names a page).
    pages = online["spark"].client.get_paginator("list_tables").paginate()
    names = [
        n
        for page in pages
        for n in page["TableNames"]
        if n.startswith(settings["spark"].table_prefix)
    ]
    assert len(names) == 4  # three tables and one co-located service
    for name in names:
        online["spark"].delete_named_table(name)
    assert cmd_resync(argparse.Namespace(), settings["spark"]) == 0
    for name in names:
        other = settings["duckdb"].table_prefix + name.removeprefix(settings["spark"].table_prefix)
        assert without_created(online["spark"], name) == without_created(online["duckdb"], other)


def test_the_engine_setting_reaches_the_offline_store(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FEATURE_STORE_HOME", str(tmp_path))
    monkeypatch.delenv("FEATURE_STORE_ENGINE", raising=False)
    assert OfflineStore.from_settings(Settings.from_env()).engine == "duckdb"
    monkeypatch.setenv("FEATURE_STORE_ENGINE", "spark")
    assert OfflineStore.from_settings(Settings.from_env()).engine == "spark"


def test_an_unknown_engine_names_the_setting_and_the_choices(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FEATURE_STORE_HOME", str(tmp_path))
    monkeypatch.setenv("FEATURE_STORE_ENGINE", "snowflake")
    with pytest.raises(CallerError, match=r"FEATURE_STORE_ENGINE='snowflake'.*duckdb, spark"):
        Settings.from_env()


def test_spark_conf_pairs_are_read_and_a_malformed_one_is_named(monkeypatch) -> None:
    monkeypatch.setenv(
        "FEATURE_STORE_SPARK_CONF", "spark.executor.memory=4g, spark.sql.shuffle.partitions=64"
    )
    assert _conf_from_env() == {
        "spark.executor.memory": "4g",
        "spark.sql.shuffle.partitions": "64",
    }
    monkeypatch.setenv("FEATURE_STORE_SPARK_CONF", "spark.executor.memory=4g,oops")
    with pytest.raises(CallerError, match="'oops' is not key=value"):
        _conf_from_env()


def scan(online: OnlineStore, table) -> list[dict]:
    items = online.client.scan(TableName=online.table_name(table), ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: int(item["user_id"]["N"]))


@pytest.mark.spark
def test_spark_partitions_write_the_embedded_syncs_items_and_never_go_back_in_time(
    tmp_path, online_server
) -> None:
    table = synthetic_table(
        ttl=timedelta(days=3), features=("value_0", "ratio"), feature_types={"ratio": "float"}
    )
    offline = OfflineStore(root=str(tmp_path / "offline"), staging_root=str(tmp_path / "staging"))
    days = [date(2026, 1, d) for d in (1, 2, 3)]
    for i, day in enumerate(days):
        users = range(i * 50, 400 + i * 50)  # later days hold most users again, newer
        publish_rows(
            offline,
            table,
            [
                {
                    "user_id": u,
                    "feature_date": day,
                    "event_timestamp": end_of(day),
                    "created_at": end_of(day),
                    "value_0": u * 10 + i,
                    "ratio": float("nan") if u % 7 == 0 else u / 3,
                }
                for u in users
            ],
        )
    embedded, spark_written = (
        OnlineStore(endpoint_url=online_server.endpoint, table_prefix=f"t{uuid.uuid4().hex[:8]}_")
        for _ in range(2)
    )
    embedded.write_rows(table, offline.rows_to_serve(table, days))
    state = SyncState(offline.root, table, spark_written.table_name(table))
    state.save({}, "a table since recreated", 0)
    spark = spark_session(tmp_path / "spark")
    counts = spark_sync(spark, offline, spark_written, table, days, partitions=4)
    assert counts.written == 500 and counts.partitions > 1  # written from several partitions
    assert scan(spark_written, table) == scan(embedded, table)
    assert not state.path.exists()  # the change-only sync reads what is stored next time
    # Day 1 again: only users whose newest row it holds (0-49, already written) qualify.
    before = scan(spark_written, table)
    again = spark_sync(spark, offline, spark_written, table, days[:1], partitions=3)
    assert again.written == 50
    assert scan(spark_written, table) == before


def without_created(online: OnlineStore, name: str) -> list[dict]:
    """A table's items, less the attributes that hold when a run computed a row."""
    items = online.client.scan(TableName=name, ConsistentRead=True)["Items"]
    kept = [{k: v for k, v in item.items() if "created" not in k} for item in items]
    return sorted(kept, key=lambda item: sorted((k, str(v)) for k, v in item.items()))
