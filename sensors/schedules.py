"""One refresh schedule per feature table, at the cadence its contract implies."""

from datetime import UTC, date, datetime

import dagster as dg

from feature_assets.kernel.contract import FeatureTable, format_duration
from feature_assets.kernel.dates import last_complete_day
from feature_assets.kernel.names import MONITORING_JOB, refresh_job
from feature_assets.kernel.refresh_policy import refresh_cron, refresh_interval


def build_refresh_schedule(
    table: FeatureTable, partitions_def: dg.DailyPartitionsDefinition
) -> dg.ScheduleDefinition:
    """Runs the table's refresh job (build, validate, publish); the online-sync sensor then
    syncs what passed."""
    interval = format_duration(refresh_interval(table))

    @dg.schedule(
        name=f"refresh_{table.name}_every_{interval}",
        cron_schedule=refresh_cron(table),
        job_name=refresh_job(table.name),
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"Every {interval}: at least twice per ttl ({format_duration(table.ttl)}) and per "
            f"freshness window ({format_duration(table.freshness)}), and at least daily."
        ),
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        # The newest complete day; a later tick the same day rebuilds it with late data.
        tick, day = _newest_complete_day(context, partitions_def)
        if day is None:
            return dg.SkipReason("no complete daily partition yet")
        return dg.RunRequest(run_key=f"{day}@{tick.isoformat()}", partition_key=day.isoformat())

    return _schedule


def build_monitoring_schedule(
    partitions_def: dg.DailyPartitionsDefinition,
) -> dg.ScheduleDefinition:
    """Drift of the day just ended (all its served reads are logged) and parity as of now."""

    @dg.schedule(
        name=f"{MONITORING_JOB}_daily",
        cron_schedule="30 0 * * *",
        job_name=MONITORING_JOB,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Daily at 00:30 UTC: drift of each feature service over the day before, and "
        "online/offline parity of each online table.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        _, day = _newest_complete_day(context, partitions_def)
        if day is None:
            return dg.SkipReason("no complete day to monitor yet")
        return dg.RunRequest(run_key=f"monitor-{day}", partition_key=day.isoformat())

    return _schedule


def _newest_complete_day(
    context: dg.ScheduleEvaluationContext, partitions_def: dg.DailyPartitionsDefinition
) -> tuple[datetime, date | None]:
    """The tick's time, and the newest day complete by then (None before the first)."""
    tick = context.scheduled_execution_time or datetime.now(UTC)
    return tick, last_complete_day(partitions_def.start.date(), tick)
