"""Sync throughput under throttling: `OnlineStore.write_rows` against raw boto3 BatchWriteItem
(4 threads, UnprocessedItems retried, boto3's default client) through the same proxy that
throttles a share of requests and leaves a share of each batch unprocessed.

    .venv/bin/python -m benchmarks.throttling --items 4000 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

from benchmarks.online_store import FEATURES, percentile, rows
from resources.local_dynamodb import start_server, stop_server
from resources.online_items import items_of
from resources.online_store import OnlineStore
from tests.builders import free_port, synthetic_table
from tests.throttling_proxy import throttling_proxy

TABLE = synthetic_table(name="user_daily_bench_7d", features=FEATURES)


def raw_rate(endpoint: str, name: str, items: list[dict], concurrency: int) -> float:
    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )

    def write(batch: list[dict]) -> None:
        request = {name: [{"PutRequest": {"Item": item}} for item in batch]}
        while request:
            try:
                request = (
                    client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
                )
            except ClientError:
                time.sleep(0.05)  # throttled beyond boto3's own retries: try the batch again

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(write, [items[i : i + 25] for i in range(0, len(items), 25)]))
    return len(items) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=4_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.1, 0.3])
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench_throttle_"))
    server = start_server(home, free_port(), "moto")
    try:
        data = rows(args.items, 1)
        items = items_of(TABLE, data)
        print(f"{args.items} items, 4 writers, median and p1 (worst) of {args.rounds} rounds")
        for share in args.shares:
            ours, raw = [], []
            with throttling_proxy(server.endpoint, share, share) as (endpoint, counts):
                online = OnlineStore(
                    endpoint_url=endpoint, table_prefix=f"b{uuid.uuid4().hex[:6]}_"
                )
                online.ensure_table(TABLE)
                for _ in range(args.rounds):
                    start = time.perf_counter()
                    online.write_rows(TABLE, data)
                    ours.append(args.items / (time.perf_counter() - start))
                    raw.append(raw_rate(endpoint, online.table_name(TABLE), items, 4))
            ours_p, raw_p = statistics.median(ours), statistics.median(raw)
            print(
                f"throttled {share:4.0%} + unprocessed {share:4.0%}: "
                f"write_rows {ours_p:7,.0f} items/s (worst {percentile(ours, 0.01):7,.0f}) | "
                f"raw {raw_p:7,.0f} items/s (worst {percentile(raw, 0.01):7,.0f}) | "
                f"ratio {ours_p / raw_p:.2f}x | "
                f"{counts.requests} requests, {counts.throttled} throttled, {counts.partial} partial"
            )
    finally:
        stop_server(home)


if __name__ == "__main__":
    main()
