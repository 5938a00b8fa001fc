"""Online reads with and without the serving log at rate 1.0, and drift over a logged day.

    .venv/bin/python -m benchmarks.serving_log [--server moto|dynamodb-local] [--repeats 300]
        [--drift-reads 1000000]

Reads: the same `get_online_features` of a service (one table, 5 features; 1 entity and
100 entities per read), on two SDK objects sharing one online store client: one without a
serving log, one logging every read (rate 1.0, writer thread running). Calls alternate, so
the noise of a shared machine and the server falls on both. Prints p50, p99 and the ratio.

Drift: a serving log of `--drift-reads` entity reads of that service (5 values each, written
through `ServingLog` in one day) against a saved training set of 100,000 rows; times what the
drift asset does (read the day's log, pivot per feature, read the reference, `compare`),
next to the floor of reading the same Parquet columns with DuckDB alone.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from feature_assets import saved_training_sets
from feature_assets.kernel.contract import Contract, FeatureService
from feature_assets.monitoring.drift import compare
from feature_assets.monitoring.sources import samples_for
from feature_assets.sdk import FeatureStore
from resources import serving_log
from resources.local_dynamodb import start_server, stop_server
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from resources.serving_log import ServedColumn, ServingLog
from tests.builders import free_port, publish_rows, synthetic_table

FEATURES = ("clicks", "spend", "sessions", "score", "segment")
TABLE = synthetic_table(
    name="user_daily_bench_7d",
    ttl=timedelta(days=30),
    features=FEATURES,
    feature_types={"spend": "float", "segment": "str"},
)
SERVICE = FeatureService("bench_v1", tuple(f"{TABLE.name}:{f}" for f in FEATURES))
DAY = date(2026, 11, 21)


def rows(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    stamp = datetime(2026, 11, 22)
    return [
        {
            "user_id": u,
            "feature_date": DAY,
            "event_timestamp": stamp,
            "created_at": stamp,
            "clicks": int(rng.poisson(5)),
            "spend": float(rng.normal(100, 20)),
            "sessions": int(rng.integers(0, 9)),
            "score": int(rng.integers(0, 7)),
            "segment": f"s{int(rng.integers(0, 12))}",
        }
        for u in range(n)
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def report(label: str, ours: list[float], floor: list[float], floor_label: str) -> None:
    a, b = statistics.median(ours), statistics.median(floor)
    print(
        f"{label:44} p50 {a * 1000:8.2f} ms  p99 {percentile(ours, 0.99) * 1000:8.2f} ms | "
        f"{floor_label} p50 {b * 1000:8.2f} ms  p99 {percentile(floor, 0.99) * 1000:8.2f} ms"
        f" | ratio {a / b:.3f}x"
    )


def reads(args: argparse.Namespace, home: Path) -> None:
    server = start_server(home / "server", free_port(), args.server)
    try:
        offline = OfflineStore(root=str(home / "offline"), staging_root=str(home / "staging"))
        online = OnlineStore(endpoint_url=server.endpoint, table_prefix=f"b{uuid.uuid4().hex[:6]}_")
        publish_rows(offline, TABLE, rows(args.items, 1))
        online.write_rows(TABLE, offline.latest_rows(TABLE))
        services = {SERVICE.name: SERVICE}
        plain = FeatureStore({TABLE.name: TABLE}, offline, online, services)
        logged = FeatureStore(
            {TABLE.name: TABLE},
            offline,
            online,
            services,
            serving_log=ServingLog(offline.root, sample_rate=1.0),
        )
        rng = np.random.default_rng(3)
        for entities in (1, 100):
            timings: dict[str, list[float]] = {"plain": [], "logged": []}
            for repeat in range(args.repeats + 10):
                batch = [{"user_id": int(u)} for u in rng.integers(0, args.items, entities)]
                order = ("plain", "logged") if repeat % 2 else ("logged", "plain")
                for which in order:
                    store = plain if which == "plain" else logged
                    started = time.perf_counter()
                    store.get_online_features(SERVICE.name, batch)
                    if repeat >= 10:  # the first rounds warm the server and the pools
                        timings[which].append(time.perf_counter() - started)
            report(
                f"{entities} entit{'y' if entities == 1 else 'ies'} x 5 features, logged",
                timings["logged"],
                timings["plain"],
                "no log",
            )
        logged.close()
        stats = logged.serving_log.stats()
        print(f"serving log: {stats.written_rows:,} rows written, {stats.dropped_rows} dropped")
    finally:
        stop_server(home / "server")


def drift(args: argparse.Namespace, home: Path) -> None:
    offline = OfflineStore(root=str(home / "drift"), staging_root=str(home / "drift_staging"))
    contract = Contract({TABLE.name: TABLE}, {SERVICE.name: SERVICE}, {}, {})
    store = FeatureStore(contract.tables, offline, None, contract.services)  # type: ignore[arg-type]
    # The reference: a saved training set of the service (written as the SDK writes one).
    reference = home / "trained"
    reference.mkdir()
    frame = pd.DataFrame(rows(100_000, 2)).rename(columns={"event_timestamp": "ts"})
    frame[["user_id", "ts", *FEATURES]].to_parquet(reference / "data.parquet")
    saved_training_sets.record_reference(offline.root, SERVICE.name, reference)
    # The served day: --drift-reads entity reads through the serving log's own writer.
    log = ServingLog(offline.root, sample_rate=1.0, max_pending_rows=10**9)
    columns = [ServedColumn(f, TABLE.name, stored=True) for f in FEATURES]
    served = rows(100_000, 3)
    statuses = [{TABLE.name: "present"}] * 100
    when = datetime(DAY.year, DAY.month, DAY.day, 12, tzinfo=UTC)
    started = time.perf_counter()
    for n in range(args.drift_reads // 100):
        start = (n * 100) % len(served)
        batch = served[start : start + 100]
        log.record(f"r{n}", when, SERVICE.name, columns, ["user_id"], batch, statuses[: len(batch)])
    log.close()
    written = log.stats().written_rows
    print(
        f"serving log: {written:,} rows ({args.drift_reads:,} reads x 5) written in "
        f"{time.perf_counter() - started:.1f} s"
    )
    files = [str(p) for p in serving_log.served_files(offline.root, [DAY])]
    ours, floor = [], []
    for _ in range(args.repeats_drift):
        started = time.perf_counter()
        monitored, current, ref = samples_for(store, SERVICE, DAY)
        results = compare(ref.values, current.values, kinds={c.name: c.kind for c in monitored})
        ours.append(time.perf_counter() - started)
        assert results[0].count == args.drift_reads, results[0]
        started = time.perf_counter()
        with duckdb.connect() as connection:
            connection.sql(
                "SELECT feature, value_number, value_text FROM read_parquet(?) "
                "WHERE feature_service = ?",
                params=[files, SERVICE.name],
            ).to_arrow_table()
        pq.read_table(reference / "data.parquet", columns=list(FEATURES))
        floor.append(time.perf_counter() - started)
    report(f"drift, {args.drift_reads:,} logged reads", ours, floor, "read only")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="moto", choices=["moto", "dynamodb-local"])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--drift-reads", type=int, default=1_000_000)
    parser.add_argument("--repeats-drift", type=int, default=5)
    parser.add_argument("--skip-reads", action="store_true")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench_serving_log_"))
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, server {args.server}")
    if not args.skip_reads:
        reads(args, home)
    drift(args, home)


if __name__ == "__main__":
    main()
