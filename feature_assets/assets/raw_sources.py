"""Raw landing sources (dbt sources) as Dagster asset specs, so lineage starts where data lands."""

from pathlib import Path

import dagster as dg

from feature_assets.kernel.contract import RawSource
from feature_assets.kernel.names import RAW_GROUP, raw_source_path


def raw_source_spec(source: RawSource, landing_dir: Path) -> dg.AssetSpec:
    folder = landing_dir / source.name
    return dg.AssetSpec(
        key=dg.AssetKey(raw_source_path(source.source_name, source.name)),
        description=source.description,
        group_name=RAW_GROUP,
        kinds={"parquet"},
        metadata={
            "landing_folder": dg.MetadataValue.path(str(folder)),
            "landing_partition": source.landing_partition,
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn(name=name, description=description)
                    for name, description in source.columns.items()
                ]
            ),
        },
    )
