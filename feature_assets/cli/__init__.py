"""`feature-store`: the command line. Parsing, commands, the demo and rendering live apart."""

import os
import sys

from feature_assets.kernel.errors import FeatureStoreError
from resources.settings import Settings


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
        "demo": demo.cmd_demo,
    }
    try:
        return handlers[args.command](args, settings)
    except FeatureStoreError as error:
        # A problem the user can act on: one line, no traceback.
        print(f"feature-store {args.command}: {error}", file=sys.stderr)
        return 2
