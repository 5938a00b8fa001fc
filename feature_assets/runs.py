"""Launching the feature pipeline for a day range on a Dagster instance (CLI, demo, tests)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg

from feature_assets.definitions import PIPELINE_JOB
from resources.settings import Settings

INSTANCE_CONFIG = """\
# Written by feature-store: one writer per pool (e.g. one online sync per table at a time).
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""


def persistent_instance(settings: Settings) -> dg.DagsterInstance:
    """The instance under <home>/dagster, shared with `feature-store ui`, so runs show in the UI."""
    home = prepare_dagster_home(settings.dagster_home)
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def prepare_dagster_home(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
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
) -> dg.ExecuteInProcessResult:
    """One run over the daily partitions first..last (inclusive), as a single-run backfill."""
    return defs.resolve_job_def(PIPELINE_JOB).execute_in_process(
        instance=instance,
        asset_selection=list(asset_selection) if asset_selection else None,
        run_config=run_config,
        raise_on_error=raise_on_error,
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
    )
