"""The point-in-time join against an independent brute-force oracle (plain Python)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_assets.kernel.contract import FeatureRequest, FeatureTable
from feature_assets.kernel.errors import FeatureReferenceError
from feature_assets.sdk import FeatureStore
from resources.offline_store import OfflineStore, _boundary_ties_possible
from resources.online_store import OnlineStore
from tests.builders import JOIN_ENGINES, publish_rows, s3_offline_store, synthetic_table

BASE = datetime(2026, 1, 1)


def oracle(
    table: FeatureTable, rows: list[dict], entity: dict, feature: str, cutoff: bool = False
) -> int | None:
    """The winning row's value: same keys, event time in [t - ttl, t] (and, with the cutoff,
    created time <= t), then the latest (event time, created time, partition); None if there
    is no candidate."""
    t = entity["event_timestamp"]
    candidates = [
        row
        for row in rows
        if all(row[k] == entity[k] for k in table.keys)
        and row["event_timestamp"] <= t
        and (table.ttl is None or row["event_timestamp"] >= t - table.ttl)
        and (not cutoff or row["created_at"] <= t)
    ]
    if not candidates:
        return None
    best = max(candidates, key=lambda r: (r["event_timestamp"], r["created_at"], r["feature_date"]))
    return best[feature]


@st.composite
def feature_rows(draw: st.DrawFn, keys: tuple[str, ...]) -> list[dict]:
    """Rows with deliberate ties: few keys, few distinct times, midnight rows in two partitions."""
    rows: dict[tuple, dict] = {}
    for i in range(draw(st.integers(0, 25))):
        hour = draw(st.sampled_from([0, 5, 12, 23, 24, 30, 48, 60, 72]))
        event_time = BASE + timedelta(hours=hour)
        # A value stamped at midnight may belong to the day before (it covers that whole day).
        partition = event_time.date()
        if event_time.hour == 0 and draw(st.booleans()):
            partition -= timedelta(days=1)
        row = {k: draw(st.integers(1, 3)) for k in keys}
        row.update(
            feature_date=partition,
            event_timestamp=event_time,
            created_at=event_time + timedelta(hours=draw(st.sampled_from([0, 1, 30]))),
            value=i,
        )
        rows[(*(row[k] for k in keys), event_time, partition)] = row  # unique per partition
    return list(rows.values())


@st.composite
def entity_rows(
    draw: st.DrawFn, keys: tuple[str, ...], rows: list[dict], ttl: timedelta | None
) -> list[dict]:
    times = [BASE - timedelta(hours=5), BASE + timedelta(hours=100)]
    for row in rows:  # exact hits and exact TTL and creation edges (and one microsecond off)
        times += [row["event_timestamp"], row["event_timestamp"] - timedelta(microseconds=1)]
        times += [row["created_at"], row["created_at"] - timedelta(microseconds=1)]
        if ttl is not None:
            times += [
                row["event_timestamp"] + ttl,
                row["event_timestamp"] + ttl + timedelta(microseconds=1),
            ]
    entities = []
    for _ in range(draw(st.integers(0, 20))):
        entity = {k: draw(st.integers(1, 4)) for k in keys}
        entity["event_timestamp"] = draw(st.sampled_from(times))
        entities.append(entity)
    if entities and draw(st.booleans()):
        entities.append(dict(entities[0]))  # a duplicate input row is kept
    return entities


def run_join(
    tmp: Path,
    tables_rows: list[tuple[FeatureTable, list[dict]]],
    entities: list[dict],
    cutoff: bool = False,
    engine: str = "duckdb",
    s3_endpoint: str | None = None,
) -> pd.DataFrame:
    """`engine` "s3": DuckDB's join over an offline root in a new bucket at `s3_endpoint`."""
    store = (
        s3_offline_store(tmp, s3_endpoint)
        if engine == "s3"
        else OfflineStore(
            root=str(tmp / "offline"), staging_root=str(tmp / "staging"), engine=engine
        )
    )
    for table, rows in tables_rows:
        if rows:
            publish_rows(store, table, rows)
    keys = sorted({k for table, _ in tables_rows for k in table.keys})
    entity_df = pd.DataFrame(entities, columns=[*keys, "event_timestamp"]).astype(
        {k: "int64" for k in keys}
    )
    entity_df["event_timestamp"] = entity_df["event_timestamp"].astype("datetime64[us]")
    entity_df["label"] = range(len(entity_df))
    requests = [FeatureRequest(t, (f"value_{i}",)) for i, (t, _) in enumerate(tables_rows)]
    return store.get_historical_features(
        entity_df, requests, created_timestamp_cutoff=cutoff
    ).to_pandas()


def renamed(rows: list[dict], feature: str) -> list[dict]:
    return [{**{k: v for k, v in r.items() if k != "value"}, feature: r["value"]} for r in rows]


def assert_matches_oracle(
    result: pd.DataFrame, tables_rows, entities, cutoff: bool = False
) -> None:
    assert len(result) == len(entities)
    assert result["label"].tolist() == list(range(len(entities)))  # input order, nothing dropped
    for i, (table, rows) in enumerate(tables_rows):
        feature = f"value_{i}"
        expected = [oracle(table, rows, entity, feature, cutoff) for entity in entities]
        actual = [None if pd.isna(v) else int(v) for v in result[feature]]
        assert actual == expected, f"table {table.name}"


# The oracle tests run on each engine, and on DuckDB over an S3 root (moto's S3 server).
ORACLE_RUNS = [*JOIN_ENGINES, pytest.param("s3", marks=pytest.mark.integration)]


def s3_endpoint(request: pytest.FixtureRequest, engine: str) -> str | None:
    return request.getfixturevalue("online_server").endpoint if engine == "s3" else None


def examples(engine: str, on_duckdb: int) -> settings:
    """Hypothesis settings for an oracle test on `engine`: a Spark join takes ~1 s where
    DuckDB's takes ~0.1 s, and one over S3 publishes through moto, so each gets a third of
    the examples."""
    return settings(
        max_examples=on_duckdb if engine == "duckdb" else on_duckdb // 3,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


@pytest.mark.parametrize("engine", ORACLE_RUNS)
def test_join_agrees_with_brute_force_oracle_single_key(tmp_path_factory, request, engine) -> None:
    endpoint = s3_endpoint(request, engine)

    @examples(engine, 60)
    @given(data=st.data(), ttl_hours=st.sampled_from([None, 24, 30]), cutoff=st.booleans())
    def check(data, ttl_hours, cutoff) -> None:
        ttl = None if ttl_hours is None else timedelta(hours=ttl_hours)
        table = synthetic_table(ttl=ttl, features=("value_0",))
        rows = renamed(data.draw(feature_rows(table.keys)), "value_0")
        entities = data.draw(entity_rows(table.keys, rows, ttl))
        tmp = tmp_path_factory.mktemp("pit")
        result = run_join(tmp, [(table, rows)], entities, cutoff, engine, endpoint)
        assert_matches_oracle(result, [(table, rows)], entities, cutoff)

    check()


@pytest.mark.parametrize("engine", ORACLE_RUNS)
def test_join_agrees_with_oracle_on_composite_keys_and_several_tables(
    tmp_path_factory, request, engine
) -> None:
    endpoint = s3_endpoint(request, engine)
    pair = synthetic_table(
        name="user_daily_merchant_visits_30d",
        keys=("user_id", "merchant_id"),
        ttl=timedelta(hours=24),
        features=("value_0",),
    )
    single = synthetic_table(name="user_daily_logins_7d", ttl=None, features=("value_1",))

    @examples(engine, 40)
    @given(data=st.data(), cutoff=st.booleans())
    def check(data, cutoff) -> None:
        pair_rows = renamed(data.draw(feature_rows(pair.keys)), "value_0")
        single_rows = renamed(data.draw(feature_rows(single.keys)), "value_1")
        entities = data.draw(entity_rows(pair.keys, pair_rows + single_rows, timedelta(hours=24)))
        tables_rows = [(pair, pair_rows), (single, single_rows)]
        result = run_join(
            tmp_path_factory.mktemp("pit"), tables_rows, entities, cutoff, engine, endpoint
        )
        assert_matches_oracle(result, tables_rows, entities, cutoff)

    check()


@pytest.mark.parametrize("engine", JOIN_ENGINES)
def test_value_older_than_ttl_is_not_joined_and_edge_is_inclusive(tmp_path, engine) -> None:
    table = synthetic_table(ttl=timedelta(hours=30), features=("value_0",))
    row = {
        "user_id": 1,
        "feature_date": date(2026, 1, 1),
        "event_timestamp": BASE,
        "created_at": BASE,
        "value_0": 7,
    }
    entities = [
        {"user_id": 1, "event_timestamp": BASE + timedelta(hours=30)},
        {"user_id": 1, "event_timestamp": BASE + timedelta(hours=30, microseconds=1)},
        {"user_id": 1, "event_timestamp": BASE - timedelta(microseconds=1)},
    ]
    result = run_join(tmp_path, [(table, [row])], entities, engine=engine)
    assert [None if pd.isna(v) else v for v in result["value_0"]] == [7, None, None]


@pytest.mark.parametrize("engine", JOIN_ENGINES)
def test_empty_feature_table_gives_nulls_and_keeps_rows(tmp_path, engine) -> None:
    table = synthetic_table(features=("value_0",))
    entities = [{"user_id": 1, "event_timestamp": BASE}, {"user_id": 1, "event_timestamp": BASE}]
    result = run_join(tmp_path, [(table, [])], entities, engine=engine)
    assert len(result) == 2 and result["value_0"].isna().all()


def test_timezone_aware_entity_times_are_converted_to_utc(tmp_path) -> None:
    table = synthetic_table(ttl=None, features=("value_0",))
    store = OfflineStore(root=str(tmp_path / "offline"), staging_root=str(tmp_path / "staging"))
    publish_rows(
        store,
        table,
        [
            {
                "user_id": 1,
                "feature_date": date(2026, 1, 1),
                "event_timestamp": BASE + timedelta(hours=10),
                "created_at": BASE,
                "value_0": 1,
            },
        ],
    )
    sdk = FeatureStore({table.name: table}, store, OnlineStore())
    # 11:00 in UTC+2 is 09:00 UTC: before the 10:00 UTC value became true.
    entity_df = pd.DataFrame(
        {
            "user_id": [1, 1],
            "event_timestamp": pd.to_datetime(
                ["2026-01-01T11:00:00+02:00", "2026-01-01T13:00:00+02:00"]
            ),
        }
    )
    result = sdk.get_historical_features(entity_df, [f"{table.name}:value_0"]).to_pandas()
    assert [None if pd.isna(v) else v for v in result["value_0"]] == [None, 1]
    assert result["event_timestamp"].tolist() == entity_df["event_timestamp"].tolist()


def test_unknown_feature_names_the_table_and_feature(tmp_path) -> None:
    table = synthetic_table(features=("value_0",))
    sdk = FeatureStore(
        {table.name: table},
        OfflineStore(root=str(tmp_path), staging_root=str(tmp_path)),
        OnlineStore(),
    )
    with pytest.raises(FeatureReferenceError, match="has no feature 'nope'"):
        sdk.get_historical_features(
            pd.DataFrame({"user_id": [1], "event_timestamp": [BASE]}), [f"{table.name}:nope"]
        )
    with pytest.raises(FeatureReferenceError, match="unknown feature table 'missing_daily_x_1d'"):
        sdk.get_historical_features(
            pd.DataFrame({"user_id": [1], "event_timestamp": [BASE]}), ["missing_daily_x_1d:v"]
        )


def test_boundary_ties_are_detected_only_when_midnight_rows_meet(tmp_path) -> None:
    table = synthetic_table(ttl=None, features=("value_0",))
    store = OfflineStore(root=str(tmp_path / "offline"), staging_root=str(tmp_path / "staging"))

    def at(day: int, hour: int, partition_day: int) -> dict:
        return {
            "user_id": 1,
            "feature_date": date(2026, 1, partition_day),
            "event_timestamp": datetime(2026, 1, day) + timedelta(hours=hour),
            "created_at": BASE,
            "value_0": day,
        }

    publish_rows(store, table, [at(2, 0, 1)])  # ends day 1 at midnight
    publish_rows(store, table, [at(2, 6, 2)])  # day 2 starts later: no tie possible
    con = store.connect()
    assert not _boundary_ties_possible(con, table, store.published_files(table))
    publish_rows(store, table, [at(2, 0, 2), at(2, 6, 2)])  # day 2 now starts at that midnight
    assert _boundary_ties_possible(con, table, store.published_files(table))


def test_partitions_outside_the_entity_window_are_not_read(tmp_path) -> None:
    table = synthetic_table(ttl=timedelta(days=2), features=("value_0",))
    store = OfflineStore(root=str(tmp_path / "offline"), staging_root=str(tmp_path / "staging"))
    for day in range(1, 21):
        publish_rows(
            store,
            table,
            [
                {
                    "user_id": 1,
                    "feature_date": date(2026, 1, day),
                    "event_timestamp": datetime(2026, 1, day, 12),
                    "created_at": BASE,
                    "value_0": day,
                }
            ],
        )
    files = store.files_for_window(table, datetime(2026, 1, 10, 6), datetime(2026, 1, 12, 6))
    # entity times 10th 06:00 .. 12th 06:00, ttl 2 days: rows from the 8th 06:00 on can match
    assert [f.rsplit("/", 2)[-2] for f in files] == [
        f"feature_date=2026-01-{d:02d}" for d in range(7, 13)
    ]


@pytest.mark.spark
@pytest.mark.parametrize("cutoff", [False, True])
def test_the_spark_plan_returns_the_duckdb_plans_rows_and_types(tmp_path, cutoff) -> None:
    """String and integer keys, every feature type, NULL and NaN values, unknown keys,
    duplicate input rows, full feature names: the same Arrow table from either engine."""
    table = synthetic_table(
        name="user_daily_merchant_visits_30d",
        keys=("user_id", "merchant"),
        key_types={"user_id": "int", "merchant": "str"},
        ttl=timedelta(hours=36),
        features=("count", "amount", "label", "flag"),
        feature_types={"count": "int", "amount": "float", "label": "str", "flag": "bool"},
    )
    rows = [
        {
            "user_id": user,
            "merchant": merchant,
            "feature_date": (BASE + timedelta(hours=hour)).date(),
            "event_timestamp": BASE + timedelta(hours=hour),
            "created_at": BASE + timedelta(hours=hour + lag),
            "count": None if hour == 12 else hour,
            "amount": float("nan") if hour == 30 else hour / 3,
            "label": f"{merchant}-{hour}",
            "flag": hour % 2 == 0,
        }
        for user in (1, 2)
        for merchant in ("a", "b'c")
        for hour, lag in ((1, 0), (12, 3), (30, 1), (50, 0))
    ]
    entities = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 2, 2, 1, 2],
            "merchant": ["a", "a", "b'c", "", "b'c", "zzz", "b'c"],
            "event_timestamp": pd.to_datetime(
                [
                    "2026-01-01T13:00",
                    "2026-01-01T13:00",
                    "2026-01-03T02:00",
                    "2026-01-02",
                    "2026-01-01T12:30:00.000001",
                    "2026-01-02",
                    "2026-01-02T07:00",
                ],
                format="ISO8601",
            ).astype("datetime64[us]"),
            "note": ["x", "y", None, "z", "w", "v", "u"],
        }
    )
    results = []
    for engine in ("duckdb", "spark"):
        store = OfflineStore(
            root=str(tmp_path / "offline"), staging_root=str(tmp_path / "staging"), engine=engine
        )
        if engine == "duckdb":
            publish_rows(store, table, rows)
        results.append(
            store.get_historical_features(
                entities,
                [FeatureRequest(table, ("count", "amount", "label", "flag"))],
                full_feature_names=True,
                created_timestamp_cutoff=cutoff,
            ).to_arrow()
        )
    duckdb_rows, spark_rows = results
    # The entity rows went to Spark through a scratch file, removed after the join.
    assert not list(store.spark_work_dir.glob("join-*"))
    assert spark_rows.schema == duckdb_rows.schema
    # NaN equals NaN here: a stored NaN must come back as NaN, not NULL.
    pd.testing.assert_frame_equal(spark_rows.to_pandas(), duckdb_rows.to_pandas())
    amounts = duckdb_rows.column(f"{table.name}__amount").to_pylist()
    assert any(a is not None and a != a for a in amounts)  # the NaN row was joined
    assert None in amounts and duckdb_rows.num_rows == len(entities)


@pytest.mark.parametrize("engine", JOIN_ENGINES)
def test_with_the_cutoff_an_older_row_created_later_does_not_win(tmp_path, engine) -> None:
    """Under the cutoff, rows become candidates in created-time order, not event-time order:
    the winner is still the latest event time among those created by the entity time."""
    table = synthetic_table(ttl=None, features=("value_0",))

    def row(event_hour: int, created_hour: int, value: int) -> dict:
        return {
            "user_id": 1,
            "feature_date": BASE.date(),
            "event_timestamp": BASE + timedelta(hours=event_hour),
            "created_at": BASE + timedelta(hours=created_hour),
            "value_0": value,
        }

    rows = [row(10, 20, 1), row(15, 16, 2)]  # the older row is created last
    entities = [{"user_id": 1, "event_timestamp": BASE + timedelta(hours=h)} for h in (25, 17, 12)]
    result = run_join(tmp_path, [(table, rows)], entities, cutoff=True, engine=engine)
    assert [None if pd.isna(v) else int(v) for v in result["value_0"]] == [2, 2, None]
    assert_matches_oracle(result, [(table, rows)], entities, cutoff=True)
