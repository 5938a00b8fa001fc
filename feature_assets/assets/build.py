"""The code location: every feature table's assets, checks, jobs, schedules and sensors."""

import warnings

import dagster as dg

from feature_assets.assets.dbt_project import FeatureDbtCliResource, feature_dbt_project
from feature_assets.assets.feature_tables import build_feature_table_assets
from feature_assets.assets.landing_gates import build_landing_gate, gate_check_keys, gated_sources
from feature_assets.assets.monitoring import build_drift_asset
from feature_assets.assets.on_demand import on_demand_spec
from feature_assets.assets.online_sync import build_online_sync_asset
from feature_assets.assets.parity_check import build_parity_check
from feature_assets.assets.publish_check import build_publish_check
from feature_assets.assets.raw_sources import raw_source_spec
from feature_assets.kernel.contract import colocated_companions, colocated_group, colocations
from feature_assets.kernel.names import (
    MONITORING_JOB,
    PIPELINE_JOB,
    refresh_job,
    table_asset_path,
)
from resources.dbt_child import run_dbt_executable
from resources.dbt_manifest import load_project_contract
from resources.landing_zone import LandingZone
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from resources.settings import Settings
from sensors.landing import build_landing_sensor
from sensors.online_sync import build_online_sync_sensor
from sensors.schedules import build_monitoring_schedule, build_refresh_schedule

# Partitioned asset checks and asset backfill policies are marked preview/beta; we rely on both.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)


def build_definitions(settings: Settings) -> dg.Definitions:
    project = feature_dbt_project(settings.dbt_project_dir)  # parses the manifest if stale
    contract = load_project_contract(settings.dbt_project_dir)
    tables, sources = contract.tables, contract.sources
    partitions_def = dg.DailyPartitionsDefinition(start_date=settings.partition_start_date)
    offline_store = OfflineStore.from_settings(settings)
    feature_tables = build_feature_table_assets(
        project,
        tables,
        partitions_def,
        settings.landing_dir,
        offline_store.root,
        settings.dbt_parse_file,
    )
    online_store = OnlineStore.from_settings(settings)
    syncs = [
        build_online_sync_asset(
            t,
            partitions_def,
            online_store.table_name(t),
            colocations(contract, t.name),
            pool_table=colocated_group(contract, t.name)[0],
            companions=colocated_companions(contract, t.name),
        )
        for t in tables.values()
        if t.online
    ]
    parities = [
        build_parity_check(t, pool_table=colocated_group(contract, t.name)[0])
        for t in tables.values()
        if t.online
    ]
    # Drift is judged on served days, today's included (its reads so far).
    monitoring_partitions = dg.DailyPartitionsDefinition(
        start_date=settings.partition_start_date, end_offset=1
    )
    drifts = [
        build_drift_asset(contract, service, monitoring_partitions, settings.monitoring_dir)
        for service in contract.services.values()
    ]
    monitoring_job = dg.define_asset_job(
        MONITORING_JOB,
        selection=dg.AssetSelection.assets(*drifts) | dg.AssetSelection.checks(*parities),
        partitions_def=monitoring_partitions,
        description="Drift of every feature service on a day, and online/offline parity now.",
    )
    zone = LandingZone.from_settings(settings)
    gates = [
        build_landing_gate(source, tables, partitions_def, zone)
        for source in gated_sources(tables, sources)
    ]
    refresh_jobs = [
        dg.define_asset_job(
            refresh_job(name),
            selection=dg.AssetSelection.assets(dg.AssetKey(table_asset_path(name)))
            | dg.AssetSelection.checks(*gate_check_keys(table)),
            partitions_def=partitions_def,
            description=f"Gate the landing days, rebuild, validate and publish {name} for a day range.",
        )
        for name, table in tables.items()
    ]
    return dg.Definitions(
        assets=[
            *(raw_source_spec(s, settings.landing_dir, partitions_def) for s in sources.values()),
            feature_tables,
            *syncs,
            *(on_demand_spec(f) for f in contract.on_demand.values()),
            *drifts,
        ],
        asset_checks=[
            *gates,
            *(build_publish_check(t, partitions_def) for t in tables.values()),
            *parities,
        ],
        jobs=[
            dg.define_asset_job(
                PIPELINE_JOB,
                # Parity runs in the monitoring job: a refresh stays as fast as its own work.
                selection=(
                    dg.AssetSelection.assets(feature_tables, *syncs)
                    | dg.AssetSelection.checks(*gates)
                )
                - dg.AssetSelection.checks(*parities),
                partitions_def=partitions_def,
                description="Build, validate, publish and serve every feature table for a day range.",
            ),
            *refresh_jobs,
            monitoring_job,
        ],
        schedules=[
            *(build_refresh_schedule(t, partitions_def) for t in tables.values()),
            build_monitoring_schedule(partitions_def),
        ],
        sensors=[
            build_landing_sensor(tables, sources, settings.landing_dir, partitions_def),
            build_online_sync_sensor(tables, offline_store),
        ],
        # Runs the daemon or the UI launches execute their steps in the run's own process, as
        # the CLI's do: the multiprocess default started 12 step processes per run, each
        # loading these definitions (79 s against ~30 s for a one-day run).
        executor=dg.in_process_executor,
        resources={
            # The engine picks the profile's target: the same models on DuckDB or Spark.
            "dbt": FeatureDbtCliResource(
                project_dir=project,
                dbt_executable=run_dbt_executable(),
                target="spark" if settings.engine == "spark" else None,
            ),
            "offline_store": offline_store,
            "online_store": online_store,
        },
    )
