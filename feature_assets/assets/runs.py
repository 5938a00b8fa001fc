"""Launching the feature pipeline for a day range on a Dagster instance (CLI, demo, tests)."""

import os
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
from filelock import FileLock

from feature_assets.kernel.dates import range_tags
from feature_assets.kernel.names import MONITORING_JOB, PARITY_CHECK, PIPELINE_JOB, RAW_GROUP
from resources.offline_store import OfflineStore
from resources.settings import Settings
from sensors.dead_runs import owner_tags, reap_dead_runs

# Step-by-step events stay in the run's record (and the UI); the terminal shows warnings only.
QUIET_RUN_CONFIG: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

CONFIG_MARKER = "# Written by feature-store"
INSTANCE_CONFIG = f"""\
{CONFIG_MARKER}: one writer per pool (one online sync and one publish per table at a time).
concurrency:
  pools:
    default_limit: 1
# A run whose process died is run again; a run that failed in a step is not (a failed
# validation stays failed; the online sync retries its own step when the store is down).
run_retries:
  enabled: true
  max_retries: 2
  retry_on_asset_or_op_failure: false
# Under the daemon: a failed or killed run's pool slots are freed a minute after it ends
# (runs of the CLI are reaped by `reap_dead_runs` before the next one starts).
run_monitoring:
  enabled: true
  free_slots_after_run_end_seconds: 60
# Evaluate each feature table's FreshnessPolicy (its freshness SLA) in the UI.
freshness:
  enabled: true
telemetry:
  enabled: false
"""


def persistent_instance(settings: Settings) -> dg.DagsterInstance:
    """The instance under <home>/dagster, shared with `feature-store ui`, so runs show in the UI."""
    home = prepare_dagster_home(settings.dagster_home)
    os.environ["DAGSTER_HOME"] = str(home)
    # Processes opening a new instance at once race to create its SQLite tables
    # ("table runs already exists"): the first creates them, the others wait.
    with FileLock(home / ".instance.lock"):
        return dg.DagsterInstance.get()


def prepare_dagster_home(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    # Ours to rewrite when it is the one we wrote; a user's own file is left alone.
    if not config.exists() or config.read_text().startswith(CONFIG_MARKER):
        config.write_text(INSTANCE_CONFIG)
    return home


def pipeline_job(
    defs: dg.Definitions, asset_selection: Sequence[dg.AssetKey] | None = None
) -> dg.JobDefinition:
    """The pipeline job, or its subset for a selection: the selected assets, their checks and
    the landing gates of the raw sources they read (an asset selection alone would drop the
    gates, which are on other assets)."""
    job = defs.resolve_job_def(PIPELINE_JOB)
    if not asset_selection:
        return job
    return job.get_subset(
        asset_selection=set(asset_selection),
        asset_check_selection=checks_for(defs, asset_selection),
    )


def step_count(job: dg.JobDefinition) -> int:
    """Steps a run of `job` executes: one per node (no dynamic outputs in this pipeline)."""
    return len(job.graph.nodes)


def materialize_range(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    first: date,
    last: date,
    *,
    asset_selection: Sequence[dg.AssetKey] | None = None,
    run_config: dict[str, Any] | None = None,
    raise_on_error: bool = False,
    run_id: str | None = None,
) -> dg.ExecuteInProcessResult:
    """One run over the daily partitions first..last (inclusive), as a single-run backfill;
    quiet on the console unless `run_config` says otherwise."""
    reap_dead_runs(instance)
    remove_leftovers(defs, instance)
    return pipeline_job(defs, asset_selection).execute_in_process(
        instance=instance,
        run_config=QUIET_RUN_CONFIG if run_config is None else run_config,
        raise_on_error=raise_on_error,
        tags={**range_tags(first, last), **owner_tags()},
        run_id=run_id,
    )


def run_monitoring(
    defs: dg.Definitions, instance: dg.DagsterInstance, day: date
) -> dg.ExecuteInProcessResult:
    """One run of the monitoring job: drift of every service on `day`, parity as of now."""
    reap_dead_runs(instance)
    return defs.resolve_job_def(MONITORING_JOB).execute_in_process(
        instance=instance,
        partition_key=day.isoformat(),
        run_config=QUIET_RUN_CONFIG,
        raise_on_error=False,
        tags=owner_tags(),
    )


ACTIVE = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def remove_leftovers(defs: dg.Definitions, instance: dg.DagsterInstance) -> int:
    """Staging folders and `.tmp-*` files that runs no longer going left behind."""
    store = (defs.resources or {}).get("offline_store")
    if not isinstance(store, OfflineStore):
        return 0
    active = instance.get_run_records(filters=dg.RunsFilter(statuses=ACTIVE))
    starts = [r.create_timestamp.timestamp() for r in active]
    return store.remove_leftovers({r.dagster_run.run_id for r in active}, min(starts, default=None))


def checks_for(defs: dg.Definitions, keys: Sequence[dg.AssetKey]) -> set[dg.AssetCheckKey]:
    """The checks of the selected assets and of the raw sources they read directly (parity
    is left to the monitoring job: a refresh stays as fast as its own work)."""
    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    raw = {
        dep.asset_key
        for key in keys
        for dep in specs[key].deps
        if dep.asset_key in specs and specs[dep.asset_key].group_name == RAW_GROUP
    }
    guarded = set(keys) | raw
    return {
        k
        for k in defs.resolve_asset_graph().asset_check_keys
        if k.asset_key in guarded and k.name != PARITY_CHECK
    }


STEP_ENDS = {
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.STEP_SKIPPED,
}


def materialize_following(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    first: date,
    last: date,
    on_steps: Callable[[list[str]], None],
    *,
    asset_selection: Sequence[dg.AssetKey] | None = None,
    run_config: dict[str, Any] | None = None,
) -> dg.ExecuteInProcessResult:
    """`materialize_range`, telling `on_steps` the keys of the steps ended so far, from the
    run's own event log, whenever more have ended (and once at the end).

    The run stays in the main thread (dbt and Dagster install signal handlers); a thread
    polls the instance for ended steps."""
    run_id = str(uuid.uuid4())
    done = threading.Event()

    def follow() -> None:
        # Only the records after the cursor: re-reading the run's whole log each poll cost
        # ~5% of a one-day refresh's CPU, taken from the steps.
        ended: list[str] = []
        cursor = None
        while True:
            finished = done.wait(0.5)
            page = instance.get_records_for_run(run_id, cursor=cursor, of_type=STEP_ENDS)
            cursor = page.cursor
            new = [
                r.event_log_entry.dagster_event.step_key
                for r in page.records
                if r.event_log_entry.dagster_event and r.event_log_entry.dagster_event.step_key
            ]
            ended += new
            if new or finished:
                on_steps(list(ended))
            if finished:
                return

    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    try:
        return materialize_range(
            defs,
            instance,
            first,
            last,
            asset_selection=asset_selection,
            run_config=run_config,
            run_id=run_id,
        )
    finally:
        done.set()
        watcher.join()
