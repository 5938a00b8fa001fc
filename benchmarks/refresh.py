"""A daily refresh end to end, phase by phase, next to its floors measured in the same run.

    .venv/bin/python -m benchmarks.refresh [--server moto|dynamodb-local] [--users 20000]
    .venv/bin/python -m benchmarks.refresh --rss      # peak RSS of the publish check

Refresh: a store is built with `feature-store demo` (not timed), then `feature-store backfill
<day> <day>` (one day, four tables) runs `--repeats` times as a user runs it, each in a new
process; the wall time is split into the time before the run's first step (process start,
imports, definitions, run launch) and each step's own time (from the run's Dagster event
log). Floors, measured right after each run: the four models' compiled SQL run directly in
DuckDB for that day, and raw boto3 BatchWriteItem of the same day's items of the three online
tables on the same server (same concurrency), then of the co-located services' items as the
run left them; the ratio is each run's wall time over its own floors. Repeats rebuild the
same day, as a later refresh the same day does (late data): values that did not change are
not written again. With `--rewrite-all`, the online
tables and the syncs' memory of them are dropped before each run, so every item is written
(the cost of a day in which every value changed). With `--next-day`, the store is built (by
`generate-data` and one `backfill`, not timed) up to `--repeats` days before yesterday, and
each repeat refreshes the next day, whose data nothing has seen yet: the daily refresh of a
store in production.

RSS: the publish check's work (batch-wise pandera audit, DuckDB duplicates and statistics,
one-pass publish) over 1 and 60 staged days of 20,000 rows, each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RSS_TABLE = "user_daily_transactions_7d"
RSS_FIRST_DAY = date(2026, 1, 1)
MODELS = (
    "user_daily_transactions_7d",
    "user_category_daily_spend_30d",
    "customer_daily_balance_30d",
    "customer_daily_engagement_7d",
)


def env_for(home: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "FEATURE_STORE_HOME": str(home),
        "FEATURE_STORE_DYNAMODB_ENDPOINT": f"http://127.0.0.1:{port}",
    }


def run(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def step_times(home: Path) -> tuple[float, float, dict[str, float]]:
    """(seconds from the run's creation to its end, to its first step, each step's seconds)
    of the newest pipeline run in the store's Dagster instance."""
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    import dagster as dg

    instance = dg.DagsterInstance.get()
    # The pipeline's runs only: the demo ends with a run of the monitoring job.
    record = instance.get_run_records(filters=dg.RunsFilter(job_name="feature_pipeline"), limit=1)[
        0
    ]
    stats = instance.get_run_step_stats(record.dagster_run.run_id)
    first = min(s.start_time for s in stats if s.start_time)
    steps = {s.step_key: (s.end_time or 0) - (s.start_time or 0) for s in stats}
    created = record.create_timestamp.timestamp()
    return (record.end_time or time.time()) - created, first - created, steps


def model_floor(home: Path, day: date, end: date | None = None) -> float:
    """The four models' compiled SQL for `day` (to `end`, exclusive), run directly in DuckDB
    (written to Parquet)."""
    import duckdb

    target = Path(tempfile.mkdtemp(prefix="refresh-compile-"))
    landing = home / "landing"
    run_env = {
        "FEATURE_STORE_BUILD_START": day.isoformat(),
        "FEATURE_STORE_BUILD_END": (end or day + timedelta(days=1)).isoformat(),
        "FEATURE_STORE_LANDING_DIR": str(landing),
        "FEATURE_STORE_STAGED_PATH": str(target / "{table}.parquet"),
    }
    subprocess.run(
        [
            str(BIN / "dbt"),
            "compile",
            "--quiet",
            "--target-path",
            str(target),
            "--select",
            *MODELS,
        ],
        cwd=ROOT / "dbt_project",
        env={**os.environ, **run_env, "DBT_PROFILES_DIR": str(ROOT / "dbt_project")},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    con = duckdb.connect()
    started = time.perf_counter()
    for model in MODELS:
        sql = next(target.rglob(f"{model}.sql")).read_text()
        con.execute(f"COPY ({sql}) TO '{target / model}.parquet' (FORMAT parquet)")
    elapsed = time.perf_counter() - started
    shutil.rmtree(target, ignore_errors=True)
    return elapsed


def write_floor(home: Path, port: int, day: date) -> tuple[float, int, float, int]:
    """Raw BatchWriteItem of the day's items, 4 batches in flight: (seconds, items) of the
    online tables' own items, then of the co-located services' items as the run left them
    (scanned; a table of each at a time, as the floor of one table's own items is)."""
    os.environ["FEATURE_STORE_HOME"] = str(home)
    os.environ["FEATURE_STORE_DYNAMODB_ENDPOINT"] = f"http://127.0.0.1:{port}"
    import pyarrow as pa

    from feature_assets.sdk import FeatureStore
    from resources.colocated import ColocatedItems
    from resources.online_items import items_of, key_schema

    store = FeatureStore.from_settings()
    client = store.online.client
    own: list[dict] = []
    services: list[dict] = []
    names = []

    def floor_table(table) -> str:
        name = f"floor_{uuid.uuid4().hex[:8]}"
        schema, definitions = key_schema(table)
        client.create_table(
            TableName=name,
            KeySchema=schema,
            AttributeDefinitions=definitions,
            BillingMode="PAY_PER_REQUEST",
        )
        names.append(name)
        return name

    def batches_of(name: str, items: list[dict]) -> list[dict]:
        return [
            {name: [{"PutRequest": {"Item": i}} for i in items[s : s + 25]]}
            for s in range(0, len(items), 25)
        ]

    for table in store.tables.values():
        if not table.online:
            continue
        rows = pa.Table.from_pandas(store.offline.read_partition(table, day), preserve_index=False)
        own += batches_of(floor_table(table), items_of(table, rows))
    for service in store.contract.services.values():
        if not service.online_colocated:
            continue
        key_table = store.tables[min(service.table_names)]
        source = ColocatedItems(store.online, service.name, key_table).name
        pages = client.get_paginator("scan").paginate(TableName=source, ConsistentRead=True)
        items = [item for page in pages for item in page["Items"]]
        services += batches_of(floor_table(key_table), items)

    def put(request: dict) -> None:
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems")

    def timed(batches: list[dict]) -> tuple[float, int]:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(put, batches))
        return time.perf_counter() - started, sum(len(next(iter(b.values()))) for b in batches)

    own_seconds, own_items = timed(own)
    service_seconds, service_items = timed(services)
    for name in names:
        client.delete_table(TableName=name)
    return own_seconds, own_items, service_seconds, service_items


def forget_online(home: Path, port: int) -> None:
    """Drop every online table and the syncs' memory of them: the next sync writes every
    item of its window (the cost of a day in which every value changed)."""
    import boto3

    client = boto3.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    for name in client.list_tables()["TableNames"]:
        client.delete_table(TableName=name)
    for state in (home / "offline").glob("*/_online_state"):
        shutil.rmtree(state)


def refresh(
    server: str, users: int, days: int, repeats: int, rewrite_all: bool, next_day: bool
) -> None:
    from resources.local_dynamodb import start_server, stop_server
    from tests.builders import free_port

    home = Path(tempfile.mkdtemp(prefix="refresh-home-"))
    port = free_port()
    env = env_for(home, port)
    cli = str(BIN / "feature-store")
    start_server(home, port, server)
    try:
        yesterday = date.today() - timedelta(days=1)
        if next_day:
            first_timed = yesterday - timedelta(days=repeats - 1)
            built_last = first_timed - timedelta(days=1)
            built_first = built_last - timedelta(days=days - 1)
            landed = days + repeats + 30  # the 30-day windows' history
            run(
                [cli, "generate-data", "--days", str(landed), "--users", str(users)],
                env,
            )
            demo = run([cli, "backfill", built_first.isoformat(), built_last.isoformat()], env)
        else:
            demo = run(
                [cli, "demo", "--days", str(days), "--users", str(users), "--server", server], env
            )
        demo_run, _, demo_steps = step_times(home)
        dbt = sum(v for k, v in demo_steps.items() if "feature_tables" in k)
        checks = sum(v for k, v in demo_steps.items() if "validated" in k)
        syncs = sum(v for k, v in demo_steps.items() if k.startswith("online"))
        print(
            f"server {server}, {users} users: building {days} days {demo:.0f} s wall, its "
            f"{days}-day single run {demo_run:.1f} s (dbt {dbt:.1f} s, checks {checks:.1f} s, "
            f"syncs {syncs:.1f} s)",
            flush=True,
        )
        walls, runs, befores, steps, floor_runs = [], [], [], [], []
        for repeat in range(repeats):
            day = first_timed + timedelta(days=repeat) if next_day else yesterday
            if rewrite_all:
                forget_online(home, port)
            walls.append(run([cli, "backfill", day.isoformat(), day.isoformat()], env))
            whole, before, per_step = step_times(home)
            runs.append(whole)
            befores.append(before)
            steps.append(per_step)
            # Each run's floors right after it: this machine's speed drifts between runs.
            floor_runs.append((model_floor(home, day), *write_floor(home, port, day)))
    finally:
        stop_server(home)
        shutil.rmtree(home, ignore_errors=True)
    wall = statistics.median(walls)
    models = statistics.median(f[0] for f in floor_runs)
    writes = statistics.median(f[1] for f in floor_runs)
    items = floor_runs[-1][2]
    service_writes = statistics.median(f[3] for f in floor_runs)
    service_items = floor_runs[-1][4]
    floors = models + writes
    ratios = [w / (f[0] + f[1]) for w, f in zip(walls, floor_runs, strict=True)]
    service_ratios = [w / (f[0] + f[1] + f[3]) for w, f in zip(walls, floor_runs, strict=True)]
    what = (
        "the next day's new data"
        if next_day
        else "every item rewritten"
        if rewrite_all
        else "nothing changed"
    )
    print(
        f"one day ({what}), four tables, {repeats} runs: wall median {wall:.1f} s, max {max(walls):.1f} s"
    )
    print(
        f"  outside the run (process start, imports, definitions, instance): "
        f"{wall - statistics.median(runs):.1f} s; the run {statistics.median(runs):.1f} s, "
        f"of which {statistics.median(befores):.1f} s before its first step"
    )
    for key in sorted(steps[0]):
        values = [s.get(key, 0.0) for s in steps]
        print(f"  step {key:60} median {statistics.median(values):6.2f} s")
    print(
        f"floors (medians): four models' SQL in DuckDB {models:.2f} s; raw BatchWriteItem of "
        f"{items} tables' items {writes:.2f} s; sum {floors:.2f} s"
    )
    print(
        f"ratio, each run to its own floors: median {statistics.median(ratios):.2f}x "
        f"(runs: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    # The run also puts the co-located services' items: the same items, written raw.
    print(
        f"with the co-located services' {service_items} items ({service_writes:.2f} s raw): "
        f"floors {floors + service_writes:.2f} s, ratio median "
        f"{statistics.median(service_ratios):.2f}x "
        f"(runs: {', '.join(f'{r:.2f}' for r in service_ratios)})"
    )


def stage_rows(work: Path, table_name: str, days: int, rows_per_day: int) -> str:
    """A run's staged file of `days` x `rows_per_day` valid rows of `table_name` (integer or
    string keys); returns the run id."""
    import duckdb

    from resources.dbt_manifest import load_project_contract
    from resources.offline_store import OfflineStore

    table = load_project_contract(ROOT / "dbt_project").tables[table_name]
    store = OfflineStore(root=str(work / "offline"), staging_root=str(work / "staging"))
    run_id = uuid.uuid4().hex
    staged = store.staged_path(table, run_id)
    staged.parent.mkdir(parents=True)
    # Days interleaved, as a model's output comes (every day's file open at once when split);
    # keys unique per day: the first spreads over the day's rows, the others cycle.
    width = 13 if len(table.keys) > 1 else 1
    keys = [f"((i // {days}) // {width})::BIGINT AS {table.keys[0]}"] + [
        f"'{key}_' || ((i // {days}) % {width}) AS {key}"
        if table.key_types[key] == "str"
        else f"((i // {days}) % {width})::BIGINT AS {key}"
        for key in table.keys[1:]
    ]
    features = ", ".join(
        f"{'(i % 7)::BIGINT' if f.logical_type == 'int' else '((i % 89) / 89.0)::DOUBLE'} "
        f"AS {f.name}"
        for f in table.features
    )
    duckdb.connect().execute(
        f"""COPY (SELECT {", ".join(keys)},
            DATE '{RSS_FIRST_DAY}' + (i % {days})::INT AS feature_date,
            (DATE '{RSS_FIRST_DAY}' + (i % {days})::INT + INTERVAL 1 DAY)::TIMESTAMP
                AS event_timestamp,
            TIMESTAMP '{RSS_FIRST_DAY}' AS created_at, {features}
            FROM range({days * rows_per_day}) r(i)) TO '{staged}' (FORMAT parquet)"""
    )
    return run_id


def peak_rss_kib() -> int:
    """This process's peak resident set (VmHWM: unlike ru_maxrss, it starts anew at exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def rss_child(work: Path, table_name: str, run_id: str, days: int) -> None:
    """Audit, summarize and publish a staged run, in this fresh process."""
    from feature_assets.validation.partition import audit_staged
    from resources.dbt_manifest import load_project_contract
    from resources.offline_store import OfflineStore

    table = load_project_contract(ROOT / "dbt_project").tables[table_name]
    store = OfflineStore(root=str(work / "offline"), staging_root=str(work / "staging"))
    baseline = peak_rss_kib()
    day_list = [RSS_FIRST_DAY + timedelta(days=d) for d in range(days)]
    started = time.perf_counter()
    verdicts = audit_staged(store, table, run_id, day_list)
    assert not any(v.problem for v in verdicts), [v.problem for v in verdicts if v.problem][:1]
    store.staged_statistics(table, run_id)
    store.publish(table, run_id, day_list)
    elapsed = time.perf_counter() - started
    peak = peak_rss_kib()
    print(json.dumps({"baseline_kib": baseline, "peak_kib": peak, "seconds": elapsed}))


def rss(repeats: int, table_name: str, rows_per_day: int) -> None:
    print(f"{table_name}, {rows_per_day} staged rows a day")
    results = {}
    for days in (1, 60):
        runs = []
        for _ in range(repeats):
            work = Path(tempfile.mkdtemp(prefix="refresh-rss-"))
            run_id = stage_rows(work, table_name, days, rows_per_day)
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.refresh",
                    "--rss-child",
                    str(work),
                    table_name,
                    run_id,
                    str(days),
                ],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            shutil.rmtree(work, ignore_errors=True)
            runs.append(json.loads(out.strip().splitlines()[-1]))
        results[days] = runs
        peak = statistics.median(r["peak_kib"] for r in runs) / 1024
        base = statistics.median(r["baseline_kib"] for r in runs) / 1024
        secs = statistics.median(r["seconds"] for r in runs)
        print(
            f"{days:3} day(s) x {rows_per_day} rows: peak RSS median {peak:.0f} MiB "
            f"(after imports {base:.0f} MiB), check + publish {secs:.2f} s"
        )
    one = statistics.median(r["peak_kib"] for r in results[1])
    sixty = statistics.median(r["peak_kib"] for r in results[60])
    print(f"peak RSS 60 days / 1 day: {sixty / one:.2f}x (target: within 1.20x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="moto", choices=["moto", "dynamodb-local"])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=8, help="days the demo builds first")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--rewrite-all",
        action="store_true",
        help="drop the online tables before each run: every item is written, as on a day "
        "in which every value changed",
    )
    parser.add_argument(
        "--next-day",
        action="store_true",
        help="build up to --repeats days before yesterday, then refresh each next day once: "
        "new data, as in production",
    )
    parser.add_argument("--rss", action="store_true")
    parser.add_argument("--rss-table", default=RSS_TABLE, help="the table --rss stages")
    parser.add_argument("--rss-rows", type=int, default=20_000, help="its rows a day")
    parser.add_argument("--rss-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        work, table_name, run_id, days = args.rss_child
        rss_child(Path(work), table_name, run_id, int(days))
    elif args.rss:
        rss(args.repeats, args.rss_table, args.rss_rows)
    else:
        refresh(args.server, args.users, args.days, args.repeats, args.rewrite_all, args.next_day)


if __name__ == "__main__":
    main()
