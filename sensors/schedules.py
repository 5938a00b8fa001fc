"""One refresh job and one schedule per feature table, at the cadence its contract implies."""

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

from feature_assets.contract import FeatureTable, format_duration
from feature_assets.partitions import last_complete_day
from sensors.refresh_policy import refresh_cron, refresh_interval


def refresh_job_name(table: FeatureTable) -> str:
    return f"refresh_{table.name}"


def build_refresh_job(
    table: FeatureTable, partitions_def: dg.DailyPartitionsDefinition
) -> "UnresolvedAssetJobDefinition":
    """Builds, validates and publishes the table; the online-sync sensor then syncs what passed."""
    return dg.define_asset_job(
        refresh_job_name(table),
        selection=dg.AssetSelection.assets(dg.AssetKey(table.name)),
        partitions_def=partitions_def,
        description=f"Rebuild, validate and publish {table.name} for a day or a day range.",
    )


def build_refresh_schedule(
    table: FeatureTable,
    job: "UnresolvedAssetJobDefinition",
    partitions_def: dg.DailyPartitionsDefinition,
) -> dg.ScheduleDefinition:
    interval = format_duration(refresh_interval(table))

    @dg.schedule(
        name=f"refresh_{table.name}_every_{interval}",
        cron_schedule=refresh_cron(table),
        job=job,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"Every {interval}: ttl {format_duration(table.ttl)}, freshness "
            f"{format_duration(table.freshness)} (twice per each, at least daily)."
        ),
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        # The newest complete day; a later tick the same day rebuilds it with late data.
        tick = context.scheduled_execution_time or datetime.now(UTC)
        day = last_complete_day(partitions_def, tick)
        if day is None:
            return dg.SkipReason("no complete daily partition yet")
        return dg.RunRequest(run_key=f"{day}@{tick.isoformat()}", partition_key=day.isoformat())

    return _schedule
