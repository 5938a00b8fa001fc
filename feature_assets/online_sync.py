"""The online-sync asset of each online feature table: published rows -> DynamoDB, newer-wins."""

import botocore.exceptions
import dagster as dg
from pydantic import Field

from feature_assets.contract import FeatureTable, format_duration
from feature_assets.dbt_assets import feature_table_tags
from feature_assets.partitions import days_in
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore, OnlineStoreError

# Connection refused / timed out / closed, or throttling that outlasted botocore's retries.
TRANSIENT_ERRORS = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    OnlineStoreError,
)
SYNC_RETRIES = 4
SYNC_RETRY_BASE_SECONDS = 5


class OnlineSyncConfig(dg.Config):
    force: bool = Field(
        default=False,
        description="Write the window's rows even where a newer partition holds a newer value.",
    )


def online_asset_key(table: FeatureTable) -> dg.AssetKey:
    return dg.AssetKey(["online", table.name])


def build_online_sync_asset(
    table: FeatureTable, partitions_def: dg.DailyPartitionsDefinition
) -> dg.AssetsDefinition:
    @dg.asset(
        key=online_asset_key(table),
        deps=[dg.AssetKey(table.name)],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        # One writer per table keeps the newer-wins decision valid until it is written.
        pool=f"online_sync_{table.name}",
        group_name=table.entity,
        owners=[table.owner],
        kinds={"dynamodb"},
        tags=feature_table_tags(table),
        metadata={
            "keys": list(table.keys),
            "ttl": format_duration(table.ttl),
            "features": list(table.feature_names),
        },
        description=f"Latest values of {table.name} per {'/'.join(table.keys)} in the online store.",
    )
    def _sync(
        context: dg.AssetExecutionContext,
        config: OnlineSyncConfig,
        offline_store: OfflineStore,
        online_store: OnlineStore,
    ) -> dg.MaterializeResult:
        days = days_in(context.partition_time_window)
        rows = offline_store.rows_to_serve(table, days, force=config.force)
        try:
            written = online_store.write_rows(table, rows)
        except TRANSIENT_ERRORS as error:
            # The store is down or throttling beyond botocore's own retries: wait and rerun the
            # step (writes are idempotent). Validation failures never get here: they stop the
            # run at the blocking check, so they are not retried.
            wait = min(SYNC_RETRY_BASE_SECONDS * 2**context.retry_number, 120)
            context.log.warning(f"online store unavailable ({error}); retrying in {wait}s")
            raise dg.RetryRequested(max_retries=SYNC_RETRIES, seconds_to_wait=wait) from error
        return dg.MaterializeResult(
            metadata={"items_written": written, "online_table": online_store.table_name(table)}
        )

    return _sync
