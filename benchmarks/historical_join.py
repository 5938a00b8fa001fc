"""Training-set join vs a raw DuckDB ASOF join on the same Parquet files, in the same run.

    .venv/bin/python -m benchmarks.historical_join [--sizes small large] [--repeats 5] [--spark]

Each measurement runs in a fresh process (so peak RSS is that join's own), alternating
project and floor. Prints median, p99 (nearest rank), the ratio of medians and peak RSS.
With `--spark`, the project's Spark plan (FEATURE_STORE_ENGINE=spark, local[2]) runs too: its
join is timed after the session has started (the start is printed apart), and its rows must
sum to the DuckDB plan's. Peak RSS is the Python process's; Spark's JVM is not counted.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parent.parent

SIZES = {"small": (100_000, 1_000_000), "large": (1_000_000, 10_000_000)}
USERS_PER_DAY = {"small": 20_000, "large": 100_000}
FEATURES = ("value", "count_7d")
START = date(2026, 1, 1)


def table(size: str):
    from tests.builders import synthetic_table

    return synthetic_table(
        name=f"user_daily_bench{size}_7d", ttl=timedelta(days=30), features=FEATURES
    )


def generate(data: Path, size: str) -> None:
    """Daily partitions in the store's layout, and an entity file, unless already there."""
    from resources.offline_store import OfflineStore

    entities, rows = SIZES[size]
    users = USERS_PER_DAY[size]
    days = rows // users
    store = OfflineStore(root=str(data / "offline"), staging_root=str(data / "staging"))
    marker = data / f"{size}.done"
    if marker.exists():
        return
    con = duckdb.connect()
    for i in range(days):
        day = START + timedelta(days=i)
        path = store.partition_path(table(size), day)
        path.parent.mkdir(parents=True, exist_ok=True)
        con.execute(f"""COPY (
            SELECT u::BIGINT AS user_id, DATE '{day}' AS feature_date,
                   TIMESTAMP '{day}' + INTERVAL 1 DAY AS event_timestamp,
                   TIMESTAMP '{day}' + INTERVAL 1 DAY + INTERVAL 1 HOUR AS created_at,
                   (hash(u, {i}) % 1000)::BIGINT AS value, (hash({i}, u) % 50)::BIGINT AS count_7d
            FROM range({users}) t(u) ORDER BY user_id
        ) TO '{path}' (FORMAT parquet)""").fetchall()
    con.execute(f"""COPY (
        SELECT (hash(i) % {users})::BIGINT AS user_id,
               TIMESTAMP '{START}'
                 + to_microseconds((hash(i * 7) % ({days} * 86400000000))::BIGINT) AS event_timestamp,
               (i % 2)::INTEGER AS label
        FROM range({entities}) t(i)
    ) TO '{data / f"entities_{size}.parquet"}' (FORMAT parquet)""").fetchall()
    marker.touch()


def run_once(data: Path, size: str, kind: str) -> dict:
    """One join in this process; returns seconds, rows and peak RSS."""
    from feature_assets.sdk import FeatureStore
    from resources.offline_store import OfflineStore
    from resources.online_store import OnlineStore

    t = table(size)
    engine = "spark" if kind == "spark" else "duckdb"
    store = OfflineStore(
        root=str(data / "offline"), staging_root=str(data / "staging"), engine=engine
    )
    entities = data / f"entities_{size}.parquet"
    session_s = 0.0
    if kind == "spark":
        from resources.spark_session import spark_session

        started = time.perf_counter()
        spark_session(data / "staging" / ".spark")
        session_s = time.perf_counter() - started
    started = time.perf_counter()
    if kind in ("project", "spark"):
        sdk = FeatureStore({t.name: t}, store, OnlineStore())
        result = sdk.get_historical_features(
            entities, [f"{t.name}:{f}" for f in FEATURES]
        ).to_arrow()
    else:
        files = ", ".join(f"'{p}'" for p in store.published_files(t))
        result = (
            duckdb.connect()
            .sql(f"""
            SELECT e.*, f.value, f.count_7d
            FROM read_parquet('{entities}') AS e
            ASOF LEFT JOIN read_parquet([{files}]) AS f
              ON e.user_id = f.user_id AND e.event_timestamp >= f.event_timestamp
        """)
            .to_arrow_table()
        )
    seconds = time.perf_counter() - started
    values = result.column("value")
    return {
        "seconds": seconds,
        "session_s": session_s,
        "rows": result.num_rows,
        "checksum": [pc.sum(values).as_py(), values.null_count],
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * len(ordered) + 0.5) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["small", "large"], choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", type=Path, default=ROOT / ".feature_store" / "bench_join")
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "KIND"))
    parser.add_argument("--spark", action="store_true", help="the Spark plan too")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_once(args.data, *args.child)))
        return
    for size in args.sizes:
        generate(args.data, size)
        kinds = ("project", "raw", "spark") if args.spark else ("project", "raw")
        runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
        for _ in range(args.repeats):
            for kind in kinds:
                out = (
                    subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "benchmarks.historical_join",
                            "--data",
                            str(args.data),
                        ]
                        + ["--child", size, kind],
                        check=True,
                        cwd=ROOT,
                        capture_output=True,
                        text=True,
                    )
                    .stdout.strip()
                    .splitlines()[-1]
                )
                runs[kind].append(json.loads(out))
        entities, rows = SIZES[size]
        print(f"\n{entities:,} entity rows x {rows:,} feature rows ({args.repeats} runs each)")
        print(f"{'':8} {'median s':>9} {'p99 s':>8} {'peak RSS MiB':>13}")
        for kind, results in runs.items():
            seconds = [r["seconds"] for r in results]
            peak = max(r["rss_mib"] for r in results)
            print(f"{kind:8} {statistics.median(seconds):9.2f} {p99(seconds):8.2f} {peak:13.0f}")
        ratio = statistics.median(r["seconds"] for r in runs["project"]) / statistics.median(
            r["seconds"] for r in runs["raw"]
        )
        assert {r["rows"] for r in runs["project"]} == {entities}
        print(f"ratio project / raw ASOF (medians): {ratio:.2f}x")
        if args.spark:
            spark = [r["seconds"] for r in runs["spark"]]
            assert {tuple(r["checksum"]) for r in runs["spark"]} == {
                tuple(r["checksum"]) for r in runs["project"]
            }, "the Spark plan's rows differ from the DuckDB plan's"
            starts = statistics.median(r["session_s"] for r in runs["spark"])
            print(
                f"ratio Spark plan / project DuckDB plan (medians): "
                f"{statistics.median(spark) / statistics.median(r['seconds'] for r in runs['project']):.2f}x"
                f"; Spark session start (not in the join's time) {starts:.1f} s"
            )


if __name__ == "__main__":
    main()
