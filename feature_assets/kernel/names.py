"""Names shared across layers: asset keys, the publish check, pools, jobs, sensors, tags.

Plain strings and tuples, so the kernel needs no Dagster; the wiring wraps asset key paths
in `dg.AssetKey`. A name used in two places is written here once.
"""

# The daily partition column every feature table is published by, unless its meta says otherwise.
DEFAULT_PARTITION_COLUMN = "feature_date"

# The blocking check that validates a built partition and alone publishes it.
PUBLISH_CHECK = "validated_and_published"

# The check that what is served online is what a training set has now (monitoring runs only).
PARITY_CHECK = "online_offline_parity"

# The blocking check of a raw source's landing days, run before any feature table reads them.
LANDING_GATE = "landing_gate"
# A landing day folder holding this file is declared empty on purpose (the gate lets it pass).
EMPTY_DAY_MARKER = "_EMPTY"

PIPELINE_JOB = "feature_pipeline"
LANDING_SENSOR = "raw_landing_sensor"
ONLINE_SYNC_SENSOR = "online_sync_sensor"
RAW_GROUP = "raw_sources"
ON_DEMAND_GROUP = "on_demand"
MONITORING_GROUP = "monitoring"
# Drift of every feature service and online/offline parity of every online table, for a day.
MONITORING_JOB = "feature_monitoring"

# Tag on every feature table asset (and on its online table), to filter the asset graph by.
FEATURE_TABLE_TAG = "feature_table"
# Run tags that make one run cover a day range as a single-run backfill (Dagster's own names).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# Where an asset's data lives, as Dagster's UI reads it (its own metadata keys).
TABLE_NAME_METADATA = "dagster/table_name"
STORAGE_KIND_METADATA = "dagster/storage_kind"
URI_METADATA = "dagster/uri"
TRIGGER_TAG = "feature_store/trigger"
# The machine and process running an in-process run, so a run whose process died is found.
RUN_HOST_TAG = "feature_store/host"
RUN_PID_TAG = "feature_store/pid"
RUN_PID_STARTED_TAG = "feature_store/pid_started"  # tells the pid from a later reuse of it

# Parquet key-value metadata of a published day: the run that published it.
PUBLISHED_BY_RUN = "feature_store.run_id"


def table_asset_path(table_name: str) -> tuple[str, ...]:
    return (table_name,)


def online_asset_path(table_name: str) -> tuple[str, ...]:
    """The online table's asset: its own last part, since Dagster labels a node by it."""
    return ("online", f"{table_name}_online")


def on_demand_asset_path(name: str) -> tuple[str, ...]:
    return ("on_demand", name)


def drift_asset_path(service_name: str) -> tuple[str, ...]:
    return ("monitoring", f"{service_name}_drift")


def online_sync_step(table_name: str) -> str:
    """The step key of a table's online sync in a run (Dagster joins the path with '__')."""
    return "__".join(online_asset_path(table_name))


def publish_pool(table_name: str) -> str:
    """Two runs never replace the same table's days at once (pool limit 1)."""
    return f"publish_{table_name}"


def online_sync_pool(table_name: str) -> str:
    """One writer per online table keeps the newer-wins decision valid until it is written."""
    return f"online_sync_{table_name}"


def refresh_job(table_name: str) -> str:
    return f"refresh_{table_name}"


def raw_source_path(source_name: str, name: str) -> tuple[str, ...]:
    """dagster-dbt's default key of a dbt source, so feature tables depend on these specs."""
    return (source_name, name)


def build_check_paths(
    table_name: str, source_keys: tuple[str, ...]
) -> list[tuple[tuple[str, ...], str]]:
    """(asset key path, check name) of every check a run building the table runs: the landing
    gate of each source it reads (`source_name.name`), then its publish check."""
    gates = [(raw_source_path(*key.split(".", 1)), LANDING_GATE) for key in source_keys]
    return [*gates, (table_asset_path(table_name), PUBLISH_CHECK)]
