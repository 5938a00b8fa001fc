"""Feature tables as daily-partitioned Dagster assets built by dbt."""

import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from feature_assets.kernel.contract import FeatureTable, format_duration
from feature_assets.kernel.names import (
    FEATURE_TABLE_TAG,
    STORAGE_KIND_METADATA,
    TABLE_NAME_METADATA,
    URI_METADATA,
)
from resources.dbt_manifest import PARTIAL_PARSE_FILE, TARGET
from resources.offline_store import OfflineStore

# Inside a run's staging folder.
DBT_TARGET_DIR = "dbt_target"


class FeatureTableTranslator(DagsterDbtTranslator):
    """Maps each feature table's contract onto its asset spec: owners, group, tags, metadata."""

    def __init__(self, tables: Mapping[str, FeatureTable], offline_root: str) -> None:
        super().__init__()
        self._tables = tables
        self._offline_root = offline_root

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        table = self._tables.get(self.get_resource_props(manifest, unique_id)["name"])
        if table is None or not unique_id.startswith("model."):
            return spec
        # dbt builds into an in-memory DuckDB ("memory.main.<table>"); the table lives as
        # daily Parquet files under the offline root, and that is what the UI should show.
        storage = {
            k: v
            for k, v in spec.metadata.items()
            if k not in (TABLE_NAME_METADATA, STORAGE_KIND_METADATA)
        }
        spec = spec.replace_attributes(metadata=storage)
        return spec.replace_attributes(
            owners=[table.owner],
            group_name=table.entity,
            freshness_policy=(
                dg.FreshnessPolicy.time_window(fail_window=table.freshness)
                if table.freshness
                else None
            ),
        ).merge_attributes(
            tags=feature_table_tags(table),
            metadata={
                **feature_table_metadata(table),
                URI_METADATA: f"{self._offline_root.rstrip('/')}/{table.name}",
                STORAGE_KIND_METADATA: "parquet",
            },
        )


def feature_table_metadata(table: FeatureTable) -> dict[str, Any]:
    """The contract as asset metadata: the fields of `meta.feature_table` and the features."""
    return {
        "entity": table.entity,
        "keys": list(table.keys),
        "timestamp": table.timestamp,
        "created_timestamp": table.created_timestamp,
        "partition": table.partition_column,
        "ttl": format_duration(table.ttl),
        "freshness": format_duration(table.freshness),
        "owner": table.owner,
        "online": table.online,
        "tags": list(table.tags),
        "features": dg.TableSchema(
            columns=[
                dg.TableColumn(
                    name=f.name,
                    type=f.type_name,
                    description=f.description,
                    constraints=dg.TableColumnConstraints(
                        nullable=f.nullable,
                        other=[f"{check} {arg}" for check, arg in f.checks.items()],
                    ),
                )
                for f in table.features
            ]
        ),
    }


def feature_table_tags(table: FeatureTable) -> dict[str, str]:
    """Tags to filter the asset graph by: every contract tag, plus one marking feature tables."""
    return {FEATURE_TABLE_TAG: "", **{tag: "" for tag in table.tags}}


def run_environment(
    first_day: date,
    end_day: date,
    landing_dir: Path,
    staged_path_template: str,
    parse_file: Path,
    spark_work: Path,
) -> dict[str, str]:
    """What one build's dbt reads from its environment: the feature dates [first_day,
    end_day), where to read and write, and the saved parse to start from.

    Not `--vars`: dbt re-parses the whole project when they change, and they change every
    run. The macros read these values only when executing, so a saved parse stays valid
    (the landing folder, read by the sources' YAML, makes dbt re-parse that one file when it
    differs from the parse's)."""
    return {
        "FEATURE_STORE_BUILD_START": first_day.isoformat(),
        "FEATURE_STORE_BUILD_END": end_day.isoformat(),
        "FEATURE_STORE_LANDING_DIR": str(landing_dir),
        "FEATURE_STORE_STAGED_PATH": staged_path_template,
        "DBT_PARTIAL_PARSE_FILE_PATH": str(parse_file),
        # On Spark (`--target spark`): where its session keeps its warehouse folders.
        "FEATURE_STORE_SPARK_WORK": str(spark_work),
    }


def parse_to_start_from(home_parse: Path, project: Path) -> Path:
    """The home's saved parse (made with its landing folder: nothing to re-parse), else the
    project's (made by `dbt parse`: the sources' YAML is re-parsed). dbt checks either
    against the project's files and re-parses what changed."""
    return home_parse if home_parse.exists() else project / TARGET / PARTIAL_PARSE_FILE


def keep_parse(target_path: Path, home_parse: Path) -> None:
    """Save a successful build's parse as the home's, whole or not at all (runs of one home
    may end at the same time; either one's parse will do)."""
    parse = target_path / PARTIAL_PARSE_FILE
    if not parse.exists():
        return
    home_parse.parent.mkdir(parents=True, exist_ok=True)
    tmp = home_parse.with_name(f".tmp-{uuid.uuid4().hex}-{home_parse.name}")
    shutil.copyfile(parse, tmp)
    tmp.replace(home_parse)


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """`values` in os.environ while starting dbt (dagster-dbt passes dbt a copy of it)."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def build_feature_table_assets(
    project: DbtProject,
    tables: Mapping[str, FeatureTable],
    partitions_def: dg.DailyPartitionsDefinition,
    landing_dir: Path,
    offline_root: str,
    home_parse: Path,
) -> dg.AssetsDefinition:
    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        # The contract decides which models are feature tables (their meta), not a dbt tag.
        select=" ".join(sorted(tables)),
        name="feature_tables",
        partitions_def=partitions_def,
        dagster_dbt_translator=FeatureTableTranslator(tables, offline_root),
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def feature_tables(
        context: dg.AssetExecutionContext,
        dbt: DbtCliResource,
        offline_store: dg.ResourceParam[OfflineStore],
    ):
        """Builds the window's rows into this run's staging folder; the check validates and publishes."""
        window = context.partition_time_window
        staging = offline_store.run_staging_dir(context.run.run_id)
        staging.mkdir(parents=True, exist_ok=True)
        values = run_environment(
            window.start.date(),
            window.end.date(),
            landing_dir,
            offline_store.staged_path_template(context.run.run_id),
            parse_to_start_from(home_parse, Path(project.project_dir)),
            offline_store.spark_work_dir,
        )
        # dbt's target folder (~1.4 MB: manifest, run results, log) lives in the run's staging
        # folder, so a run that fails or is killed leaves none behind in the project: the
        # leftover sweep removes staging folders of runs no longer going.
        with environment(values):
            invocation = dbt.cli(["build"], context=context, target_path=staging / DBT_TARGET_DIR)
        yield from invocation.stream()
        # dbt re-parsed the sources' YAML for this home's landing folder: the next build
        # starts from this parse (1-2.5 s of a one-day dbt step's 8-10 s on a 2-core machine).
        keep_parse(invocation.target_path, home_parse)
        # Dagster has recorded what matters; the staged files stay for the publish checks.
        shutil.rmtree(invocation.target_path, ignore_errors=True)

    return feature_tables
