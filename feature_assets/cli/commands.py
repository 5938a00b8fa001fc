"""The CLI's commands: each takes the parsed arguments and the settings, returns an exit code.

Dagster is imported only by the commands that run or serve it, so discovery and reads start
fast.
"""

import argparse
import os
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from feature_assets.cli import render, terminal
from feature_assets.demo_data import DAILY_SOURCES, DemoDataSpec, generate_landing_data
from feature_assets.kernel.contract import colocated_companions, colocations
from feature_assets.kernel.errors import CallerError
from feature_assets.kernel.names import PARITY_CHECK
from feature_assets.kernel.refresh_policy import rewrite_horizon
from feature_assets.registry import Registry
from feature_assets.sdk import FeatureStore
from resources.dbt_child import dbt_executable
from resources.dbt_manifest import load_project_contract
from resources.local_dynamodb import reset_signals, running_server, start_server, stop_server
from resources.online_sync import sync_table
from resources.settings import PROJECT_ROOT, Settings
from resources.spark_session import spark_session
from resources.spark_sync import spark_sync


def yesterday() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


def cmd_online_store(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "start":
        server = start_server(settings.home, embedded_port(settings), args.server)
        print(f"{server.kind} online store on {server.endpoint} (pid {server.pid})")
    elif args.action == "stop":
        print("stopped" if stop_server(settings.home) else "no online store was running")
    else:
        server = running_server(settings.home)
        print(f"{server.kind} on {server.endpoint} (pid {server.pid})" if server else "not running")
        return 0 if server else 1
    return 0


def embedded_port(settings: Settings) -> int:
    """The embedded store's port, from the one endpoint setting every client reads."""
    if settings.local_port is None:
        raise CallerError(
            f"FEATURE_STORE_DYNAMODB_ENDPOINT is {settings.dynamodb_endpoint!r}, not "
            "http://127.0.0.1:<port>: there is no embedded online store to run"
        )
    return settings.local_port


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    spec = DemoDataSpec(
        users=args.users,
        transactions_per_day=args.transactions_per_day,
        app_events_per_day=3 * args.users,
        seed=args.seed,
    )
    last = args.last_day or yesterday()
    first = last - timedelta(days=args.days - 1)
    paths = generate_landing_data(settings.landing_dir, first, last + timedelta(days=1), spec)
    print(
        f"landed {len(paths)} files: {', '.join(DAILY_SOURCES)} for {first}..{last}, "
        f"and the merchant list, in {settings.landing_dir}"
    )
    return 0


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    """One single-run range over first..last, with a progress bar over its steps."""
    if args.last_day < args.first_day:
        raise CallerError(
            f"the last day {args.last_day} is before the first day {args.first_day}; "
            "give the range oldest day first"
        )
    registry = _registry(settings)
    chosen = [registry.table(name) for name in args.table or registry.tables]

    import dagster as dg  # after the arguments are known good: it takes seconds

    from feature_assets.assets.online_sync import online_asset_key
    from feature_assets.kernel.names import table_asset_path

    selection = [dg.AssetKey(table_asset_path(t.name)) for t in chosen]
    if not args.no_sync:
        selection += [online_asset_key(t) for t in chosen if t.online]
    succeeded = run_pipeline(
        settings, args.first_day, args.last_day, selection, verbose=args.verbose
    )
    return 0 if succeeded else 1


def run_pipeline(
    settings: Settings,
    first: date,
    last: date,
    selection: list | None = None,
    *,
    verbose: bool = False,
) -> bool:
    """One run over first..last with a progress bar; whether it succeeded. The run's own
    output (dbt's log, Dagster's warnings) goes to a log file, shown when the run fails or
    with `verbose`."""
    import uuid

    from feature_assets.assets.build import build_definitions
    from feature_assets.assets.runs import (
        materialize_following,
        persistent_instance,
        pipeline_job,
        step_count,
    )

    defs = build_definitions(settings)
    instance = persistent_instance(settings)
    log_path = (
        settings.home / "logs" / f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}.log"
    )
    total = step_count(pipeline_job(defs, selection))
    with terminal.run_output(log_path, verbose=verbose) as screen:
        bar = terminal.progress_bar(total, f"{first}..{last}", "step", screen)

        def show(ended: list[str]) -> None:
            bar.update(len(ended) - bar.n)
            if ended:
                bar.set_postfix_str(ended[-1][-40:], refresh=False)
            bar.refresh()

        with bar:
            result = materialize_following(
                defs, instance, first, last, show, asset_selection=selection
            )
    if result.success:
        print(f"run {result.run_id} succeeded (its log: {log_path})")
    else:
        print(f"run {result.run_id} FAILED; `make ui` shows each step", file=sys.stderr)
        if not verbose:
            terminal.show_failure(log_path)
    return result.success


def cmd_resync(args: argparse.Namespace, settings: Settings) -> int:
    store = FeatureStore.from_settings(settings)
    store.online.ping()  # an unreachable store fails here, before any progress is drawn
    on_spark = settings.engine == "spark"
    for table in store.tables.values():
        if table.online:
            name = store.online.table_name(table)
            if on_spark:  # the table's own items from every Spark partition at once
                counts = spark_sync(
                    spark_session(store.offline.spark_work_dir),
                    store.offline,
                    store.online,
                    table,
                    None,
                )
                print(
                    f"{table.name}: {counts.written} items written to {name} from "
                    f"{counts.partitions} Spark partitions"
                )
            services = colocations(store.contract, table.name)
            if on_spark and not services:
                continue
            rows = store.offline.latest_rows(table)
            with terminal.progress_bar(rows.num_rows, table.name, "item") as bar:
                results = sync_table(
                    store.offline,
                    store.online,
                    table,
                    services,
                    rows,
                    horizon=rewrite_horizon(table, datetime.now(UTC)),
                    full=True,
                    on_written=bar.update,
                    companions=colocated_companions(store.contract, table.name),
                    own_items=not on_spark,
                )
            if not on_spark:
                print(f"{table.name}: {results[name].written} items written to {name}")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import logging
    import signal

    from feature_assets.feature_server import make_server

    token = os.environ.get("FEATURE_STORE_SERVER_TOKEN") or None
    if args.log_rate is not None:
        settings = replace(settings, serving_log_rate=args.log_rate)
    store = FeatureStore.from_settings(settings)
    server = make_server(store, args.host, args.port, token=token, allow_anonymous=args.no_auth)
    # The access log (one line per request, with its request id) goes to stderr.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(
        f"feature server on http://{args.host}:{args.port} (token {'required' if token else 'off'})"
        f", serving log rate {settings.serving_log_rate:g}",
        flush=True,
    )
    reset_signals()
    # SIGTERM stops as Ctrl-C does: the requests under way finish and the log is written.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.drain()
        store.close()
        if store.serving_log is not None:
            stats = store.serving_log.stats()
            print(
                f"serving log: {stats.written_rows} rows written, {stats.dropped_rows} dropped",
                flush=True,
            )
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_ui(args: argparse.Namespace, settings: Settings) -> int:
    from feature_assets.assets.runs import prepare_dagster_home

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


def _registry(settings: Settings) -> Registry:
    store = FeatureStore.from_settings(settings)
    return Registry(store.tables, store.services, store.offline, store.contract.on_demand)


def cmd_tables(args: argparse.Namespace, settings: Settings) -> int:
    registry = _registry(settings)
    if args.json:  # one list: table rows, then on-demand rows (keyed "on_demand")
        render.print_rows([*registry.table_summaries(), *registry.on_demand_summaries()], True)
        return 0
    render.print_rows(registry.table_summaries(), False)
    if registry.on_demand:
        print("\non-demand features (computed when read):")
        render.print_rows(registry.on_demand_summaries(), False)
    return 0


def cmd_features(args: argparse.Namespace, settings: Settings) -> int:
    render.print_rows(_registry(settings).feature_summaries(args.table), args.json)
    return 0


def cmd_describe(args: argparse.Namespace, settings: Settings) -> int:
    registry = _registry(settings)
    if args.table in registry.on_demand:
        render.print_on_demand(registry.describe_on_demand(args.table), args.json)
    else:
        render.print_details(registry.describe(args.table), args.json)
    return 0


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    hits = _registry(settings).search(" ".join(args.words))
    render.print_rows(render.search_rows(hits), args.json)
    return 0 if hits else 1


def cmd_freshness(args: argparse.Namespace, settings: Settings) -> int:
    """Exit status 1 when a table is past its freshness SLA, for cron or CI monitors."""
    rows = _registry(settings).freshness(args.now or datetime.now(UTC))
    render.print_rows(render.freshness_rows(rows), args.json)
    return 1 if any(r.stale for r in rows) else 0


def cmd_monitor(args: argparse.Namespace, settings: Settings) -> int:
    return 0 if monitor(settings, args.day or datetime.now(UTC).date()) else 1


def monitor(settings: Settings, day: date) -> bool:
    """Run the monitoring job for `day`, print what it found and write the report's index;
    whether parity held everywhere (drift only warns)."""
    from feature_assets.assets.build import build_definitions
    from feature_assets.assets.runs import persistent_instance, run_monitoring
    from feature_assets.monitoring.drift import Thresholds
    from feature_assets.monitoring.report import load_results, write_index

    defs = build_definitions(settings)
    result = run_monitoring(defs, persistent_instance(settings), day)
    if not result.success:
        print(f"monitoring run {result.run_id} FAILED; `make ui` shows each step", file=sys.stderr)
        return False
    directory = settings.monitoring_dir / day.isoformat()
    services = load_project_contract(settings.dbt_project_dir).services
    found = {s: load_results(directory, s) for s in sorted(services)}
    results = {service: r for service, r in found.items() if r is not None}
    thresholds = Thresholds()
    index = write_index(directory, results, thresholds, day=day.isoformat())
    print(f"drift on {day} (served against each model's training set):")
    for service, drifts in results.items():
        warned = [d for d in drifts if d.alerts(thresholds)]
        state = f"{len(warned)} of {len(drifts)} features drifted" if warned else "no drift"
        print(f"  {service:24} {state}")
        for drifted in warned:
            print(f"    {drifted.feature}: {'; '.join(drifted.alerts(thresholds))}")
    held = True
    print("online/offline parity now:")
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.check_name != PARITY_CHECK:
            continue
        held = held and evaluation.passed
        table = evaluation.asset_key.path[-1].removesuffix("_online")
        print(f"  {table:32} {'ok' if evaluation.passed else 'FAILED'}: {evaluation.description}")
    print(f"report: {index}")
    return held


def cmd_catalog(args: argparse.Namespace, settings: Settings) -> int:
    from feature_assets.catalog import generate_catalog
    from resources.online_store import OnlineStore

    registry = _registry(settings)
    target = generate_catalog(
        settings.dbt_project_dir,
        settings.catalog_dir,
        registry.tables,
        registry.services,
        OnlineStore.from_settings(settings).table_name,
        registry.on_demand,
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
