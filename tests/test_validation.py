"""The pandera schema derived from the contract, and the messages it gives."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from feature_assets.validation.partition import PartitionValidationError, validate_partition

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
