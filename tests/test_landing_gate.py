"""The landing gate over real landing files: each kind of bad raw data fails with the source,
day, column and example rows named; good data and declared-empty days pass."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from feature_assets.demo_data import DemoDataSpec, generate_landing_data, landing_path
from feature_assets.kernel.contract import RawSource
from feature_assets.kernel.names import EMPTY_DAY_MARKER
from feature_assets.validation.landing import check_dimension, check_landing, days_read
from resources.dbt_manifest import load_project_contract
from resources.landing_zone import LandingZone
from resources.settings import PROJECT_ROOT
from sensors.landing import changed_days, decode_cursor, encode_cursor, landing_state

SPEC = DemoDataSpec(users=200, merchants=30, transactions_per_day=1_000, app_events_per_day=500)
FIRST, LAST = date(2026, 1, 1), date(2026, 1, 5)
DAY = date(2026, 1, 3)
CONTRACT = load_project_contract(PROJECT_ROOT / "dbt_project")
TRANSACTIONS_KEY = "raw.card_transactions"
TRANSACTIONS = CONTRACT.sources[TRANSACTIONS_KEY]


@pytest.fixture
def zone(tmp_path: Path) -> LandingZone:
    generate_landing_data(tmp_path, FIRST, LAST + timedelta(days=1), SPEC)
    return LandingZone(tmp_path)


def rewrite(zone: LandingZone, change, day: date = DAY, source: str = "card_transactions") -> None:
    path = landing_path(zone.root, day, source)
    pq.write_table(change(pq.read_table(path)), path)


def gate(zone: LandingZone, source: RawSource = TRANSACTIONS, day: date = DAY) -> str:
    verdict = check_landing(zone, source, [], [day])
    assert not verdict.passed
    message = verdict.describe()
    assert f"raw source {source.key!r}" in message
    assert f"landing day {day.isoformat()}" in message
    return message


def test_clean_landing_days_pass_for_every_daily_source(zone) -> None:
    for source in CONTRACT.sources.values():
        if source.landing_partition:
            verdict = check_landing(zone, source, [], [FIRST, DAY, LAST])
            assert verdict.passed, verdict.describe()
            assert set(verdict.rows) == {FIRST.isoformat(), DAY.isoformat(), LAST.isoformat()}
    assert check_dimension(zone, CONTRACT.sources["raw.merchants"]).passed


def test_a_duplicated_landing_day_fails_naming_the_key_and_rows(zone) -> None:
    rewrite(zone, lambda t: pa.concat_tables([t, t.slice(0, 4)]))
    message = gate(zone)
    assert "unique_key ['transaction_id']: 8 row(s) share a key" in message
    first_id = pq.read_table(landing_path(zone.root, DAY))["transaction_id"][0].as_py()
    assert f"transaction_id={first_id}" in message


def test_an_unknown_currency_fails_naming_column_value_and_row(zone) -> None:
    def jpy(table: pa.Table) -> pa.Table:
        currency = pa.array(["JPY"] * 3 + table["currency"].to_pylist()[3:])
        return table.set_column(table.schema.get_field_index("currency"), "currency", currency)

    rewrite(zone, jpy)
    message = gate(zone)
    assert "column 'currency': 3 row(s) fail isin" in message
    assert "currency='JPY'" in message


def with_values(column: str, values: list) -> Callable[[pa.Table], pa.Table]:
    """The landing table with its first rows' `column` set to `values`."""

    def change(table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index(column)
        kind = table.schema.field(column).type
        head = pa.array(values, kind)
        tail = table[column].slice(len(values)).combine_chunks()
        return table.set_column(index, column, pa.concat_arrays([head, tail]))

    return change


@pytest.mark.parametrize(
    ("column", "values", "expected"),
    [
        ("amount", [-1.0, -0.5], "column 'amount': 2 row(s) fail greater_than_or_equal_to"),
        ("transaction_id", [None], "column 'transaction_id': 1 row(s) fail not_nullable"),
        ("transaction_timestamp", [None], "column 'transaction_timestamp'"),
        ("amount", [float("-inf")], "column 'amount': 1 row(s) fail greater_than_or_equal_to"),
    ],
)
def test_a_value_failing_a_rule_fails_the_gate_naming_it(zone, column, values, expected) -> None:
    rewrite(zone, with_values(column, values))
    assert expected in gate(zone)


def test_nan_and_null_amounts_pass_the_amount_check_as_pandera_skips_them(zone) -> None:
    rewrite(zone, with_values("amount", [float("nan"), None]))
    assert check_landing(zone, TRANSACTIONS, [], [DAY]).passed


def test_an_empty_landing_file_fails_unless_the_day_is_declared_empty(zone) -> None:
    rewrite(zone, lambda t: t.slice(0, 0))
    assert "no rows" in gate(zone)
    (landing_path(zone.root, DAY).parent / EMPTY_DAY_MARKER).touch()
    assert check_landing(zone, TRANSACTIONS, [], [DAY]).passed


def test_transactions_stamped_outside_their_landing_day_fail(zone) -> None:
    def shifted(table: pa.Table) -> pa.Table:
        ts = table["transaction_timestamp"]
        moved = pc.add(ts.slice(0, 2), pa.scalar(timedelta(days=40), pa.duration("us")))
        column = pa.concat_arrays([moved.combine_chunks(), ts.slice(2).combine_chunks()])
        index = table.schema.get_field_index("transaction_timestamp")
        return table.set_column(index, "transaction_timestamp", column)

    rewrite(zone, shifted)
    message = gate(zone)
    assert "2 row(s) fail transaction_timestamp outside the landing day" in message
    assert "2026-02-12" in message  # the offending timestamp is shown


def test_a_run_day_that_has_not_landed_fails_but_a_missing_lookback_day_does_not(zone) -> None:
    missing = LAST + timedelta(days=1)
    message = gate(zone, day=missing)
    assert "has not landed" in message
    lookback, run_days = days_read(TRANSACTIONS, list(CONTRACT.tables.values()), FIRST, LAST)
    assert lookback[0] == FIRST - timedelta(days=30)  # the spend table reads 30 days back
    assert check_landing(zone, TRANSACTIONS, lookback, run_days).passed


def test_a_bad_lookback_day_fails_the_run_that_reads_it(zone) -> None:
    rewrite(zone, lambda t: pa.concat_tables([t, t.slice(0, 1)]), day=FIRST)
    verdict = check_landing(zone, TRANSACTIONS, [FIRST], [FIRST + timedelta(days=1)])
    assert not verdict.passed
    assert f"landing day {FIRST.isoformat()}" in verdict.describe()


def test_a_column_landing_with_another_type_fails_without_coercion(zone) -> None:
    def as_text(table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index("amount")
        return table.set_column(index, "amount", pc.cast(table["amount"], pa.string()))

    rewrite(zone, as_text)
    assert "column 'amount' landed as string, declared double" in gate(zone)


def test_a_missing_column_fails(zone) -> None:
    rewrite(zone, lambda t: t.drop_columns(["currency"]))
    assert "column 'currency' is missing" in gate(zone)


def test_a_dimension_with_duplicate_keys_fails(zone) -> None:
    path = zone.root / "merchants" / "merchants.parquet"
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), path)
    verdict = check_dimension(zone, CONTRACT.sources["raw.merchants"])
    assert not verdict.passed
    assert "unique_key ['merchant_id']: 2 row(s) share a key" in verdict.describe()


def test_the_currency_gate_follows_the_dbt_rates_var() -> None:
    column = next(c for c in TRANSACTIONS.columns if c.name == "currency")
    assert column.checks["isin"] == ["USD", "EUR", "GBP"]  # rendered from var('usd_rates')


def test_the_landing_cursor_reads_as_a_summary_and_utc_times_and_sees_a_1ns_rewrite(
    zone: LandingZone,
) -> None:
    sources = CONTRACT.sources
    before = landing_state(zone.root, sources)
    cursor = encode_cursor(before)

    data = json.loads(cursor)
    landed = sum(len(days) for days in before.values())
    assert data["summary"].startswith(f"{len(before)} sources, {landed} landed days")
    times = [t for days in data["landed"].values() for t in days.values()]
    assert times and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", t) for t in times)
    assert decode_cursor(cursor) == before
    # A cursor from before the summary (nanosecond integers) still reads as the same state.
    old = {s: {d: _ns(t) for d, t in days.items()} for s, days in before.items()}
    assert decode_cursor(json.dumps(old)) == before

    (path,) = (zone.root / "card_transactions").glob(f"*={DAY}/*.parquet")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert changed_days(decode_cursor(cursor), landing_state(zone.root, sources)) == {
        source: [DAY] if source == TRANSACTIONS_KEY else [] for source in before
    }


def _ns(text: str) -> int:
    """An independent reading of the cursor's time: whole seconds by datetime, then the ns."""
    seconds, fraction = text.rstrip("Z").split(".")
    whole = datetime.fromisoformat(seconds).replace(tzinfo=UTC).timestamp()
    return int(whole) * 1_000_000_000 + int(fraction)
