"""Issue 12's capabilities against their floors, in one run on one server.

    .venv/bin/python -m benchmarks.capabilities [--server moto|dynamodb-local]

- co-located service read (one item per entity) vs the same service read table by table;
- on-demand overhead online: one entity, the three demo functions, with vs without (the
  whole SDK read, and the compute step alone), and offline: 100k entity rows, the join
  with the on-demand features vs the join alone;
- push throughput (validation, push log, conditional writes) vs raw conditional PutItem of
  ready-made items with the same concurrency.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.online_store import percentile, timed
from feature_assets.kernel.contract import (
    FeatureColumn,
    FeatureService,
    OnDemandFeature,
    OnDemandInput,
)
from feature_assets.sdk import FeatureStore
from resources.local_dynamodb import start_server, stop_server
from resources.offline_store import OfflineStore
from resources.on_demand import compute, request_column, stored_column
from resources.online_items import items_of
from resources.online_store import OnlineStore
from tests.builders import free_port, publish_rows, synthetic_table

FEATURES = ("clicks", "spend", "sessions", "amount_mean")
TABLES = [
    synthetic_table(
        name=f"user_daily_bench{i}_7d",
        ttl=timedelta(days=30),
        features=FEATURES,
        feature_types={"amount_mean": "float"},
    )
    for i in range(4)
]
SERVED = TABLES[:3]  # the co-located service's tables; pushes go to the fourth
DAY = date(2026, 11, 20)
EVENT = datetime(2026, 11, 21)
NOW = datetime(2026, 11, 21, 12)
DEMO = "feature_assets.on_demand_features"
ON_DEMAND = {
    "usd": OnDemandFeature(
        "usd",
        f"{DEMO}:amount_in_usd",
        (OnDemandInput("amount", "float"), OnDemandInput("usd_rate", "float")),
        (FeatureColumn("amount_usd", "float"),),
    ),
    "anomaly": OnDemandFeature(
        "anomaly",
        f"{DEMO}:amount_anomaly",
        (
            OnDemandInput("amount", "float"),
            OnDemandInput("usd_rate", "float"),
            OnDemandInput("mean_amount_7d", "float", f"{TABLES[0].name}:amount_mean"),
        ),
        (FeatureColumn("amount_to_mean_ratio_7d", "float"),),
    ),
    "tenure": OnDemandFeature(
        "tenure",
        f"{DEMO}:customer_tenure",
        (OnDemandInput("customer_since", "date"), OnDemandInput("request_date", "date")),
        (FeatureColumn("tenure_days", "int"),),
    ),
}
# The condition a push writes with (`OnlineStore.put_if_newer`), spelled out for the floor.
CONDITION = (
    "attribute_not_exists(#e) OR #e < :e OR (#e = :e AND (attribute_not_exists(#c) OR #c <= :c))"
)
ON_DEMAND_REFS = ["usd:amount_usd", "anomaly:amount_to_mean_ratio_7d", "tenure:tenure_days"]


def feature_rows(n: int) -> list[dict]:
    return [
        {
            "user_id": u,
            "feature_date": DAY,
            "event_timestamp": EVENT,
            "created_at": EVENT,
            "clicks": u % 97,
            "spend": u % 1000,
            "sessions": u % 13,
            "amount_mean": 10.0 + u % 50,
        }
        for u in range(n)
    ]


def report(label: str, ours: list[float], floor: list[float], names: tuple[str, str]) -> None:
    print(
        f"{label:40} {names[0]} p50 {statistics.median(ours):8.3f} p99 {percentile(ours, 0.99):8.3f} ms | "
        f"{names[1]} p50 {statistics.median(floor):8.3f} p99 {percentile(floor, 0.99):8.3f} ms | "
        f"ratio {statistics.median(ours) / statistics.median(floor):.2f}x"
    )


def interleaved(a, b, repeats: int) -> tuple[list[float], list[float]]:
    """Call by call, alternating: on a shared machine, drift hits both sides alike."""
    a(), b()  # warm up connections
    ours, floor = [], []
    for _ in range(repeats):
        for fn, out in ((a, ours), (b, floor)):
            start = time.perf_counter()
            fn()
            out.append((time.perf_counter() - start) * 1000)
    return ours, floor


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="moto", choices=["moto", "dynamodb-local"])
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--push-rows", type=int, default=2_000)
    parser.add_argument("--offline-rows", type=int, default=100_000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench_capabilities_"))
    server = start_server(home / "server", free_port(), args.server)
    try:
        online = OnlineStore(endpoint_url=server.endpoint, table_prefix=f"b{uuid.uuid4().hex[:6]}_")
        offline = OfflineStore(root=home / "offline", staging_root=home / "staging")
        service = FeatureService(
            "bench",
            tuple(f"{t.name}:{f}" for t in SERVED for f in FEATURES),
            full_feature_names=True,
            online_colocated=True,
        )
        store = FeatureStore(
            {t.name: t for t in TABLES}, offline, online, {"bench": service}, ON_DEMAND
        )
        for table in SERVED:
            publish_rows(offline, table, feature_rows(args.items))
            rows = offline.latest_rows(table)
            online.write_rows(table, rows)
            store.colocated("bench").write(table, list(FEATURES), rows, newer_only=False)
        print(
            f"server: {args.server}; {args.items} entities in 3 tables of {len(FEATURES)} features"
        )

        # --- co-located vs table by table ------------------------------------------------------
        for n in (1, 100):
            entities = [{"user_id": u} for u in range(7, 7 + n)]
            ours, floor = interleaved(
                lambda e=entities: store.get_online_features("bench", e, now=NOW),
                lambda e=entities: store.get_online_features(
                    list(service.features), e, now=NOW, full_feature_names=True
                ),
                args.repeats if n == 1 else args.repeats // 4,
            )
            report(
                f"service, {n} entit{'y' if n == 1 else 'ies'} x 3 tables",
                ours,
                floor,
                ("co-located", "per table"),
            )

        # --- on-demand overhead online ------------------------------------------------------
        stored = [f"{TABLES[0].name}:clicks", f"{TABLES[0].name}:amount_mean"]
        entity = [
            {
                "user_id": 7,
                "amount": 120.0,
                "usd_rate": 1.08,
                "customer_since": "2024-02-01",
                "request_date": "2026-11-21",
            }
        ]
        with_od, without = interleaved(
            lambda: store.get_online_features(stored + ON_DEMAND_REFS, entity, now=NOW),
            lambda: store.get_online_features(stored, entity, now=NOW),
            args.repeats,
        )
        report("online read, 1 entity, +3 on-demand", with_od, without, ("with", "without"))
        print(
            f"{'':40} overhead at p50: {statistics.median(with_od) - statistics.median(without):.3f} ms"
        )

        def compute_three() -> None:
            for feature in ON_DEMAND.values():
                inputs = {
                    i.name: (
                        stored_column([33.0], i.logical_type)
                        if i.feature
                        else request_column(feature, i.name, i.logical_type, [entity[0][i.name]])
                    )
                    for i in feature.inputs
                }
                compute(feature, inputs, 1)

        # The SDK's own cost, without the store's: the same calls with the read answered in
        # process (the server's jitter is larger than the difference measured above).
        from resources.online_items import OnlineStatus
        from resources.online_store import OnlineRead

        answered = OnlineStore(endpoint_url=server.endpoint)
        answered.read_tables = lambda requests, rows, now=None: [
            [OnlineRead(OnlineStatus.PRESENT, dict.fromkeys(fs, 33.0)) for _ in rows]
            for _, fs in requests
        ]
        in_process = FeatureStore(store.tables, offline, answered, {}, ON_DEMAND)
        sdk_with, sdk_without = interleaved(
            lambda: in_process.get_online_features(stored + ON_DEMAND_REFS, entity, now=NOW),
            lambda: in_process.get_online_features(stored, entity, now=NOW),
            args.repeats * 10,
        )
        report("SDK alone (read answered in process)", sdk_with, sdk_without, ("with", "without"))
        print(
            f"{'':40} overhead at p50: "
            f"{statistics.median(sdk_with) - statistics.median(sdk_without):.3f} ms (target < 0.5 ms)"
        )
        alone = timed(compute_three, args.repeats)
        print(
            f"{'compute() alone, 3 functions, 1 row':40} p50 {statistics.median(alone):8.3f} "
            f"p99 {percentile(alone, 0.99):8.3f} ms"
        )

        # --- on-demand overhead offline ------------------------------------------------------
        rng = np.random.default_rng(1)
        n = args.offline_rows
        frame = pa.table(
            {
                "user_id": rng.integers(0, args.items, n),
                "event_timestamp": pa.array([NOW] * n, pa.timestamp("us")),
                "amount": rng.uniform(1, 500, n),
                "usd_rate": rng.uniform(0.5, 1.5, n),
                "customer_since": pa.array([date(2024, 1, 1)] * n),
                "request_date": pa.array([date(2026, 11, 21)] * n),
            }
        )
        path = home / "entities.parquet"
        import pyarrow.parquet as pq

        pq.write_table(frame, path)
        join_od, join = interleaved(
            lambda: store.get_historical_features(path, stored + ON_DEMAND_REFS).to_arrow(),
            lambda: store.get_historical_features(path, stored).to_arrow(),
            10,
        )
        report(f"training set, {n:,} rows, +3 on-demand", join_od, join, ("with", "join alone"))

        # --- push vs raw conditional PutItem --------------------------------------------------
        table = TABLES[3]
        push_table = online.table_name(table)
        pushed, raw = [], []
        for round_ in range(3):
            stamp = EVENT + timedelta(hours=1 + 2 * round_)
            batch = [
                {
                    "user_id": u,
                    "event_timestamp": stamp,
                    "clicks": 1,
                    "spend": 2,
                    "sessions": 3,
                    "amount_mean": 4.0,
                }
                for u in range(args.push_rows)
            ]
            start = time.perf_counter()
            for s in range(0, len(batch), 100):
                store.push(table.name, batch[s : s + 100])
            pushed.append(args.push_rows / (time.perf_counter() - start))
            later = stamp + timedelta(hours=1)
            items = items_of(
                table,
                pa.Table.from_pylist(
                    [
                        {**r, "event_timestamp": later, "created_at": later, "feature_date": DAY}
                        for r in batch
                    ]
                ),
            )

            def put(item):
                online.client.put_item(
                    TableName=push_table,
                    Item=item,
                    ConditionExpression=CONDITION,
                    ExpressionAttributeNames={"#e": "event_timestamp", "#c": "created_timestamp"},
                    ExpressionAttributeValues={
                        ":e": item["event_timestamp"],
                        ":c": item["created_timestamp"],
                    },
                )

            start = time.perf_counter()
            with ThreadPoolExecutor(online.write_concurrency) as pool:
                list(pool.map(put, items))
            raw.append(args.push_rows / (time.perf_counter() - start))
        print(
            f"{'push, ' + str(args.push_rows) + ' rows in pushes of 100':40} "
            f"push {statistics.median(pushed):,.0f} rows/s | raw conditional PutItem "
            f"{statistics.median(raw):,.0f} items/s | "
            f"{statistics.median(pushed) / statistics.median(raw):.0%} of raw "
            f"(median of 3; concurrency {online.write_concurrency})"
        )
    finally:
        stop_server(home / "server")


if __name__ == "__main__":
    main()
