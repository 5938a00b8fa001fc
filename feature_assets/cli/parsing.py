"""The command line's shape: subcommands, their arguments, defaults and help."""

import argparse
from datetime import UTC, date, datetime

from feature_assets.demo_data import DemoDataSpec
from resources.local_dynamodb import SERVER_KINDS

# The longest window of the demo tables (30 days): land that much history before the first day.
WINDOW_WARMUP_DAYS = 30


def day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day like 2026-01-31") from None


def utc(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time like 2026-01-31T06:00") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feature-store",
        description="The embedded online store, demo data, pipeline runs, resync, discovery, "
        "and the demo.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
            **kwargs,
        )

    online = command(
        "online-store",
        "start, stop or check the embedded online store (on the port of "
        "FEATURE_STORE_DYNAMODB_ENDPOINT, default 8766)",
    )
    online.add_argument("action", choices=["start", "stop", "status"])
    online.add_argument("--server", choices=SERVER_KINDS, default="moto")

    generate = command("generate-data", "land seeded demo raw data as daily Parquet files")
    generate.add_argument("--days", type=int, default=60 + WINDOW_WARMUP_DAYS)
    generate.add_argument("--last-day", type=day, default=None, help="default: yesterday (UTC)")
    generate.add_argument("--users", type=int, default=DemoDataSpec.users)
    generate.add_argument(
        "--transactions-per-day", type=int, default=DemoDataSpec.transactions_per_day
    )
    generate.add_argument("--seed", type=int, default=DemoDataSpec.seed)

    backfill = command(
        "backfill",
        "build, validate, publish and sync a day range as one run, with a progress bar",
        aliases=["materialize"],
    )
    backfill.add_argument("first_day", type=day, help="first feature day, e.g. 2026-01-01")
    backfill.add_argument("last_day", type=day, help="last feature day (included)")
    backfill.add_argument("--table", action="append", help="only this table (repeatable)")
    backfill.add_argument("--no-sync", action="store_true", help="leave the online store alone")

    command("resync", "rebuild the online store from the offline store")

    serve = command("serve", "HTTP feature server (bearer token from FEATURE_STORE_SERVER_TOKEN)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=6566)
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="serve without a token (127.0.0.1 only; never on another address)",
    )

    ui = command("ui", "run the Dagster UI and daemon (dagster dev)")
    ui.add_argument("--port", type=int, default=3000)

    tables = command("tables", "list feature tables: owner, ttl, freshness, last partition")
    features = command("features", "list features with type, owner and description")
    features.add_argument("table", nargs="?", help="only this feature table")
    describe = command("describe", "everything about one feature table")
    describe.add_argument("table")
    search = command("search", "find tables, features and services by name, description or tag")
    search.add_argument("words", nargs="+")
    freshness = command("freshness", "tables past their freshness SLA (exit status 1 if any)")
    freshness.add_argument("--now", type=utc, default=None, help="ISO time; default: now")
    for p in (tables, features, describe, search, freshness):
        p.add_argument("--json", action="store_true", help="machine-readable output")

    catalog = command("catalog", "generate the dbt docs catalog and serve it")
    catalog.add_argument("--host", default="127.0.0.1")
    catalog.add_argument("--port", type=int, default=8580)
    catalog.add_argument("--no-serve", action="store_true", help="only generate it")

    demo = command("demo", "the whole flow on generated data, ending in reads")
    demo.add_argument("--days", type=int, default=60)
    demo.add_argument("--users", type=int, default=DemoDataSpec.users)
    demo.add_argument("--transactions-per-day", type=int, default=DemoDataSpec.transactions_per_day)
    demo.add_argument("--server", choices=SERVER_KINDS, default="moto")
    return parser
