"""The code location: every feature table's assets, checks, jobs, schedules and sensors."""

import json
import warnings

import dagster as dg
from dagster_dbt import DbtCliResource

from feature_assets.assets.dbt_project import feature_dbt_project
from feature_assets.assets.feature_tables import build_feature_table_assets
from feature_assets.assets.online_sync import build_online_sync_asset
from feature_assets.assets.publish_check import build_publish_check
from feature_assets.assets.raw_sources import raw_source_spec
from feature_assets.kernel.manifest import load_contract
from feature_assets.kernel.names import PIPELINE_JOB, refresh_job, table_asset_path
from resources.dbt_manifest import dbt_executable
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from resources.settings import Settings
from sensors.landing import build_landing_sensor
from sensors.online_sync import build_online_sync_sensor
from sensors.schedules import build_refresh_schedule

# Partitioned asset checks and asset backfill policies are marked preview/beta; we rely on both.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)


def build_definitions(settings: Settings) -> dg.Definitions:
    project = feature_dbt_project(settings.dbt_project_dir)  # parses the manifest if stale
    contract = load_contract(json.loads(project.manifest_path.read_text()))
    tables = contract.tables
    partitions_def = dg.DailyPartitionsDefinition(start_date=settings.partition_start_date)
    offline_store = OfflineStore.from_settings(settings)
    feature_tables = build_feature_table_assets(
        project, tables, partitions_def, settings.landing_dir
    )
    syncs = [build_online_sync_asset(t, partitions_def) for t in tables.values() if t.online]
    refresh_jobs = [
        dg.define_asset_job(
            refresh_job(name),
            selection=dg.AssetSelection.assets(dg.AssetKey(table_asset_path(name))),
            partitions_def=partitions_def,
            description=f"Rebuild, validate and publish {name} for a day or a day range.",
        )
        for name in tables
    ]
    return dg.Definitions(
        assets=[
            *(raw_source_spec(s, settings.landing_dir) for s in contract.sources.values()),
            feature_tables,
            *syncs,
        ],
        asset_checks=[build_publish_check(t, partitions_def) for t in tables.values()],
        jobs=[
            dg.define_asset_job(
                PIPELINE_JOB,
                selection=dg.AssetSelection.assets(feature_tables, *syncs),
                partitions_def=partitions_def,
                description="Build, validate, publish and serve every feature table for a day range.",
            ),
            *refresh_jobs,
        ],
        schedules=[build_refresh_schedule(t, partitions_def) for t in tables.values()],
        sensors=[
            build_landing_sensor(tables, contract.sources, settings.landing_dir, partitions_def),
            build_online_sync_sensor(tables, offline_store),
        ],
        resources={
            "dbt": DbtCliResource(project_dir=project, dbt_executable=dbt_executable()),
            "offline_store": offline_store,
            "online_store": OnlineStore.from_settings(settings),
        },
    )
