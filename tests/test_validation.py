"""The pandera schema derived from the contract, and the messages it gives."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

import duckdb
import pandas as pd
import pytest

from feature_assets.validation.partition import (
    SAMPLE_CASES,
    PartitionValidationError,
    audit_staged,
    validate_partition,
)
from resources.offline_store import OfflineStore

DAY = date(2026, 1, 8)


def good_rows(table, n: int = 3) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "user_id": range(1, n + 1),
            "feature_date": [pd.Timestamp(DAY)] * n,
            "event_timestamp": [datetime(2026, 1, 9)] * n,
            "created_at": [datetime(2026, 1, 9, 1)] * n,
        }
    )
    for feature in table.features:
        frame[feature.name] = 1 if feature.logical_type == "int" else 1.5
    return frame


def test_good_partition_passes(demo_tables) -> None:
    table = demo_tables["user_daily_transactions_7d"]
    validate_partition(table, good_rows(table), [DAY])


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (
            lambda f: f.astype({"user_id": "Int64"}).assign(user_id=[None, 2, 3]),
            "column 'user_id': not_nullable",
        ),
        (
            lambda f: f.assign(transaction_count_7d=[1, -4, 1]),
            "column 'transaction_count_7d': greater_than_or_equal_to(0)",
        ),
        (
            lambda f: f.assign(user_id=[1, 1, 3]),
            "duplicate key: 2 rows share columns ['user_id', 'event_timestamp'], e.g. user_id=1",
        ),
        (
            lambda f: f.assign(event_timestamp=[datetime(2026, 1, 12)] * 3),
            "event_timestamp outside its feature_date day",
        ),
        (lambda f: f.assign(feature_date=[pd.Timestamp(2026, 1, 7)] * 3), "column 'feature_date'"),
        (lambda f: f.assign(surprise=1), "column 'surprise'"),
    ],
)
def test_bad_rows_fail_with_a_message_naming_table_partition_and_column(
    demo_tables, corrupt, expected
) -> None:
    table = demo_tables["user_daily_transactions_7d"]
    with pytest.raises(PartitionValidationError) as error:
        validate_partition(table, corrupt(good_rows(table)), [DAY])
    message = str(error.value)
    assert "feature table 'user_daily_transactions_7d', partition 2026-01-08" in message
    assert expected in message


def stage(store: OfflineStore, table, frame: pd.DataFrame) -> str:
    """Stage rows as a run's build would (DuckDB writes the declared types), return the run."""
    run_id = uuid.uuid4().hex
    path = store.staged_path(table, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.register("frame", frame)
    con.execute(
        "COPY (SELECT * REPLACE (CAST(feature_date AS DATE) AS feature_date, "
        "CAST(event_timestamp AS TIMESTAMP) AS event_timestamp, "
        f"CAST(created_at AS TIMESTAMP) AS created_at) FROM frame) TO '{path}'"
    )
    return run_id


def many_rows(table, n: int, days: list[date]) -> pd.DataFrame:
    frame = pd.concat([good_rows(table)] * (n // 3 + 1), ignore_index=True).head(n)
    day_of = [days[i % len(days)] for i in range(n)]
    frame["user_id"] = range(n)
    frame["feature_date"] = [pd.Timestamp(d) for d in day_of]
    frame["event_timestamp"] = [pd.Timestamp(d) + pd.Timedelta(hours=12) for d in day_of]
    return frame


def test_the_audit_counts_every_failure_across_batches_but_keeps_samples_only(
    demo_tables, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr("resources.offline_store.AUDIT_BATCH_VECTORS", 1)  # 2,048 rows a batch
    table = demo_tables["user_daily_transactions_7d"]
    store = OfflineStore(root=str(tmp_path / "offline"), staging_root=str(tmp_path / "staging"))
    days = [DAY, DAY + timedelta(days=1)]
    frame = many_rows(table, 9000, days).assign(transaction_count_7d=-1)
    frame.loc[8999, "user_id"] = 0  # one duplicate of row 0 (same day, same event time)
    frame.loc[8999, "event_timestamp"] = frame.loc[0, "event_timestamp"]
    frame.loc[8999, "feature_date"] = frame.loc[0, "feature_date"]
    verdicts = audit_staged(store, table, stage(store, table, frame), days)
    first = verdicts[0]
    # Row 8999 moved to the first day, beside its duplicate.
    assert "greater_than_or_equal_to(0) failed for 4501 value(s)" in first.problem
    assert "duplicate key: 2 rows share" in first.problem
    assert "greater_than_or_equal_to(0) failed for 4499 value(s)" in verdicts[1].problem
    assert len(first.failures) <= SAMPLE_CASES + 4  # samples of one check, the duplicates


def test_publish_writes_every_day_sorted_from_one_pass_and_empty_days_too(
    demo_tables, tmp_path
) -> None:
    table = demo_tables["user_daily_transactions_7d"]
    store = OfflineStore(root=str(tmp_path / "offline"), staging_root=str(tmp_path / "staging"))
    days = [DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)]
    frame = many_rows(table, 5000, days[:2]).sample(frac=1, random_state=1)  # shuffled
    run_id = stage(store, table, frame)
    assert not any(v.problem for v in audit_staged(store, table, run_id, days))
    store.publish(table, run_id, days)
    for day in days[:2]:
        rows = store.read_partition(table, day)
        assert len(rows) == 2500
        assert rows["user_id"].is_monotonic_increasing
        assert store.published_by(table, day) == run_id
    assert store.read_partition(table, days[2]).empty
    assert list(store.read_partition(table, days[2]).columns) == list(rows.columns)
    assert not list((tmp_path / "offline" / table.name).glob(".publish-*"))


def test_rows_wider_than_the_flat_memory_budget_are_audited_and_published_anyway(
    demo_tables, tmp_path, monkeypatch
) -> None:
    # A budget DuckDB cannot work in: each step runs again under the store's own limit.
    monkeypatch.setattr("resources.offline_store.AUDIT_MEMORY_LIMIT", "1MB")
    table = demo_tables["user_daily_transactions_7d"]
    store = OfflineStore(root=str(tmp_path / "offline"), staging_root=str(tmp_path / "staging"))
    days = [DAY, DAY + timedelta(days=1)]
    frame = many_rows(table, 200_000, days)
    frame.loc[1, ["user_id", "event_timestamp", "feature_date"]] = frame.loc[
        199_999, ["user_id", "event_timestamp", "feature_date"]
    ].to_numpy()
    run_id = stage(store, table, frame)
    verdicts = audit_staged(store, table, run_id, days)
    assert "duplicate key: 2 rows share" in verdicts[1].problem
    assert store.staged_statistics(table, run_id)[DAY]["rows"] == 100_000
    store.publish(table, run_id, days)
    assert len(store.read_partition(table, days[1])) == 100_000


def test_publishing_many_interleaved_days_stays_in_the_flat_memory_budget(
    demo_tables, tmp_path, monkeypatch
) -> None:
    """A model's output holds its days interleaved, so the split by day has every day open at
    once: it must flush within the budget, not fall back to the store's own limit (at
    DuckDB's default flush, 60 x 20,000 rows run out of 16 MB)."""
    monkeypatch.setattr("resources.offline_store.AUDIT_MEMORY_LIMIT", "16MB")
    table = demo_tables["user_daily_transactions_7d"]
    store = OfflineStore(root=str(tmp_path / "offline"), staging_root=str(tmp_path / "staging"))
    monkeypatch.setattr(store, "_within_audit_memory", lambda work: work(store.audit_connection()))
    run_id = uuid.uuid4().hex
    path = store.staged_path(table, run_id)
    path.parent.mkdir(parents=True)
    features = ", ".join(
        f"(i % 7)::{'BIGINT' if f.logical_type == 'int' else 'DOUBLE'} AS {f.name}"
        for f in table.features
    )
    duckdb.connect().execute(
        f"""COPY (SELECT (i // 60)::BIGINT AS user_id,
            DATE '{DAY}' + (i % 60)::INT AS feature_date,
            (DATE '{DAY}' + (i % 60)::INT + INTERVAL 12 HOUR)::TIMESTAMP AS event_timestamp,
            TIMESTAMP '{DAY}' AS created_at, {features}
            FROM range(60 * 20000) r(i)) TO '{path}' (FORMAT parquet)"""
    )
    days = [DAY + timedelta(days=d) for d in range(60)]
    store.publish(table, run_id, days)
    assert len(store.read_partition(table, days[-1])) == 20_000
