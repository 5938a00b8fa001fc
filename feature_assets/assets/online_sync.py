"""The online-sync asset of each online feature table: published rows -> DynamoDB, newer-wins."""

import time
from collections.abc import Mapping
from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
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
from resources.colocated import ColocatedItems
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore

SYNC_RETRIES = 4
SYNC_RETRY_BASE_SECONDS = 5


class OnlineSyncConfig(dg.Config):
    force: bool = Field(
        default=False,
        description="Write the window's rows even where a newer partition holds a newer value.",
    )


def online_asset_key(table: FeatureTable) -> dg.AssetKey:
    return dg.AssetKey(online_asset_path(table.name))


def items_per_day(rows: pa.Table, partition_column: str) -> dict[date, int]:
    counts = pc.value_counts(rows.column(partition_column)).to_pylist()
    return {count["values"]: count["counts"] for count in counts}


def build_online_sync_asset(
    table: FeatureTable,
    partitions_def: dg.DailyPartitionsDefinition,
    online_table: str,
    colocated: Mapping[str, tuple[str, ...]] | None = None,
) -> dg.AssetsDefinition:
    """`colocated`: the co-located services holding part of the table, and which features."""
    colocated = dict(colocated or {})

    @dg.asset(
        key=online_asset_key(table),
        deps=[dg.AssetKey(table_asset_path(table.name))],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=online_sync_pool(table.name),
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
        started = time.time_ns()
        rows = offline_store.rows_to_serve(table, days, force=config.force)
        try:
            written = online_store.write_rows(table, rows)
            # A push that landed while this sync wrote may have been overwritten by an older
            # value: pushes are conditional, these writes are not, so re-apply the pushes.
            raced = offline_store.push_log.raced(table, started)
            if raced is not None:
                online_store.put_if_newer(table, raced)
            service_items = {
                service: ColocatedItems(online_store, service, table).write(
                    table, features, rows, newer_only=not config.force
                )[0]
                for service, features in colocated.items()
            }
        except StoreUnavailableError as error:
            # Down or throttling beyond botocore's own retries: wait and rerun the step (writes
            # are idempotent). Validation failures never get here: they stop the run at the
            # blocking check, so they are not retried.
            wait = min(SYNC_RETRY_BASE_SECONDS * 2**context.retry_number, 120)
            context.log.warning(f"{error}; retrying in {wait}s")
            raise dg.RetryRequested(max_retries=SYNC_RETRIES, seconds_to_wait=wait) from error
        # Each day's own count: the items whose value came from that day's partition (a key
        # that changed again later in the range is counted on its last day only).
        per_day = items_per_day(rows, table.partition_column)
        for day in days:
            context.add_asset_metadata(
                {"items_written": per_day.get(day, 0)}, partition_key=day.isoformat()
            )
        return dg.MaterializeResult(
            metadata={
                "items_written_by_run": written,
                "online_table": online_store.table_name(table),
                **{f"service_items_written/{s}": n for s, n in service_items.items()},
            }
        )

    return _sync
