"""Write, audit, publish: the blocking pandera check that alone makes a partition visible."""

import dagster as dg

from feature_assets.contract import FeatureTable
from feature_assets.partitions import days_in
from feature_assets.validation import PartitionValidationError, validate_partition
from resources.offline_store import OfflineStore

CHECK_NAME = "validated_and_published"
FIRST_DAY, LAST_DAY = "first_day", "last_day"


def build_publish_check(
    table: FeatureTable, partitions_def: dg.DailyPartitionsDefinition
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(table.name),
        name=CHECK_NAME,
        blocking=True,
        partitions_def=partitions_def,
        # Two runs never replace the same table's days at once (limit 1 in dagster.yaml).
        pool=f"publish_{table.name}",
        description=(
            f"Validates the built partition of {table.name} against its pandera schema and, "
            "only if it passes, publishes it for training sets and the online sync."
        ),
    )
    def _check(
        context: dg.AssetCheckExecutionContext, offline_store: OfflineStore
    ) -> dg.AssetCheckResult:
        days = days_in(context.partition_time_window)
        staged = offline_store.read_staged(table, context.run.run_id)
        try:
            validate_partition(table, staged, days)
        except PartitionValidationError as error:
            context.log.error(str(error))
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description=str(error),
                metadata={"rows": len(staged), "published": False},
            )
        rows_per_day = offline_store.publish(table, context.run.run_id, days)
        offline_store.discard_staged(table, context.run.run_id)
        return dg.AssetCheckResult(
            passed=True,
            # The days this evaluation published: the online-sync sensor syncs exactly these.
            metadata={
                "rows": len(staged),
                "published": True,
                "days": len(rows_per_day),
                FIRST_DAY: days[0].isoformat(),
                LAST_DAY: days[-1].isoformat(),
            },
        )

    return _check
