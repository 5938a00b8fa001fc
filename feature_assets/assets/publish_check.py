"""Write, audit, publish: the blocking pandera check that alone makes a partition visible."""

import dagster as dg

from feature_assets.kernel.contract import FeatureTable
from feature_assets.kernel.dates import days_in
from feature_assets.kernel.errors import PartitionValidationError
from feature_assets.kernel.names import PUBLISH_CHECK, publish_pool, table_asset_path
from feature_assets.validation.partition import audit_staged
from resources.offline_store import OfflineStore


def build_publish_check(
    table: FeatureTable, partitions_def: dg.DailyPartitionsDefinition
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(table_asset_path(table.name)),
        name=PUBLISH_CHECK,
        blocking=True,
        partitions_def=partitions_def,
        pool=publish_pool(table.name),
        description=(
            f"Validates the built partition of {table.name} against its pandera schema and, "
            "only if it passes, publishes it for training sets and the online sync."
        ),
    )
    def _check(
        context: dg.AssetCheckExecutionContext, offline_store: dg.ResourceParam[OfflineStore]
    ) -> dg.AssetCheckResult:
        window = context.partition_time_window
        days = days_in(window.start, window.end)
        try:
            staged = audit_staged(offline_store, table, context.run.run_id, days)
        except PartitionValidationError as error:
            context.log.error(str(error))
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description=str(error),
                metadata={"published": False},
            )
        rows_per_day = offline_store.publish(table, context.run.run_id, days)
        offline_store.discard_staged(table, context.run.run_id)
        return dg.AssetCheckResult(
            passed=True,
            metadata={
                "rows": len(staged),
                "published": True,
                "days": len(rows_per_day),
                "first_day": days[0].isoformat(),
                "last_day": days[-1].isoformat(),
            },
        )

    return _check
