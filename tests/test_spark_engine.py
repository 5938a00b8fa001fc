"""The engine setting: which engine joins training sets, and clear errors for bad settings.

The Spark plan's correctness lives with the join's oracle tests (`JOIN_ENGINES`)."""

from __future__ import annotations

import pytest

from feature_assets.kernel.errors import CallerError
from resources.offline_store import OfflineStore
from resources.settings import Settings
from resources.spark_session import _conf_from_env


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
