"""The code location: every feature table's assets, checks, jobs and resources."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from feature_assets.contract import load_feature_tables
from feature_assets.dbt_assets import build_feature_table_assets
from feature_assets.dbt_project import dbt_executable, feature_dbt_project
from feature_assets.online_sync import build_online_sync_asset
from feature_assets.publishing import build_publish_check
from feature_assets.raw_sources import load_raw_sources, raw_source_spec
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from resources.settings import Settings
from sensors.landing import build_landing_sensor
from sensors.online_sync import build_online_sync_sensor
from sensors.refresh_policy import check_refresh_policy
from sensors.schedules import build_refresh_job, build_refresh_schedule

PIPELINE_JOB = "feature_pipeline"

# Partitioned asset checks and asset backfill policies are marked preview/beta; we rely on both.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)


def build_definitions(settings: Settings) -> dg.Definitions:
    project = feature_dbt_project(settings.dbt_project_dir)
    manifest = _read_manifest(project.manifest_path)
    tables = load_feature_tables(manifest)
    for table in tables.values():
        check_refresh_policy(table)
    sources = load_raw_sources(manifest)
    raw_sources = [raw_source_spec(source, settings.landing_dir) for source in sources.values()]
    partitions_def = dg.DailyPartitionsDefinition(start_date=settings.partition_start_date)
    feature_tables = build_feature_table_assets(
        project, tables, partitions_def, settings.landing_dir
    )
    syncs = [build_online_sync_asset(t, partitions_def) for t in tables.values() if t.online]
    checks = [build_publish_check(t, partitions_def) for t in tables.values()]
    refresh_jobs = {name: build_refresh_job(t, partitions_def) for name, t in tables.items()}
    return dg.Definitions(
        assets=[*raw_sources, feature_tables, *syncs],
        asset_checks=checks,
        jobs=[
            dg.define_asset_job(
                PIPELINE_JOB,
                selection=dg.AssetSelection.assets(feature_tables, *syncs),
                partitions_def=partitions_def,
                description="Build, validate, publish and serve every feature table for a day range.",
            ),
            *refresh_jobs.values(),
        ],
        schedules=[
            build_refresh_schedule(tables[name], job, partitions_def)
            for name, job in refresh_jobs.items()
        ],
        sensors=[
            build_landing_sensor(tables, sources, settings.landing_dir, partitions_def),
            build_online_sync_sensor(tables),
        ],
        resources={
            "dbt": DbtCliResource(project_dir=project, dbt_executable=dbt_executable()),
            "offline_store": offline_store(settings),
            "online_store": online_store(settings),
        },
    )


def offline_store(settings: Settings) -> OfflineStore:
    return OfflineStore(root=str(settings.offline_dir), staging_root=str(settings.staging_dir))


def online_store(settings: Settings) -> OnlineStore:
    return OnlineStore(
        endpoint_url=settings.dynamodb_endpoint,
        region=settings.region,
        table_prefix=settings.table_prefix,
        max_attempts=settings.dynamodb_max_attempts,
    )


def _read_manifest(path: Path) -> dict:
    return json.loads(path.read_text())


defs = build_definitions(Settings.from_env())
