"""The online-sync asset of each online feature table: published rows -> DynamoDB, newer-wins."""

from collections.abc import Mapping
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from feature_assets.assets.feature_tables import feature_table_tags
from feature_assets.kernel.contract import FeatureTable, format_duration
from feature_assets.kernel.dates import days_in
from feature_assets.kernel.errors import StoreUnavailableError
from feature_assets.kernel.names import (
    STORAGE_KIND_METADATA,
    TABLE_NAME_METADATA,
    online_asset_path,
    online_sync_pool,
    table_asset_path,
)
from feature_assets.kernel.refresh_policy import rewrite_horizon
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from resources.online_sync import ServiceCompanions, sync_table

SYNC_RETRIES = 4
SYNC_RETRY_BASE_SECONDS = 5


class OnlineSyncConfig(dg.Config):
    force: bool = Field(
        default=False,
        description="Write the window's rows even where a newer partition holds a newer value.",
    )


def online_asset_key(table: FeatureTable) -> dg.AssetKey:
    return dg.AssetKey(online_asset_path(table.name))


def build_online_sync_asset(
    table: FeatureTable,
    partitions_def: dg.DailyPartitionsDefinition,
    online_table: str,
    colocated: Mapping[str, tuple[str, ...]] | None = None,
    pool_table: str | None = None,
    companions: ServiceCompanions | None = None,
) -> dg.AssetsDefinition:
    """`colocated`: the co-located services holding part of the table, and which features.
    `pool_table`: whose sync pool to join (tables sharing co-located items share one, as
    each sync puts whole items). `companions`: each service's other tables and features."""
    colocated = dict(colocated or {})

    @dg.asset(
        key=online_asset_key(table),
        deps=[dg.AssetKey(table_asset_path(table.name))],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=online_sync_pool(pool_table or table.name),
        group_name=table.entity,
        owners=[table.owner],
        kinds={"dynamodb"},
        tags=feature_table_tags(table),
        metadata={
            "keys": list(table.keys),
            "ttl": format_duration(table.ttl),
            "features": list(table.feature_names),
            TABLE_NAME_METADATA: online_table,
            STORAGE_KIND_METADATA: "dynamodb",
        },
        description=(
            f"Online copy of {table.name}: its latest values per {'/'.join(table.keys)} in the "
            f"DynamoDB table {online_table}."
        ),
    )
    def _sync(
        context: dg.AssetExecutionContext,
        config: OnlineSyncConfig,
        offline_store: dg.ResourceParam[OfflineStore],
        online_store: dg.ResourceParam[OnlineStore],
    ) -> dg.MaterializeResult:
        window = context.partition_time_window
        days = days_in(window.start, window.end)
        rows = offline_store.rows_to_serve(table, days, force=config.force)
        try:
            results = sync_table(
                offline_store,
                online_store,
                table,
                colocated,
                rows,
                horizon=rewrite_horizon(table, datetime.now(UTC)),
                always_write=config.force,
                companions=companions,
            )
        except StoreUnavailableError as error:
            # Down or throttling beyond botocore's own retries: wait and rerun the step (writes
            # are idempotent). Validation failures never get here: they stop the run at the
            # blocking check, so they are not retried.
            wait = min(SYNC_RETRY_BASE_SECONDS * 2**context.retry_number, 120)
            context.log.warning(f"{error}; retrying in {wait}s")
            raise dg.RetryRequested(max_retries=SYNC_RETRIES, seconds_to_wait=wait) from error
        own = results[online_table]
        # Each day's own count: the items written whose value came from that day's partition
        # (a key that changed again later in the range is counted on its last day only).
        for day in days:
            context.add_asset_metadata(
                {"items_written": own.written_days.get(day, 0)}, partition_key=day.isoformat()
            )
        return dg.MaterializeResult(
            metadata={
                "items_written_by_run": own.written,
                "items_skipped": own.skipped,
                "items_skipped_unchanged": own.unchanged,
                "items_skipped_deferred": own.deferred,
                "items_skipped_stored_newer": own.stored_newer,
                "online_table": online_table,
                **{
                    f"service_items_written/{name}": counts.written
                    for name, counts in results.items()
                    if name != online_table
                },
                **{
                    f"service_items_skipped/{name}": counts.skipped
                    for name, counts in results.items()
                    if name != online_table
                },
            }
        )

    return _sync
