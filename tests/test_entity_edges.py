"""Edges of the training-set join: nanosecond entity times in every input form (against the
brute-force oracle), reserved names, out-of-range times, non-dbt partition writers, entity SQL."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from feature_assets.kernel.contract import FeatureRequest
from feature_assets.kernel.errors import EntityInputError, PartitionValidationError
from feature_assets.sdk import FeatureStore
from resources.offline_store import OfflineStore, _boundary_ties_possible
from resources.online_store import OnlineStore
from tests.builders import JOIN_ENGINES, publish_rows, synthetic_table
from tests.test_point_in_time import BASE, examples, feature_rows, oracle, renamed

NANOS = [-999, -500, -1, 1, 500, 999]
FORMS = ["pandas_ns", "pandas_utc_ns", "arrow_utc_ns", "polars_ns", "parquet_ns"]
# Allowed names that look like the join's own aliases and columns.
LOOKALIKES = ["e", "f0", "f0_rows", "_entity_ts", "ENTITY_ROW", "event_timestamp_1"]


def store_at(tmp: Path, engine: str = "duckdb") -> OfflineStore:
    return OfflineStore(root=str(tmp / "offline"), staging_root=str(tmp / "staging"), engine=engine)


@st.composite
def nanosecond_entities(draw: st.DrawFn, rows: list[dict], ttl: timedelta | None) -> list[dict]:
    """Entity times a few nanoseconds either side of every event, creation and TTL edge."""
    edges = [pd.Timestamp(BASE)]
    for row in rows:
        edges += [pd.Timestamp(row["event_timestamp"]), pd.Timestamp(row["created_at"])]
        if ttl is not None:
            edges.append(pd.Timestamp(row["event_timestamp"] + ttl))
    times = [edge + pd.Timedelta(nanoseconds=n) for edge in edges for n in [0, *NANOS]]
    return [
        {"user_id": draw(st.integers(1, 4)), "event_timestamp": draw(st.sampled_from(times))}
        for _ in range(draw(st.integers(0, 20)))
    ]


def entity_input(entities: list[dict], form: str, extra: str, tmp: Path):
    frame = pd.DataFrame(
        {
            "user_id": pd.array([e["user_id"] for e in entities], dtype="int64"),
            "event_timestamp": pd.array(
                [e["event_timestamp"] for e in entities], dtype="datetime64[ns]"
            ),
            extra: range(len(entities)),
        }
    )
    if form == "pandas_ns":
        return frame
    if form == "pandas_utc_ns":
        return frame.assign(event_timestamp=frame["event_timestamp"].dt.tz_localize("UTC"))
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    if form == "arrow_utc_ns":
        index = arrow.schema.get_field_index("event_timestamp")
        utc = arrow["event_timestamp"].cast(pa.timestamp("ns", tz="UTC"))
        return arrow.set_column(index, "event_timestamp", utc)
    if form == "polars_ns":
        return pl.from_arrow(arrow)
    path = tmp / "entities.parquet"
    pq.write_table(arrow, path)
    return str(path)


@pytest.mark.parametrize("engine", JOIN_ENGINES)
def test_nanosecond_entity_times_never_leak_in_any_input_form(tmp_path_factory, engine) -> None:
    @examples(engine, 80)
    @given(
        data=st.data(),
        ttl_hours=st.sampled_from([None, 24, 30]),
        cutoff=st.booleans(),
        form=st.sampled_from(FORMS),
        extra=st.sampled_from(LOOKALIKES),
    )
    def check(data, ttl_hours, cutoff, form, extra) -> None:
        ttl = None if ttl_hours is None else timedelta(hours=ttl_hours)
        table = synthetic_table(ttl=ttl, features=("value_0",))
        rows = renamed(data.draw(feature_rows(table.keys)), "value_0")
        entities = data.draw(nanosecond_entities(rows, ttl))
        tmp = tmp_path_factory.mktemp("ns")
        store = store_at(tmp, engine)
        if rows:
            publish_rows(store, table, rows)
        result = store.get_historical_features(
            entity_input(entities, form, extra, tmp),
            [FeatureRequest(table, ("value_0",))],
            created_timestamp_cutoff=cutoff,
        ).to_pandas()
        assert result[extra].tolist() == list(range(len(entities)))  # order kept, none dropped
        expected = [oracle(table, rows, entity, "value_0", cutoff) for entity in entities]
        assert [None if pd.isna(v) else int(v) for v in result["value_0"]] == expected
        passed_through = pd.to_datetime(result["event_timestamp"])
        if form in ("pandas_utc_ns", "arrow_utc_ns"):
            assert str(passed_through.dt.tz) in ("UTC", "Etc/UTC")  # still zoned, in UTC
            passed_through = passed_through.dt.tz_localize(None)
        times = passed_through.astype("int64").tolist()
        assert times == [e["event_timestamp"].value for e in entities]

    check()


def one_row_store(tmp: Path, ttl: timedelta | None = timedelta(hours=30), engine: str = "duckdb"):
    table = synthetic_table(ttl=ttl, features=("value_0",))
    store = store_at(tmp, engine)
    publish_rows(
        store,
        table,
        [
            {
                "user_id": 1,
                "feature_date": BASE.date(),
                "event_timestamp": BASE,
                "created_at": BASE,
                "value_0": 7,
            }
        ],
    )
    return table, store


def join(store: OfflineStore, table, entity) -> list:
    result = store.get_historical_features(entity, [FeatureRequest(table, ("value_0",))])
    return [None if pd.isna(v) else int(v) for v in result.to_pandas()["value_0"]]


@pytest.mark.parametrize("engine", JOIN_ENGINES)
def test_a_row_nanoseconds_after_the_entity_time_or_past_its_ttl_is_not_used(
    tmp_path, engine
) -> None:
    table, store = one_row_store(tmp_path, engine=engine)
    at = pd.Timestamp(BASE)
    ttl_edge = at + pd.Timedelta(hours=30)
    entity = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 1],
            "event_timestamp": [
                at - pd.Timedelta(nanoseconds=400),  # rounded up, this used to see the row
                at,
                ttl_edge,
                ttl_edge + pd.Timedelta(nanoseconds=400),  # rounded down, this used to keep it
            ],
        }
    )
    assert join(store, table, entity) == [None, 7, 7, None]


@pytest.mark.parametrize("reserved", ["__entity_ts", "__entity_row", "__entity_ts_ceil"])
def test_a_reserved_input_column_is_a_clear_error_not_a_silent_replacement(
    tmp_path, reserved
) -> None:
    table, store = one_row_store(tmp_path)
    entity = pd.DataFrame(
        {"user_id": [1], "event_timestamp": [BASE + timedelta(hours=1)], reserved: [BASE]}
    )
    with pytest.raises(EntityInputError, match=f"\\['{reserved}'\\].*reserved"):
        join(store, table, entity)


@pytest.mark.parametrize("engine", JOIN_ENGINES)
def test_entity_times_in_year_1_and_9999_join_without_overflow(tmp_path, engine) -> None:
    table, store = one_row_store(tmp_path, engine=engine)
    times = pa.array([datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)], pa.timestamp("us"))
    entity = pa.table({"user_id": [1, 1], "event_timestamp": times})
    assert join(store, table, entity) == [None, None]  # too early; past the 30h TTL


def test_an_entity_time_beyond_year_9999_names_the_column(tmp_path) -> None:
    table, store = one_row_store(tmp_path)
    year_10000 = pa.array([253_402_300_800], pa.timestamp("s"))
    entity = pa.table({"user_id": [1], "asked_at": year_10000})
    with pytest.raises(EntityInputError, match="'asked_at' has a time outside years 1..9999"):
        store.get_historical_features(
            entity, [FeatureRequest(table, ("value_0",))], timestamp_column="asked_at"
        )


@pytest.mark.parametrize(
    "time_type",
    [pa.timestamp("ns"), pa.timestamp("us", tz="UTC"), pa.timestamp("ns", tz="UTC")],
    ids=str,
)
def test_a_partition_with_zoned_or_nanosecond_times_is_refused_at_publish(
    tmp_path, time_type
) -> None:
    table = synthetic_table(ttl=None, features=("value_0",))
    store = store_at(tmp_path)
    row = {
        "user_id": 1,
        "feature_date": date(2026, 1, 1),
        "event_timestamp": datetime(2026, 1, 2),
        "created_at": BASE,
        "value_0": 1,
    }
    with pytest.raises(PartitionValidationError) as error:
        publish_rows(store, table, [row], time_type=time_type)
    assert "column 'event_timestamp': is TIMESTAMP" in str(error.value)
    assert "must be TIMESTAMP (naive UTC, microseconds)" in str(error.value)
    assert store.published_days(table) == []


def test_midnight_ties_stay_detected_for_partitions_written_by_pyarrow(tmp_path) -> None:
    table = synthetic_table(ttl=None, features=("value_0",))
    store = store_at(tmp_path)
    midnight = datetime(2026, 1, 2)
    for day, value in [(date(2026, 1, 1), 1), (date(2026, 1, 2), 2)]:
        row = {"user_id": 1, "feature_date": day, "event_timestamp": midnight}
        publish_rows(store, table, [{**row, "created_at": BASE, "value_0": value}])
    assert _boundary_ties_possible(store.connect(), table, store.published_files(table))
    # The later partition wins the tie, every time.
    entity = pd.DataFrame({"user_id": [1] * 5, "event_timestamp": [midnight] * 5})
    assert join(store, table, entity) == [2] * 5


@pytest.fixture
def sdk(tmp_path) -> FeatureStore:
    table, store = one_row_store(tmp_path)
    return FeatureStore({table.name: table}, store, OnlineStore())


ASKED = "SELECT 1::BIGINT AS user_id, TIMESTAMP '2026-01-01 05:00:00' AS event_timestamp"


@pytest.mark.parametrize(
    "sql",
    [
        ASKED,
        f"-- the users to score\n{ASKED}",
        f"({ASKED})",
        f"/* scoring */ WITH asked AS ({ASKED}) SELECT * FROM asked",
    ],
    ids=["select", "comment first", "parenthesis first", "block comment and CTE"],
)
def test_entity_sql_is_recognised_by_parsing_not_by_its_first_characters(sdk, sql) -> None:
    result = sdk.get_historical_features(sql, ["user_hourly_clicks_1d:value_0"]).to_pandas()
    assert result["value_0"].tolist() == [7]


def test_entity_sql_reads_the_published_tables(sdk) -> None:
    sql = "SELECT user_id, event_timestamp + INTERVAL 1 HOUR AS event_timestamp FROM user_hourly_clicks_1d"
    result = sdk.get_historical_features(sql, ["user_hourly_clicks_1d:value_0"]).to_pandas()
    assert result["value_0"].tolist() == [7]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (f"{ASKED}; {ASKED}", "one statement, not 2"),
        (f"COPY ({ASKED}) TO 'leak.csv'", "must be a SELECT"),
        ("SELECT * FROM read_csv('/etc/passwd')", "may read the feature tables only"),
        ("SELECT * FROM glob('/*')", "may read the feature tables only"),
    ],
    ids=["two statements", "copy", "file reader", "glob"],
)
def test_entity_sql_is_one_read_only_select_over_the_feature_tables(
    sdk, tmp_path, sql, message
) -> None:
    with pytest.raises(EntityInputError, match=message) as error:
        sdk.get_historical_features(sql, ["user_hourly_clicks_1d:value_0"])
    assert "root:" not in str(error.value)  # nothing of /etc/passwd leaks into the message
    assert not (Path.cwd() / "leak.csv").exists()


def test_a_path_string_is_still_a_parquet_path(sdk, tmp_path) -> None:
    path = tmp_path / "entities.parquet"
    pd.DataFrame({"user_id": [1], "event_timestamp": [BASE + timedelta(hours=1)]}).to_parquet(path)
    result = sdk.get_historical_features(str(path), ["user_hourly_clicks_1d:value_0"])
    assert result.to_pandas()["value_0"].tolist() == [7]


def test_tie_detection_settles_ties_when_it_cannot_read_statistics_exactly(tmp_path) -> None:
    """A day written into the offline folder by hand, with zoned times, bypassing publish."""
    table = synthetic_table(ttl=None, features=("value_0",))
    store = store_at(tmp_path)
    for day in [date(2026, 1, 1), date(2026, 1, 2)]:
        path = store.partition_path(table, day)
        path.parent.mkdir(parents=True)
        times = pa.array([datetime(2026, 1, 2)], pa.timestamp("us", tz="UTC"))
        pq.write_table(
            pa.table(
                {
                    "user_id": [1],
                    "feature_date": [day],
                    "event_timestamp": times,
                    "created_at": times,
                    "value_0": [1],
                }
            ),
            path,
        )
    assert _boundary_ties_possible(store.connect(), table, store.published_files(table))
