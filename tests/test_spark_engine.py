"""The engine setting: the same models built on DuckDB or Spark publish the same rows, and
bad settings are clear errors.

The Spark join plan's correctness lives with the join's oracle tests (`JOIN_ENGINES`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import dagster as dg
import duckdb
import pytest

from feature_assets.assets.build import build_definitions
from feature_assets.assets.runs import materialize_range
from feature_assets.demo_data import DemoDataSpec, generate_landing_data
from feature_assets.kernel.errors import CallerError
from resources.offline_store import OfflineStore
from resources.settings import Settings
from resources.spark_session import _conf_from_env
from resources.sql import literal
from tests.builders import make_settings

SPEC = DemoDataSpec(users=300, merchants=40, transactions_per_day=1_500, seed=5)
LANDED = (date(2026, 1, 1), date(2026, 1, 11))
FIRST, LAST = date(2026, 1, 8), date(2026, 1, 10)


@pytest.mark.spark
def test_both_engines_publish_the_same_rows_from_the_same_models(
    tmp_path, online_server, demo_tables
) -> None:
    """A few days of the seeded demo data through the whole pipeline (build, check, publish,
    sync) on each engine: every published day holds the same rows, of the same types (the
    created time, when the run computed a row, aside)."""
    stores = {}
    for engine in ("duckdb", "spark"):
        settings = replace(make_settings(tmp_path / engine, online_server.endpoint), engine=engine)
        generate_landing_data(settings.landing_dir, *LANDED, SPEC)
        with dg.instance_for_test() as instance:
            result = materialize_range(build_definitions(settings), instance, FIRST, LAST)
        assert result.success, f"the {engine} run failed"
        stores[engine] = OfflineStore.from_settings(settings)
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
