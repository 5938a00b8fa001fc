"""The publish check's one-pass DuckDB proof agrees with pandera: it calls staged rows clean
exactly when pandera finds nothing wrong, and only then is pandera skipped."""

from __future__ import annotations

import dataclasses
import math
import uuid
from datetime import date, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_assets.kernel.contract import FeatureColumn
from feature_assets.validation import partition
from feature_assets.validation.compiled import staged_rows_pass
from feature_assets.validation.partition import audit_staged
from resources.offline_store import OfflineStore
from tests.builders import synthetic_table

DAY = date(2026, 2, 1)
DAYS = [DAY, DAY + timedelta(days=1)]
TABLE = dataclasses.replace(
    synthetic_table(name="user_daily_mix_2d"),
    features=(
        FeatureColumn("count", "int", nullable=False, checks={"ge": 0, "le": 30}),
        FeatureColumn("ratio", "float", nullable=True, checks={"ge": 0, "le": 1}),
        FeatureColumn("share", "float", nullable=False, checks={"gt": 0}),
        FeatureColumn("category", "str", nullable=True, checks={"isin": ["a", "b"]}),
        FeatureColumn("flag", "bool", nullable=True),
    ),
)
SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("feature_date", pa.date32()),
        ("event_timestamp", pa.timestamp("us")),
        ("created_at", pa.timestamp("us")),
        ("count", pa.int64()),
        ("ratio", pa.float64()),
        ("share", pa.float64()),
        ("category", pa.string()),
        ("flag", pa.bool_()),
    ]
)
INF, NAN = math.inf, math.nan

# Each column's values: clean ones, nulls, NaN and infinities, values on and past each bound.
POOLS = {
    "user_id": [1, 1, 1, None],  # replaced by the row number: no duplicates
    "feature_date": [DAYS[0], DAYS[1], DAY - timedelta(days=1), None],
    "event_hours": [-1, 0, 12, 24, 25, None],
    "created_at": [datetime(2026, 2, 3), None],
    "count": [None, -1, 0, 5, 30, 31],
    "ratio": [None, NAN, -0.1, 0.0, 0.5, 1.0, 1.1, INF],
    "share": [None, NAN, 0.0, 0.1, -INF, INF],
    "category": [None, "a", "b", "c"],
    "flag": [None, True, False],
}
ROWS = st.lists(
    st.fixed_dictionaries({c: st.sampled_from(v) for c, v in POOLS.items()}), max_size=8
)
CLEAN = {
    "user_id": 1,
    "feature_date": DAY,
    "event_hours": 12,
    "created_at": datetime(2026, 2, 3),
    "count": 3,
    "ratio": 0.5,
    "share": 0.1,
    "category": "a",
    "flag": True,
}


def stage(store: OfflineStore, rows: list[dict]) -> str:
    run_id = uuid.uuid4().hex
    path = store.staged_path(TABLE, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = []
    for n, row in enumerate(rows):
        row = dict(row)
        hours = row.pop("event_hours")
        row["user_id"] = n if row["user_id"] is not None else None  # no duplicates
        anchor = datetime.combine(row["feature_date"] or DAY, datetime.min.time())
        row["event_timestamp"] = anchor + timedelta(hours=hours) if hours is not None else None
        records.append(row)
    pq.write_table(pa.Table.from_pylist(records, schema=SCHEMA), path)
    return run_id


def pandera_clean(store: OfflineStore, run_id: str, monkeypatch) -> bool:
    with monkeypatch.context() as patch:
        patch.setattr(partition, "staged_rows_pass", lambda *_: False)
        return not any(v.problem for v in audit_staged(store, TABLE, run_id, DAYS))


# Alone, and between clean rows: DuckDB folds comparisons by the file's min/max statistics,
# which leave NaN out.
@pytest.mark.parametrize("alone", [True, False], ids=["alone", "between clean rows"])
@pytest.mark.parametrize(
    ("column", "value"), [(c, v) for c, values in POOLS.items() for v in values], ids=str
)
def test_the_one_pass_proof_agrees_with_pandera_on_each_odd_value(
    tmp_path, monkeypatch, column, value, alone
) -> None:
    store = OfflineStore(root=str(tmp_path / "o"), staging_root=str(tmp_path / "s"))
    odd = {**CLEAN, column: value}
    run_id = stage(store, [odd] if alone else [CLEAN, odd, CLEAN])
    types = store.staged_types(TABLE, run_id)
    assert staged_rows_pass(store, TABLE, run_id, DAYS, types) == pandera_clean(
        store, run_id, monkeypatch
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=ROWS)
def test_the_one_pass_proof_agrees_with_pandera_on_any_rows(
    tmp_path_factory, monkeypatch, rows
) -> None:
    store = OfflineStore(
        root=str(tmp_path_factory.mktemp("o")), staging_root=str(tmp_path_factory.mktemp("s"))
    )
    run_id = stage(store, [CLEAN, *rows])
    types = store.staged_types(TABLE, run_id)
    assert staged_rows_pass(store, TABLE, run_id, DAYS, types) == pandera_clean(
        store, run_id, monkeypatch
    ), rows


def test_clean_rows_never_reach_pandera_and_odd_ones_do(tmp_path, monkeypatch) -> None:
    store = OfflineStore(root=str(tmp_path / "o"), staging_root=str(tmp_path / "s"))
    seen = []
    original = store.staged_batches

    def batches(table, run_id):
        seen.append(run_id)
        return original(table, run_id)

    monkeypatch.setattr(store, "staged_batches", batches)
    clean = stage(store, [CLEAN] * 5)
    assert not any(v.problem for v in audit_staged(store, TABLE, clean, DAYS))
    assert seen == []
    odd = stage(store, [CLEAN] * 4 + [{**CLEAN, "count": 31}])
    (problem,) = [v.problem for v in audit_staged(store, TABLE, odd, DAYS) if v.problem]
    assert seen == [odd]
    assert "column 'count': less_than_or_equal_to(30) failed for 1 value(s)" in problem


@pytest.mark.parametrize(
    "change",
    [
        # A check whose meaning differs between Python's re and DuckDB's RE2.
        lambda t: dataclasses.replace(
            t,
            features=(
                *t.features[:3],
                dataclasses.replace(t.features[3], checks={"str_matches": "^[ab]$"}),
                t.features[4],
            ),
        ),
        # A declared column the staged file lacks.
        lambda t: dataclasses.replace(
            t, features=(*t.features, FeatureColumn("extra", "int", nullable=True))
        ),
    ],
)
def test_what_cannot_be_compiled_goes_to_pandera(tmp_path, change) -> None:
    store = OfflineStore(root=str(tmp_path / "o"), staging_root=str(tmp_path / "s"))
    run_id = stage(store, [CLEAN] * 3)
    table = change(TABLE)
    assert not staged_rows_pass(store, table, run_id, DAYS, store.staged_types(TABLE, run_id))
