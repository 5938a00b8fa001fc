"""`feature-store`: the embedded online store, demo data, pipeline runs, resync, and the demo."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import boto3
import pandas as pd

from feature_assets.demo_data import DAILY_SOURCES, DemoDataSpec, generate_landing_data
from resources.local_dynamodb import (
    SERVER_KINDS,
    reset_signals,
    running_server,
    start_server,
    stop_server,
)
from resources.settings import DEFAULT_PORT, PROJECT_ROOT, Settings

DEMO_TABLE = "user_daily_transactions_7d"
DEMO_FEATURES = [
    f"{DEMO_TABLE}:transaction_count_7d",
    f"{DEMO_TABLE}:transaction_amount_sum_7d",
    f"{DEMO_TABLE}:transaction_amount_mean_7d",
    f"{DEMO_TABLE}:distinct_merchant_count_7d",
]
# The longest window of the demo tables (30 days): land that much history before the first day.
WINDOW_WARMUP_DAYS = 30
CHURN_SERVICE = "churn_prediction_v1"
# Step-by-step events stay in the run's record (and the UI); the terminal shows warnings only.
QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _day(text: str) -> date:
    return date.fromisoformat(text)


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _yesterday() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


def cmd_online_store(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "start":
        server = start_server(settings.home, args.port, args.server)
        print(f"{server.kind} online store on {server.endpoint} (pid {server.pid})")
    elif args.action == "stop":
        print("stopped" if stop_server(settings.home) else "no online store was running")
    else:
        server = running_server(settings.home)
        print(f"{server.kind} on {server.endpoint} (pid {server.pid})" if server else "not running")
        return 0 if server else 1
    return 0


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    spec = DemoDataSpec(
        users=args.users,
        transactions_per_day=args.transactions_per_day,
        app_events_per_day=3 * args.users,
        seed=args.seed,
    )
    last = args.last_day or _yesterday()
    first = last - timedelta(days=args.days - 1)
    paths = generate_landing_data(settings.landing_dir, first, last + timedelta(days=1), spec)
    print(
        f"landed {len(paths)} files: {', '.join(DAILY_SOURCES)} for {first}..{last}, "
        f"and the merchant list, in {settings.landing_dir}"
    )
    return 0


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    """One single-run range over first..last, with a progress bar over its steps."""
    import dagster as dg

    from feature_assets.definitions import build_definitions
    from feature_assets.online_sync import online_asset_key
    from feature_assets.runs import materialize_with_progress, persistent_instance
    from feature_assets.sdk import FeatureStore

    tables = FeatureStore.from_settings(settings).tables
    chosen = [tables[name] for name in args.table] if args.table else list(tables.values())
    synced = [] if args.no_sync else [t for t in chosen if t.online]
    selection = [dg.AssetKey(t.name) for t in chosen] + [online_asset_key(t) for t in synced]
    result = materialize_with_progress(
        build_definitions(settings),
        persistent_instance(settings),
        args.first_day,
        args.last_day,
        asset_selection=selection,
        # one dbt step, one publish check per table, one sync per online table
        steps=1 + len(chosen) + len(synced),
        run_config=QUIET_RUN,
    )
    print(f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'}")
    return 0 if result.success else 1


def cmd_resync(args: argparse.Namespace, settings: Settings) -> int:
    from feature_assets.sdk import FeatureStore

    store = FeatureStore.from_settings(settings)
    for table in store.tables.values():
        if table.online:
            written = store.online.write_rows(table, store.offline.latest_rows(table))
            print(f"{table.name}: {written} items written to {store.online.table_name(table)}")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from feature_assets.feature_server import make_server
    from feature_assets.sdk import FeatureStore

    token = os.environ.get("FEATURE_STORE_SERVER_TOKEN") or None
    server = make_server(FeatureStore.from_settings(settings), args.host, args.port, token=token)
    print(
        f"feature server on http://{args.host}:{args.port} (token {'required' if token else 'off'})"
    )
    reset_signals()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_ui(args: argparse.Namespace, settings: Settings) -> int:
    from feature_assets.runs import prepare_dagster_home

    env = {
        **os.environ,
        "DAGSTER_HOME": str(prepare_dagster_home(settings.dagster_home)),
        # `dagster dev` re-parses the dbt project with whatever `dbt` is on PATH: ours.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    command = [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml"]
    command += ["-h", "127.0.0.1", "-p", str(args.port)]
    # Become `dagster dev` with default signal handling, so it stops by pid even when a
    # non-interactive shell started us with SIGINT/SIGTERM ignored.
    reset_signals()
    os.chdir(PROJECT_ROOT)
    os.execve(sys.executable, command, env)


def _registry(settings: Settings):
    from feature_assets.registry import Registry
    from feature_assets.sdk import FeatureStore

    store = FeatureStore.from_settings(settings)
    return Registry(store.tables, store.services, store.offline)


def _print(rows: list[dict], as_json: bool) -> None:
    """Aligned columns for people, JSON for scripts."""
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        print("(none)")
        return
    cells = [[_cell(v) for v in row.values()] for row in rows]
    headers = [h.upper().replace("_", " ") for h in rows[0]]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    for line in [headers, *cells]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "-" if value is None else str(value)


def cmd_tables(args: argparse.Namespace, settings: Settings) -> int:
    _print(_registry(settings).table_rows(), args.json)
    return 0


def cmd_features(args: argparse.Namespace, settings: Settings) -> int:
    _print(_registry(settings).feature_rows(args.table), args.json)
    return 0


def cmd_describe(args: argparse.Namespace, settings: Settings) -> int:
    details = _registry(settings).describe(args.table)
    if args.json:
        print(json.dumps(details, indent=2, default=str))
        return 0
    features = details.pop("features")
    description = details.pop("description")
    print(f"{details.pop('table')}: {description}\n")
    for name, value in details.items():
        print(f"  {name.replace('_', ' ') + ':':22} {_cell(value)}")
    print()
    _print(
        [{**f, "checks": " ".join(f"{k} {v}" for k, v in f["checks"].items())} for f in features],
        False,
    )
    return 0


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    hits = _registry(settings).search(" ".join(args.words))
    rows = [
        {"kind": h.kind, "name": h.name, "matched": list(h.matched), "description": h.description}
        for h in hits
    ]
    _print(rows, args.json)
    return 0 if hits else 1


def cmd_freshness(args: argparse.Namespace, settings: Settings) -> int:
    """Exit status 1 when a table is past its freshness SLA, for cron or CI monitors."""
    rows = _registry(settings).freshness_rows(args.now or datetime.now(UTC))
    _print([{k: v for k, v in r.items() if k != "stale"} for r in rows], args.json)
    return 1 if any(r["stale"] for r in rows) else 0


def cmd_catalog(args: argparse.Namespace, settings: Settings) -> int:
    from feature_assets.catalog import generate_catalog
    from feature_assets.dbt_project import dbt_executable

    registry = _registry(settings)
    target = generate_catalog(
        settings.dbt_project_dir, settings.catalog_dir, registry.tables, registry.services
    )
    print(f"catalog of {len(registry.tables)} feature tables written to {target}")
    if args.no_serve:
        return 0
    print(f"serving it on http://{args.host}:{args.port}")
    command = [dbt_executable(), "docs", "serve", "--no-browser", "--target-path", str(target)]
    command += ["--host", args.host, "--port", str(args.port)]
    command += ["--project-dir", str(settings.dbt_project_dir)]
    command += ["--profiles-dir", str(settings.dbt_project_dir)]
    # Become the docs server with default signal handling, so it stops by pid (as `ui`).
    reset_signals()
    sys.stdout.flush()
    os.execv(command[0], command)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    started = time.monotonic()
    server = running_server(settings.home) or start_server(settings.home, args.port, args.server)
    print(f"[1/5] online store: {server.kind} on {server.endpoint} (pid {server.pid})")
    last = _yesterday()
    first = last - timedelta(days=args.days - 1)
    spec = DemoDataSpec(
        users=args.users,
        transactions_per_day=args.transactions_per_day,
        app_events_per_day=3 * args.users,
    )
    # Land a week more than we build so the first day's 7-day window is complete.
    generate_landing_data(
        settings.landing_dir,
        first - timedelta(days=WINDOW_WARMUP_DAYS),
        last + timedelta(days=1),
        spec,
    )
    print(
        "[2/5] landed card transactions, account balances and app events "
        f"{first - timedelta(days=WINDOW_WARMUP_DAYS)}..{last}, and the merchant list"
    )

    from feature_assets.definitions import build_definitions
    from feature_assets.registry import Registry
    from feature_assets.runs import materialize_range, persistent_instance
    from feature_assets.sdk import FeatureStore

    result = materialize_range(
        build_definitions(settings),
        persistent_instance(settings),
        first,
        last,
        run_config=QUIET_RUN,
    )
    if not result.success:
        print(
            f"pipeline run {result.run_id} FAILED; open the UI (`make ui`) for details",
            file=sys.stderr,
        )
        return 1
    print(
        f"[3/5] built, validated, published and synced {args.days} daily partitions (run {result.run_id})"
    )

    store = FeatureStore.from_settings(settings)
    table = store.tables[DEMO_TABLE]
    known_user = int(store.offline.read_partition(table, last)["user_id"].min())
    client = boto3.client(
        "dynamodb",
        endpoint_url=settings.dynamodb_endpoint,
        region_name=settings.region,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "local"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
    )
    item = client.get_item(
        TableName=store.online.table_name(table), Key={"user_id": {"N": str(known_user)}}
    )["Item"]
    print(
        f"[4/5] plain boto3 get_item on {store.online.table_name(table)} for user_id={known_user}:"
    )
    for name, value in item.items():
        print(f"        {name:28} {value}")
    online = store.get_online_features(
        DEMO_FEATURES, [{"user_id": known_user}, {"user_id": known_user + 1}]
    )
    print("      SDK get_online_features:")
    print(online.to_df().to_string(index=False))
    churn = store.get_online_features(
        CHURN_SERVICE, [{"customer_id": known_user}, {"customer_id": known_user + 1}]
    )
    print(f"      SDK get_online_features, feature service {CHURN_SERVICE}:")
    print(churn.to_df().to_string(index=False))

    users = sorted(store.offline.read_partition(table, last)["user_id"].head(4).tolist())
    entity_df = pd.DataFrame(
        {
            "user_id": [u for u in users for _ in range(2)],
            "event_timestamp": [
                pd.Timestamp(day) + pd.Timedelta(hours=12)
                for _ in users
                for day in (first + timedelta(days=(args.days - 1) // 2), last)
            ],
            "is_fraud": [0, 1] * len(users),
        }
    )
    training = store.get_historical_features(entity_df, DEMO_FEATURES)
    print("[5/5] training set (point-in-time correct), head:")
    print(training.head(8).to_string(index=False))
    print("\nregistry (`feature-store tables`; also `features`, `describe`, `search`, `catalog`):")
    _print(Registry(store.tables, store.services, store.offline).table_rows(), False)
    print(
        f"\ndemo finished in {time.monotonic() - started:.0f}s. Open the Dagster UI with `make ui` "
        f"(http://127.0.0.1:3000); stop the online store with `make stop`."
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="feature-store", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    online = sub.add_parser("online-store", help="start, stop or check the embedded online store")
    online.add_argument("action", choices=["start", "stop", "status"])
    online.add_argument("--port", type=int, default=DEFAULT_PORT)
    online.add_argument("--server", choices=SERVER_KINDS, default="moto")

    generate = sub.add_parser("generate-data", help="land seeded demo card transactions")
    generate.add_argument("--days", type=int, default=60 + WINDOW_WARMUP_DAYS)
    generate.add_argument("--last-day", type=_day, default=None, help="default: yesterday (UTC)")

    for p in (generate,):
        p.add_argument("--users", type=int, default=DemoDataSpec.users)
        p.add_argument(
            "--transactions-per-day", type=int, default=DemoDataSpec.transactions_per_day
        )
        p.add_argument("--seed", type=int, default=DemoDataSpec.seed)

    backfill = sub.add_parser(
        "backfill",
        aliases=["materialize"],
        help="build, validate, publish and sync a day range as one run, with a progress bar",
    )
    backfill.add_argument("first_day", type=_day)
    backfill.add_argument("last_day", type=_day)
    backfill.add_argument("--table", action="append", help="only this table (repeatable)")
    backfill.add_argument("--no-sync", action="store_true", help="leave the online store alone")

    sub.add_parser("resync", help="rebuild the online store from the offline store")

    serve = sub.add_parser(
        "serve", help="HTTP feature server (bearer token from FEATURE_STORE_SERVER_TOKEN)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=6566)

    ui = sub.add_parser("ui", help="run the Dagster UI and daemon (dagster dev)")
    ui.add_argument("--port", type=int, default=3000)

    tables = sub.add_parser(
        "tables", help="list feature tables: owner, ttl, freshness, last published partition"
    )
    features = sub.add_parser("features", help="list features with type, owner and description")
    features.add_argument("table", nargs="?", help="only this feature table")
    describe = sub.add_parser("describe", help="everything about one feature table")
    describe.add_argument("table")
    search = sub.add_parser(
        "search", help="find tables, features and services by name, description or tag"
    )
    search.add_argument("words", nargs="+")
    freshness = sub.add_parser(
        "freshness", help="tables past their freshness SLA (exit status 1 if any)"
    )
    freshness.add_argument("--now", type=_utc, default=None, help="ISO time; default: now")
    for p in (tables, features, describe, search, freshness):
        p.add_argument("--json", action="store_true", help="machine-readable output")

    catalog = sub.add_parser("catalog", help="generate the dbt docs catalog and serve it")
    catalog.add_argument("--host", default="127.0.0.1")
    catalog.add_argument("--port", type=int, default=8580)
    catalog.add_argument("--no-serve", action="store_true", help="only generate it")

    demo = sub.add_parser("demo", help="the whole flow on generated data, ending in reads")
    demo.add_argument("--days", type=int, default=60)
    demo.add_argument("--users", type=int, default=DemoDataSpec.users)
    demo.add_argument("--transactions-per-day", type=int, default=DemoDataSpec.transactions_per_day)
    demo.add_argument("--port", type=int, default=DEFAULT_PORT)
    demo.add_argument("--server", choices=SERVER_KINDS, default="moto")

    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if (
        getattr(args, "port", None)
        and args.command in ("online-store", "demo")
        and ("FEATURE_STORE_DYNAMODB_ENDPOINT" not in os.environ)
    ):
        os.environ["FEATURE_STORE_DYNAMODB_ENDPOINT"] = f"http://127.0.0.1:{args.port}"
        settings = Settings.from_env()
    handlers = {
        "online-store": cmd_online_store,
        "generate-data": cmd_generate,
        "backfill": cmd_backfill,
        "materialize": cmd_backfill,
        "resync": cmd_resync,
        "serve": cmd_serve,
        "ui": cmd_ui,
        "tables": cmd_tables,
        "features": cmd_features,
        "describe": cmd_describe,
        "search": cmd_search,
        "freshness": cmd_freshness,
        "catalog": cmd_catalog,
        "demo": cmd_demo,
    }
    return handlers[args.command](args, settings)


if __name__ == "__main__":
    sys.exit(main())
