"""The browsable catalog: dbt docs, with each feature table's contract made visible.

dbt docs reads manifest.json and catalog.json. Ours builds no tables in a warehouse
(models are Parquet files written from an in-memory DuckDB), so catalog.json comes back
empty, and the docs site shows a model's `meta` as one unreadable nested value. After
`dbt docs generate` we therefore write, from the parsed contract: flat meta rows (owner,
ttl, keys, ...), a "Feature table" section in each description, and catalog entries with
the owner and every column's type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from feature_assets.kernel.contract import (
    FeatureService,
    FeatureTable,
    format_duration,
    services_reading,
)
from resources.dbt_manifest import ensure_manifest, run_dbt

CONTRACT_HEADING = "#### Feature table"


def generate_catalog(
    project_dir: Path,
    target_dir: Path,
    tables: Mapping[str, FeatureTable],
    services: Mapping[str, FeatureService],
) -> Path:
    """Run `dbt docs generate` into `target_dir` and annotate it; returns `target_dir`."""
    ensure_manifest(project_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    run_dbt(project_dir, ["docs", "generate", "--quiet"], target_path=target_dir)
    annotate_catalog(target_dir, tables, services)
    return target_dir


def annotate_catalog(
    target_dir: Path,
    tables: Mapping[str, FeatureTable],
    services: Mapping[str, FeatureService],
) -> None:
    manifest = json.loads((target_dir / "manifest.json").read_text())
    catalog = json.loads((target_dir / "catalog.json").read_text())
    for unique_id, node in manifest["nodes"].items():
        table = tables.get(node["name"]) if node.get("resource_type") == "model" else None
        if table is None:
            continue
        serving = list(services_reading(services, table.name))
        node["meta"] = contract_rows(table, serving)
        node["description"] = f"{table.description}\n\n{contract_markdown(table, serving)}"
        catalog["nodes"][unique_id] = catalog_entry(unique_id, node, table)
    (target_dir / "manifest.json").write_text(json.dumps(manifest))
    (target_dir / "catalog.json").write_text(json.dumps(catalog))


def contract_rows(table: FeatureTable, services: list[str]) -> dict[str, str]:
    """Flat key/value pairs: the docs site shows each as one row of the model's details."""
    return {
        "owner": table.owner,
        "entity": table.entity,
        "keys": ", ".join(table.keys),
        "ttl": format_duration(table.ttl) or "none",
        "freshness": format_duration(table.freshness) or "none",
        "online": "yes" if table.online else "no (training only)",
        "event timestamp": table.timestamp,
        "created timestamp": table.created_timestamp or "none",
        "tags": ", ".join(table.tags),
        "features": ", ".join(table.feature_names),
        "feature services": ", ".join(services) or "none",
    }


def contract_markdown(table: FeatureTable, services: list[str]) -> str:
    lines = [
        CONTRACT_HEADING,
        "",
        "| owner | entity | keys | ttl | freshness | online |",
        "|---|---|---|---|---|---|",
        f"| {table.owner} | {table.entity} | {', '.join(table.keys)} "
        f"| {format_duration(table.ttl) or 'none'} | {format_duration(table.freshness) or 'none'} "
        f"| {'yes' if table.online else 'no'} |",
        "",
        "| feature | type | description |",
        "|---|---|---|",
        *(f"| `{f.name}` | {f.type_name} | {f.description} |" for f in table.features),
    ]
    if services:
        lines += ["", f"Served by: {', '.join(services)}."]
    return "\n".join(lines)


def catalog_entry(unique_id: str, node: Mapping[str, Any], table: FeatureTable) -> dict[str, Any]:
    columns = node.get("columns") or {}
    return {
        "unique_id": unique_id,
        "metadata": {
            "type": "external Parquet (daily partitions)",
            "schema": node.get("schema"),
            "name": table.name,
            "database": node.get("database"),
            "comment": None,
            "owner": table.owner,
        },
        "columns": {
            name: {
                "type": column.get("data_type"),
                "index": index,
                "name": name,
                "comment": column.get("description"),
            }
            for index, (name, column) in enumerate(columns.items(), start=1)
        },
        "stats": {
            "has_stats": {
                "id": "has_stats",
                "label": "Has Stats?",
                "value": False,
                "include": False,
                "description": "Indicates whether there are statistics for this table",
            }
        },
    }
