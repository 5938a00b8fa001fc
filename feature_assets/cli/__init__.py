"""`feature-store`: the command line. Parsing, commands, the demo and rendering live apart."""

import os
import sys

from feature_assets.kernel.errors import (
    FeatureDefinitionError,
    FeatureReferenceError,
    FeatureStoreError,
    LocalServerError,
    OnDemandFunctionError,
    PartitionNotPublishedError,
    StoreUnavailableError,
)
from resources.settings import Settings

# What to try next, by kind of problem (the most specific class that matches wins).
HINTS: dict[type[FeatureStoreError], str] = {
    FeatureReferenceError: "`feature-store tables` and `feature-store features` list what exists",
    StoreUnavailableError: "is the online store running? `feature-store online-store start` "
    "starts the embedded one; FEATURE_STORE_DYNAMODB_ENDPOINT says where it is looked for",
    PartitionNotPublishedError: "`feature-store backfill FIRST LAST` builds and publishes days",
    FeatureDefinitionError: "fix the feature table's YAML under dbt_project/models/",
    LocalServerError: "`feature-store online-store status` shows what runs",
    OnDemandFunctionError: "fix the function named above (its module is listed in "
    "dbt_project/models/features/on_demand_features.yml)",
}


def hint(error: FeatureStoreError, command: str) -> str:
    for cls in type(error).__mro__:
        if cls in HINTS:
            return HINTS[cls]
    return f"see `feature-store {command} --help`"


def main(argv: list[str] | None = None) -> int:
    from feature_assets.cli import commands, demo
    from feature_assets.cli.parsing import build_parser

    args = build_parser().parse_args(argv)
    if (
        getattr(args, "port", None)
        and args.command in ("online-store", "demo")
        and "FEATURE_STORE_DYNAMODB_ENDPOINT" not in os.environ
    ):
        os.environ["FEATURE_STORE_DYNAMODB_ENDPOINT"] = f"http://127.0.0.1:{args.port}"
    settings = Settings.from_env()
    handlers = {
        "online-store": commands.cmd_online_store,
        "generate-data": commands.cmd_generate,
        "backfill": commands.cmd_backfill,
        "materialize": commands.cmd_backfill,
        "resync": commands.cmd_resync,
        "serve": commands.cmd_serve,
        "ui": commands.cmd_ui,
        "tables": commands.cmd_tables,
        "features": commands.cmd_features,
        "describe": commands.cmd_describe,
        "search": commands.cmd_search,
        "freshness": commands.cmd_freshness,
        "catalog": commands.cmd_catalog,
        "monitor": commands.cmd_monitor,
        "demo": demo.cmd_demo,
    }
    try:
        return handlers[args.command](args, settings)
    except FeatureStoreError as error:
        # A problem the user can act on: one line, with what to try, and no traceback.
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        advice = hint(error, args.command)
        print(f"feature-store {args.command}: {first_line} (hint: {advice})", file=sys.stderr)
        return 2
