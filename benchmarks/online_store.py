"""Online reads and sync throughput vs raw boto3 on the same server, in the same run.

    .venv/bin/python -m benchmarks.online_store [--server moto|dynamodb-local] [--items 20000]

Reads: `get_online_features` (1 entity x 3 tables, 100 entities x 3 tables) against raw
boto3 BatchGetItem packing the same keys the same way (up to 100 keys a request, requests in
parallel) with the same projection, without parsing. Sync: `OnlineStore.write_rows` from an
Arrow table against raw BatchWriteItem of ready-made items, both with the same concurrency.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa

from feature_assets.sdk import FeatureStore
from resources.local_dynamodb import start_server, stop_server
from resources.offline_store import OfflineStore
from resources.online_items import items_of
from resources.online_store import OnlineStore
from tests.builders import free_port, synthetic_table

ROOT = Path(__file__).resolve().parent.parent

FEATURES = ("clicks", "spend", "sessions", "score")


def rows(n: int, seed: int) -> pa.Table:
    event = datetime(2026, 11, 21)
    return pa.Table.from_pylist(
        [
            {
                "user_id": u,
                "feature_date": event.date(),
                "event_timestamp": event,
                "created_at": event,
                "clicks": (u * seed) % 97,
                "spend": (u * seed) % 1000,
                "sessions": u % 13,
                "score": (u + seed) % 7,
            }
            for u in range(n)
        ]
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm up connections
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def report(label: str, ours: list[float], raw: list[float]) -> None:
    ratio = statistics.median(ours) / statistics.median(raw)
    print(
        f"{label:34} sdk p50 {statistics.median(ours):7.2f} p99 {percentile(ours, 0.99):7.2f} ms | "
        f"raw p50 {statistics.median(raw):7.2f} p99 {percentile(raw, 0.99):7.2f} ms | ratio {ratio:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="moto", choices=["moto", "dynamodb-local"])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench_online_"))
    server = start_server(home / "server", free_port(), args.server)
    try:
        online = OnlineStore(
            endpoint_url=server.endpoint,
            table_prefix=f"b{uuid.uuid4().hex[:6]}_",
            write_concurrency=args.concurrency,
        )
        client = online.client
        tables = [
            synthetic_table(
                name=f"user_daily_bench{i}_7d", ttl=timedelta(days=30), features=FEATURES
            )
            for i in range(3)
        ]

        # --- sync throughput: alternate rounds so server warm-up (JIT, caches) favours neither --
        for table in tables:
            online.ensure_table(table)
        data = rows(args.items, 1)
        name = online.table_name(tables[1])
        items = items_of(tables[1], data)
        batches = [items[i : i + 25] for i in range(0, len(items), 25)]

        def raw_write(batch):
            request = {name: [{"PutRequest": {"Item": item}} for item in batch]}
            while request:
                request = (
                    client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
                )

        ours, raw = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            online.write_rows(tables[0], data)
            ours.append(args.items / (time.perf_counter() - start))
            start = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(raw_write, batches))
            raw.append(args.items / (time.perf_counter() - start))
        online.write_rows(tables[2], rows(args.items, 3))
        print(
            f"server: {args.server}; {args.items} items per table; write concurrency {args.concurrency}"
        )
        print(
            f"sync throughput (median of {args.rounds}): write_rows {statistics.median(ours):,.0f} items/s "
            f"| raw BatchWriteItem {statistics.median(raw):,.0f} items/s "
            f"| {statistics.median(ours) / statistics.median(raw):.0%} of raw"
        )

        # --- reads ------------------------------------------------------------------------
        store = FeatureStore(
            {t.name: t for t in tables},
            OfflineStore(root=str(home), staging_root=str(home)),
            online,
        )
        refs = [f"{t.name}:{f}" for t in tables for f in FEATURES]
        projection = {f"#a{i}": n for i, n in enumerate(["user_id", *FEATURES, "event_timestamp"])}

        raw_pool = ThreadPoolExecutor(online.read_concurrency)  # as the SDK: one pool, reused

        def raw_read(user_ids: list[int]) -> None:
            keys = [(online.table_name(t), u) for t in tables for u in user_ids]
            requests = []
            for s in range(0, len(keys), 100):
                request: dict = {}
                for table_name, u in keys[s : s + 100]:
                    entry = request.setdefault(
                        table_name,
                        {
                            "Keys": [],
                            "ProjectionExpression": ", ".join(projection),
                            "ExpressionAttributeNames": projection,
                        },
                    )
                    entry["Keys"].append({"user_id": {"N": str(u)}})
                requests.append(request)

            def get(request):
                while request:
                    request = (
                        client.batch_get_item(RequestItems=request).get("UnprocessedKeys") or {}
                    )

            if len(requests) == 1:
                get(requests[0])
            else:
                list(raw_pool.map(get, requests))

        for n, repeats in ((1, args.repeats), (100, max(20, args.repeats // 4))):
            users = list(range(7, 7 + n))
            entities = [{"user_id": u} for u in users]
            sdk_times, raw_times = [], []
            for _ in range(3):  # interleave blocks so drift hits both
                sdk_times += timed(
                    lambda entities=entities: store.get_online_features(
                        refs, entities, full_feature_names=True
                    ),
                    repeats // 3,
                )
                raw_times += timed(lambda users=users: raw_read(users), repeats // 3)
            report(f"{n} entit{'y' if n == 1 else 'ies'} x 3 tables", sdk_times, raw_times)
    finally:
        stop_server(home / "server")


if __name__ == "__main__":
    main()
