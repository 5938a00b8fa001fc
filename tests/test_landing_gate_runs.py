"""Bad raw data stops a real run at the landing gate: nothing is built, published or synced."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from feature_assets.assets.runs import materialize_range
from feature_assets.demo_data import (
    DAILY_SOURCES,
    DemoDataSpec,
    landing_path,
    write_day,
)
from feature_assets.kernel.names import EMPTY_DAY_MARKER, LANDING_GATE
from tests.builders import PipelineEnv, pipeline_env

SPEC = DemoDataSpec(users=200, merchants=30, transactions_per_day=1_000, app_events_per_day=500)
DAY = date(2026, 1, 8)


Env = PipelineEnv


@pytest.fixture(scope="module")
def env(tmp_path_factory, online_server) -> Iterator[Env]:
    home = tmp_path_factory.mktemp("gates")
    with pipeline_env(
        home, online_server.endpoint, (date(2026, 1, 1), DAY + timedelta(days=1)), SPEC
    ) as env:
        yield env


def duplicated(table: pa.Table) -> pa.Table:
    return pa.concat_tables([table, table.slice(0, 50)])


def unknown_currency(table: pa.Table) -> pa.Table:
    currency = pc.if_else(pc.equal(table["currency"], "GBP"), "JPY", table["currency"])
    return table.set_column(table.schema.get_field_index("currency"), "currency", currency)


def emptied(table: pa.Table) -> pa.Table:
    return table.slice(0, 0)


def stamped_40_days_late(table: pa.Table) -> pa.Table:
    ts = pc.add(table["transaction_timestamp"], pa.scalar(timedelta(days=40), pa.duration("us")))
    index = table.schema.get_field_index("transaction_timestamp")
    return table.set_column(index, "transaction_timestamp", ts)


FAULTS: dict[str, tuple[Callable[[pa.Table], pa.Table], str]] = {
    "duplicated day": (duplicated, "share a key"),
    "currency without a rate": (unknown_currency, "column 'currency'"),
    "0-row landing file": (emptied, "no rows"),
    "timestamps 40 days off": (stamped_40_days_late, "outside the landing day"),
}


def restore(env: Env, day: date) -> None:
    for folder in landing_path(env.settings.landing_dir, day).parent.parent.glob("*"):
        for marker in folder.glob(EMPTY_DAY_MARKER):
            marker.unlink()
    write_day(env.settings.landing_dir, day, DAILY_SOURCES["card_transactions"][1](day, SPEC))


def nothing_published_or_synced(env: Env) -> None:
    for table in env.store.tables.values():
        assert env.store.offline.published_days(table) == [], table.name
        if table.online:
            assert online_item_count(env, table.name) == 0, table.name


def online_item_count(env: Env, table_name: str) -> int:
    online = env.store.online
    name = online.table_name(env.store.tables[table_name])
    try:
        return online.client.scan(TableName=name, Select="COUNT")["Count"]
    except online.client.exceptions.ResourceNotFoundException:
        return 0  # never created: nothing was ever synced


@pytest.mark.parametrize(("fault", "named"), FAULTS.values(), ids=FAULTS)
def test_bad_raw_data_fails_the_gate_and_nothing_is_published_or_synced(
    env: Env, fault: Callable[[pa.Table], pa.Table], named: str
) -> None:
    path = landing_path(env.settings.landing_dir, DAY)
    pq.write_table(fault(pq.read_table(path)), path)
    try:
        result = materialize_range(env.defs, env.instance, DAY, DAY)
        assert not result.success
        gate = next(
            e
            for e in result.get_asset_check_evaluations()
            if e.asset_check_key.name == LANDING_GATE and not e.passed
        )
        assert gate.asset_check_key.asset_key == dg.AssetKey(["raw", "card_transactions"])
        assert f"landing day {DAY.isoformat()}" in gate.description
        assert named in gate.description
        started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
        assert not any(LANDING_GATE not in step for step in started), started  # no dbt, no sync
        nothing_published_or_synced(env)
    finally:
        restore(env, DAY)


def test_a_day_declared_empty_passes_the_gate_and_publishes(env: Env) -> None:
    path = landing_path(env.settings.landing_dir, DAY)
    pq.write_table(emptied(pq.read_table(path)), path)
    (path.parent / EMPTY_DAY_MARKER).touch()
    try:
        table = env.store.tables["user_daily_transactions_7d"]
        result = materialize_range(
            env.defs, env.instance, DAY, DAY, asset_selection=[dg.AssetKey(table.name)]
        )
        assert result.success
        gates = [
            e
            for e in result.get_asset_check_evaluations()
            if e.asset_check_key.name == LANDING_GATE
        ]
        assert [g.passed for g in gates] == [True]
        assert env.store.offline.published_days(table) == [DAY]
    finally:
        restore(env, DAY)
