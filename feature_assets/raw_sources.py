"""Raw landing sources (dbt sources) as Dagster assets, so lineage starts where data lands."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

RAW_GROUP = "raw_sources"


@dataclass(frozen=True)
class RawSource:
    source_name: str
    name: str
    description: str
    columns: Mapping[str, str]
    # Hive partition column of a daily landing folder; None for a dimension replaced whole.
    landing_partition: str | None

    @property
    def asset_key(self) -> dg.AssetKey:
        # dagster-dbt's default key for a source, so feature tables depend on these specs.
        return dg.AssetKey([self.source_name, self.name])


def load_raw_sources(manifest: Mapping[str, Any]) -> dict[str, RawSource]:
    """Every dbt source of the manifest, by `source_name.name`."""
    sources = {}
    for node in (manifest.get("sources") or {}).values():
        source = RawSource(
            source_name=node["source_name"],
            name=node["name"],
            description=(node.get("description") or "").strip(),
            columns={
                name: (column.get("description") or "").strip()
                for name, column in (node.get("columns") or {}).items()
            },
            landing_partition=(node.get("meta") or {}).get("landing_partition"),
        )
        sources[f"{source.source_name}.{source.name}"] = source
    return sources


def raw_source_spec(source: RawSource, landing_dir: Path) -> dg.AssetSpec:
    folder = landing_dir / source.name
    return dg.AssetSpec(
        key=source.asset_key,
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
