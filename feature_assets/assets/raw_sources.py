"""Raw landing sources (dbt sources) as Dagster asset specs, so lineage starts where data lands."""

from pathlib import Path

import dagster as dg

from feature_assets.kernel.contract import RawSource
from feature_assets.kernel.names import RAW_GROUP, raw_source_path


def raw_source_key(source: RawSource) -> dg.AssetKey:
    return dg.AssetKey(raw_source_path(source.source_name, source.name))


def raw_source_spec(
    source: RawSource, landing_dir: Path, partitions_def: dg.DailyPartitionsDefinition
) -> dg.AssetSpec:
    """A daily source is partitioned by landing day, so its gate records a verdict per day."""
    folder = landing_dir / source.name
    return dg.AssetSpec(
        key=raw_source_key(source),
        partitions_def=partitions_def if source.landing_partition else None,
        description=source.description,
        group_name=RAW_GROUP,
        kinds={"parquet"},
        metadata={
            "landing_folder": dg.MetadataValue.path(str(folder)),
            "landing_partition": source.landing_partition,
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn(
                        name=column.name, type=column.type_name, description=column.description
                    )
                    for column in source.columns
                ]
            ),
        },
    )
