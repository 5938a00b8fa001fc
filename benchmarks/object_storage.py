"""The offline root on S3 (moto's server on 127.0.0.1) against the same store on local disk.

    .venv/bin/python -m benchmarks.object_storage [--size small] [--repeats 5]

Data: `historical_join`'s (the small size: 50 days of 20,000 users, 100,000 entity rows).
Each day is staged and published through the project's publish on both roots. Then, with
repeats alternating, the training-set join on each root, and the floor: a raw DuckDB ASOF
join over the local files. Prints medians, p99 and the ratios.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import duckdb

from benchmarks.historical_join import FEATURES, ROOT, START, generate, p99, table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="small", choices=["small", "large"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", type=Path, default=ROOT / ".feature_store" / "bench_join")
    args = parser.parse_args()

    from feature_assets.sdk import FeatureStore
    from resources.local_dynamodb import start_server, stop_server
    from resources.offline_store import OfflineStore
    from resources.online_store import OnlineStore
    from tests.builders import free_port, s3_offline_store

    generate(args.data, args.size)
    t = table(args.size)
    source = OfflineStore(root=str(args.data / "offline"), staging_root=str(args.data / "staging"))
    days = source.published_days(t)
    work = Path(tempfile.mkdtemp(prefix="bench_s3_"))
    server_home = work / "server"
    server = start_server(server_home, free_port(), "moto")
    try:
        stores = {
            "local": OfflineStore(root=work / "local", staging_root=work / "local_staging"),
            "s3": s3_offline_store(work / "s3", server.endpoint),
        }
        publish = {}
        for kind, store in stores.items():
            started = time.perf_counter()
            for day in days:  # a run per day, as the daily schedule publishes
                run_id = uuid.uuid4().hex
                staged = store.staged_path(t, run_id)
                staged.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source.partition_path(t, day), staged)
                store.publish(t, run_id, [day])
                store.discard_staged(t, run_id)
            publish[kind] = (time.perf_counter() - started) / len(days)
        print(
            f"publish, per day ({len(days)} days of {args.size}): local {publish['local']:.3f} s, "
            f"s3 {publish['s3']:.3f} s, ratio {publish['s3'] / publish['local']:.2f}x"
        )

        entities = args.data / f"entities_{args.size}.parquet"
        times: dict[str, list[float]] = {"floor": [], "local": [], "s3": []}
        sums = {}
        for _ in range(args.repeats):
            for kind in ("floor", "local", "s3"):
                started = time.perf_counter()
                if kind == "floor":
                    files = ", ".join(f"'{p}'" for p in stores["local"].published_files(t))
                    result = duckdb.sql(f"""
                        SELECT e.*, f.value, f.count_7d FROM read_parquet('{entities}') AS e
                        ASOF LEFT JOIN read_parquet([{files}]) AS f
                          ON e.user_id = f.user_id AND e.event_timestamp >= f.event_timestamp
                    """).to_arrow_table()
                else:
                    sdk = FeatureStore({t.name: t}, stores[kind], OnlineStore())
                    result = sdk.get_historical_features(
                        entities, [f"{t.name}:{f}" for f in FEATURES]
                    ).to_arrow()
                times[kind].append(time.perf_counter() - started)
                sums[kind] = (result.num_rows, result.column("value").to_pandas().sum())
        assert sums["local"] == sums["s3"] == sums["floor"], sums
        floor = statistics.median(times["floor"])
        for kind in ("floor", "local", "s3"):
            median = statistics.median(times[kind])
            print(
                f"join {kind:5}: median {median:.3f} s, p99 {p99(times[kind]):.3f} s, "
                f"{median / floor:.2f}x the raw ASOF floor"
            )
        print(
            f"s3 / local join: {statistics.median(times['s3']) / statistics.median(times['local']):.2f}x"
        )
        print(f"(first day {START}, {len(days)} days, {sums['s3'][0]:,} entity rows)")
    finally:
        stop_server(server_home)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
