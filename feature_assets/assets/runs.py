"""Launching the feature pipeline for a day range on a Dagster instance (CLI, demo, tests)."""

import os
import sys
import threading
import uuid
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
from filelock import FileLock
from tqdm import tqdm

from feature_assets.kernel.dates import range_tags
from feature_assets.kernel.names import PIPELINE_JOB, RAW_GROUP
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
    quiet on the console unless `run_config` says otherwise.

    A selection runs the selected assets' checks and the landing gates of the raw sources
    they read (an asset selection alone would drop the gates, which are on other assets)."""
    reap_dead_runs(instance)
    remove_leftovers(defs, instance)
    job = defs.resolve_job_def(PIPELINE_JOB)
    if asset_selection:
        job = job.get_subset(
            asset_selection=set(asset_selection),
            asset_check_selection=checks_for(defs, asset_selection),
        )
    return job.execute_in_process(
        instance=instance,
        run_config=QUIET_RUN_CONFIG if run_config is None else run_config,
        raise_on_error=raise_on_error,
        tags={**range_tags(first, last), **owner_tags()},
        run_id=run_id,
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
    """The checks of the selected assets and of the raw sources they read directly."""
    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    raw = {
        dep.asset_key
        for key in keys
        for dep in specs[key].deps
        if dep.asset_key in specs and specs[dep.asset_key].group_name == RAW_GROUP
    }
    guarded = set(keys) | raw
    return {k for k in defs.resolve_asset_graph().asset_check_keys if k.asset_key in guarded}


STEP_ENDS = {
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.STEP_SKIPPED,
}


def materialize_with_progress(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    first: date,
    last: date,
    *,
    asset_selection: Sequence[dg.AssetKey],
    steps: int,
    run_config: dict[str, Any] | None = None,
) -> dg.ExecuteInProcessResult:
    """`materialize_range` with a progress bar on stderr, fed from the run's own event log.

    The run stays in the main thread (dbt and Dagster install signal handlers); a thread
    polls the instance for finished steps."""
    run_id = str(uuid.uuid4())
    done = threading.Event()

    def follow() -> None:
        with tqdm(total=steps, unit="step", desc=f"{first}..{last}", file=sys.stderr) as bar:
            while not done.wait(0.5):
                ended = [
                    e.dagster_event.step_key
                    for e in instance.all_logs(run_id, of_type=STEP_ENDS)
                    if e.dagster_event
                ]
                bar.update(len(ended) - bar.n)
                if ended:
                    bar.set_postfix_str(ended[-1])
            bar.update(steps - bar.n)

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
