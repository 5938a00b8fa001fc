"""The command line's shape: subcommands, their arguments, defaults and help."""

import argparse
from datetime import UTC, date, datetime
from typing import NoReturn

from feature_assets.demo_data import DemoDataSpec
from resources.local_dynamodb import SERVER_KINDS

# The longest window of the demo tables (30 days): land that much history before the first day.
WINDOW_WARMUP_DAYS = 30


def day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a day: use YYYY-MM-DD, like 2026-01-31"
        ) from None


def utc(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: use an ISO time, like 2026-01-31T06:00"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share: give a number from 0 to 1")
    return value


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Defaults after each option's help (where there is one to tell); examples keep their lines."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """A usage mistake is one line naming the command, with where to look, and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def examples(*lines: str) -> str:
    return "example:\n" + "\n".join(f"  {line}" for line in lines)


def data_size(command: argparse.ArgumentParser) -> None:
    """How much demo data to land: the same options for `generate-data` and `demo`."""
    command.add_argument("--users", type=int, default=DemoDataSpec.users, help="card holders")
    command.add_argument(
        "--transactions-per-day",
        type=int,
        default=DemoDataSpec.transactions_per_day,
        help="card transactions landed per day",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="feature-store",
        description="Feature tables built by dbt and Dagster, validated by pandera, served from "
        "DynamoDB: the embedded online store, demo data, pipeline runs, resync, discovery, "
        "and the demo.",
        epilog=examples("feature-store demo", "feature-store backfill --help"),
        formatter_class=HelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    def command(name: str, help_text: str, *example: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=examples(*example),
            formatter_class=HelpFormatter,
            **kwargs,
        )

    def verbose(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--verbose",
            action="store_true",
            help="show dbt's and Dagster's own log while the run goes (it is always kept in "
            "<home>/logs/, and shown when the run fails)",
        )

    online = command(
        "online-store",
        "start, stop or check the embedded online store (a DynamoDB-compatible server on the "
        "port of FEATURE_STORE_DYNAMODB_ENDPOINT, http://127.0.0.1:8766 unless set)",
        "feature-store online-store start",
        "feature-store online-store status   # exit status 1 when it is not running",
    )
    online.add_argument("action", choices=["start", "stop", "status"], help="what to do")
    online.add_argument(
        "--server", choices=SERVER_KINDS, default="moto", help="which server to start"
    )

    generate = command(
        "generate-data",
        "land seeded demo raw data as daily Parquet files under <home>/landing",
        "feature-store generate-data --days 40 --last-day 2026-01-31 --users 500",
    )
    generate.add_argument(
        "--days",
        type=int,
        default=60 + WINDOW_WARMUP_DAYS,
        help="how many days to land, ending on --last-day",
    )
    generate.add_argument(
        "--last-day", type=day, default=None, help="last day, YYYY-MM-DD (default: yesterday, UTC)"
    )
    data_size(generate)
    generate.add_argument(
        "--seed", type=int, default=DemoDataSpec.seed, help="same seed, same data"
    )

    backfill = command(
        "backfill",
        "build, validate, publish and sync a range of days as one run, with a progress bar",
        "feature-store backfill 2026-01-01 2026-01-31",
        "feature-store backfill 2026-01-30 2026-01-30 --table user_daily_transactions_7d --no-sync",
        aliases=["materialize"],
    )
    backfill.add_argument("first_day", type=day, help="first feature day, YYYY-MM-DD")
    backfill.add_argument("last_day", type=day, help="last feature day (included), YYYY-MM-DD")
    backfill.add_argument(
        "--table",
        action="append",
        help="only this feature table (repeatable; `feature-store tables` lists them); "
        "default: all",
    )
    backfill.add_argument("--no-sync", action="store_true", help="leave the online store alone")
    verbose(backfill)

    command(
        "resync",
        "rewrite the online store from the offline store (the newest row per key of every "
        "online table), with a progress bar",
        "feature-store resync",
    )

    serve = command(
        "serve",
        "HTTP feature server for online reads (bearer token from FEATURE_STORE_SERVER_TOKEN)",
        "feature-store serve --port 6566   # after: export FEATURE_STORE_SERVER_TOKEN=<secret>",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=6566, help="port to listen on")
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="serve without a token (127.0.0.1 only; never on another address)",
    )
    serve.add_argument(
        "--log-rate",
        type=share,
        default=None,
        help="share of reads whose answers go to the serving log for monitoring, 0..1 "
        "(default: FEATURE_STORE_SERVING_LOG_RATE, else 0)",
    )

    ui = command(
        "ui",
        "run the Dagster UI and daemon (dagster dev) on this store's runs",
        "feature-store ui --port 3000",
    )
    ui.add_argument("--port", type=int, default=3000, help="the UI's port on 127.0.0.1")

    tables = command(
        "tables",
        "list feature tables (owner, ttl, freshness, last published partition) and on-demand "
        "features",
        "feature-store tables --json",
    )
    features = command(
        "features",
        "list features (stored, then on-demand outputs) with type, owner and description",
        "feature-store features user_daily_transactions_7d",
    )
    features.add_argument(
        "table",
        nargs="?",
        default=None,
        help="only this feature table or on-demand feature (default: all)",
    )
    describe = command(
        "describe",
        "everything about one feature table (contract, features, services, partitions) or "
        "on-demand feature (function, inputs, outputs, services)",
        "feature-store describe user_daily_transactions_7d",
    )
    describe.add_argument(
        "table", help="a feature table or on-demand feature (`feature-store tables` lists them)"
    )
    search = command(
        "search",
        "find tables, on-demand features, features and services by name, description or tag "
        "(exit status 1 when "
        "nothing matches)",
        "feature-store search merchants paid",
    )
    search.add_argument("words", nargs="+", help="words that must all appear")
    freshness = command(
        "freshness",
        "tables past their freshness SLA (exit status 1 if any)",
        "feature-store freshness --now 2026-01-31T06:00",
    )
    freshness.add_argument(
        "--now", type=utc, default=None, help="ISO time, UTC unless it says (default: now)"
    )
    for p in (tables, features, describe, search, freshness):
        p.add_argument("--json", action="store_true", help="machine-readable output")

    catalog = command(
        "catalog",
        "generate the dbt docs catalog of the feature tables and serve it",
        "feature-store catalog --port 8580",
        "feature-store catalog --no-serve   # only write it under <home>/catalog",
    )
    catalog.add_argument("--host", default="127.0.0.1", help="address to serve on")
    catalog.add_argument("--port", type=int, default=8580, help="port to serve on")
    catalog.add_argument("--no-serve", action="store_true", help="only generate it")

    monitor = command(
        "monitor",
        "drift of each feature service on a day (served reads against the training set its "
        "model was trained on) and online/offline parity now; writes an HTML report "
        "(exit status 1 if parity fails)",
        "feature-store monitor                    # today so far",
        "feature-store monitor --day 2026-01-31",
    )
    monitor.add_argument(
        "--day", type=day, default=None, help="the served day, YYYY-MM-DD (default: today, UTC)"
    )

    demo = command(
        "demo",
        "the whole flow on generated data: online store, raw data, a run over every day, "
        "then an online read and a training set",
        "feature-store demo --days 14 --users 200",
    )
    demo.add_argument("--days", type=int, default=60, help="feature days to build, to yesterday")
    data_size(demo)
    demo.add_argument(
        "--server", choices=SERVER_KINDS, default="moto", help="which online store to start"
    )
    verbose(demo)
    return parser
