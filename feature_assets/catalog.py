"""The browsable catalog: dbt docs, with each feature table's contract made visible.

dbt docs reads manifest.json and catalog.json. Ours builds no tables in a warehouse
(models are Parquet files written from an in-memory DuckDB), so catalog.json comes back
empty, and the docs site shows a `meta` as one unreadable nested value. After
`dbt docs generate` we therefore write, from the parsed contract: flat meta rows (owner,
ttl, keys, ...), a "Feature table" section in each description, each column's checks,
catalog entries with the owner and every column's type, readable feature services, and one
exposure per online table so the lineage graph shows where features are served.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from feature_assets.kernel.contract import (
    EXPIRY_ATTRIBUTE,
    FeatureColumn,
    FeatureService,
    FeatureTable,
    OnDemandFeature,
    format_duration,
    services_reading,
)
from resources.dbt_manifest import ensure_manifest, run_dbt
from resources.online_items import COMPOSITE_KEY_ATTRIBUTE, COMPOSITE_KEY_SEPARATOR, key_schema

CONTRACT_HEADING = "#### Feature table"
# How each column check reads; any other check reads as `name(argument)`.
CHECK_FORMATS: dict[str, Callable[[Any], str]] = {
    "ge": lambda bound: f"≥ {bound}",
    "gt": lambda bound: f"> {bound}",
    "le": lambda bound: f"≤ {bound}",
    "lt": lambda bound: f"< {bound}",
    "isin": lambda values: "one of " + ", ".join(str(v) for v in values),
    "str_matches": lambda pattern: f"matches `{pattern}`",
}
# The name of a table's DynamoDB table: the online store's own rule (`OnlineStore.table_name`).
OnlineTableName = Callable[[FeatureTable], str]


def generate_catalog(
    project_dir: Path,
    target_dir: Path,
    tables: Mapping[str, FeatureTable],
    services: Mapping[str, FeatureService],
    online_table_name: OnlineTableName,
    on_demand: Mapping[str, OnDemandFeature] | None = None,
) -> Path:
    """Run `dbt docs generate` into `target_dir` and annotate it; returns `target_dir`."""
    ensure_manifest(project_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    run_dbt(project_dir, ["docs", "generate", "--quiet"], target_path=target_dir)
    annotate_catalog(target_dir, tables, services, online_table_name, on_demand)
    return target_dir


def annotate_catalog(
    target_dir: Path,
    tables: Mapping[str, FeatureTable],
    services: Mapping[str, FeatureService],
    online_table_name: OnlineTableName,
    on_demand: Mapping[str, OnDemandFeature] | None = None,
) -> None:
    on_demand = on_demand or {}
    manifest = json.loads((target_dir / "manifest.json").read_text())
    catalog = json.loads((target_dir / "catalog.json").read_text())
    online_nodes: list[dict[str, Any]] = []
    for unique_id, node in manifest["nodes"].items():
        table = tables.get(node["name"]) if node.get("resource_type") == "model" else None
        if table is None:
            continue
        serving = list(services_reading(services, table.name))
        node["meta"] = contract_rows(table, serving)
        node["description"] = f"{table.description}\n\n{contract_markdown(table, serving)}"
        for name, checks in column_checks(table).items():
            if name in node["columns"]:
                column = node["columns"][name]
                column["description"] = f"{column.get('description') or ''}\n\nChecks: {checks}"
        catalog["nodes"][unique_id] = catalog_entry(unique_id, node, table)
        if table.online:
            online_nodes.append(online_exposure(node, table, online_table_name(table)))
    for node in manifest["exposures"].values():
        service = services.get(node["name"])
        if service is not None:
            node["meta"] = service_rows(service)
            markdown = service_markdown(service, tables, on_demand)
            node["description"] = f"{service.description}\n\n{markdown}"
        feature = on_demand.get(node["name"])
        if feature is not None:
            node["meta"] = on_demand_rows(feature)
            node["description"] = f"{feature.description}\n\n{on_demand_markdown(feature)}"
    for node in online_nodes:
        add_exposure(manifest, node)
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
        "| feature | type | checks | description |",
        "|---|---|---|---|",
        *(
            f"| `{f.name}` | {f.type_name} | {check_text(f)} | {f.description} |"
            for f in table.features
        ),
    ]
    if services:
        lines += ["", f"Served by: {', '.join(services)}."]
    return "\n".join(lines)


def check_text(feature: FeatureColumn) -> str:
    """The checks pandera applies to a column, as a person would write them: '≥ 0; not null'."""
    bounds = ", ".join(
        CHECK_FORMATS[name](argument) if name in CHECK_FORMATS else f"{name}({argument!r})"
        for name, argument in feature.checks.items()
    )
    parts = [part for part in (bounds, "" if feature.nullable else "not null") if part]
    return "; ".join(parts) or "none"


def column_checks(table: FeatureTable) -> dict[str, str]:
    """Every column's checks; keys and timestamps are never null (the partition schema)."""
    structural = [*table.keys, table.timestamp, table.partition_column, table.created_timestamp]
    checks = {name: "not null" for name in structural if name}
    return checks | {feature.name: check_text(feature) for feature in table.features}


def features_by_table(service: FeatureService) -> dict[str, list[str]]:
    """The service's `table:feature` references grouped per table, in the order listed."""
    grouped: dict[str, list[str]] = {}
    for reference in service.features:
        table_name, _, feature = reference.partition(":")
        grouped.setdefault(table_name, []).append(feature)
    return grouped


def service_rows(service: FeatureService) -> dict[str, str]:
    """Flat rows in place of the nested `feature_service` meta, which dbt docs shows as JSON."""
    grouped = features_by_table(service)
    return {
        "tables": ", ".join(grouped),
        "features": "; ".join(f"{t}: {', '.join(fs)}" for t, fs in grouped.items()),
        "column names": "table__feature" if service.full_feature_names else "feature",
    }


def service_markdown(
    service: FeatureService,
    tables: Mapping[str, FeatureTable],
    on_demand: Mapping[str, OnDemandFeature] | None = None,
) -> str:
    owners: Mapping[str, FeatureTable | OnDemandFeature] = {**tables, **(on_demand or {})}
    lines = ["#### Features", "", "| table | feature | type | description |", "|---|---|---|---|"]
    for table_name, features in features_by_table(service).items():
        for feature in map(owners[table_name].feature, features):
            lines.append(
                f"| `{table_name}` | `{feature.name}` | {feature.type_name} "
                f"| {feature.description} |"
            )
    if service.on_demand_names:
        lines += [
            "",
            f"On-demand (computed when read): {', '.join(sorted(service.on_demand_names))}.",
        ]
    if service.online_colocated:
        lines += ["", "Online: one item per entity holds every stored feature (one round trip)."]
    return "\n".join(lines)


def on_demand_rows(feature: OnDemandFeature) -> dict[str, str]:
    """Flat rows in place of the nested `on_demand_feature` meta."""
    return {
        "function": feature.function,
        "stored inputs": ", ".join(str(i.feature) for i in feature.stored_inputs) or "none",
        "request fields": ", ".join(f"{i.name} ({i.logical_type})" for i in feature.request_inputs)
        or "none",
        "outputs": ", ".join(f"{o.name} ({o.type_name})" for o in feature.outputs),
    }


def on_demand_markdown(feature: OnDemandFeature) -> str:
    return "\n".join(
        [
            f"#### On-demand feature: computed when read by `{feature.function}`",
            "",
            "| input | type | from |",
            "|---|---|---|",
            *(
                f"| `{i.name}` | {i.logical_type} | {f'`{i.feature}`' if i.feature else 'request field'} |"
                for i in feature.inputs
            ),
            "",
            "| output | type | description |",
            "|---|---|---|",
            *(f"| `{o.name}` | {o.type_name} | {o.description} |" for o in feature.outputs),
        ]
    )


def key_layout(table: FeatureTable) -> str:
    """The item key in words, from the online store's own layout rule."""
    schema, definitions = key_schema(table)
    types = {d["AttributeName"]: d["AttributeType"] for d in definitions}
    words = {"HASH": "hash key", "RANGE": "range key"}
    layout = ", ".join(
        f"{words[k['KeyType']]} `{k['AttributeName']}` ({types[k['AttributeName']]})"
        for k in schema
    )
    if schema[0]["AttributeName"] == COMPOSITE_KEY_ATTRIBUTE:
        layout += f" = `{COMPOSITE_KEY_SEPARATOR.join(table.keys)}`"
    return layout


def online_exposure(
    model: Mapping[str, Any], table: FeatureTable, dynamodb_table: str
) -> dict[str, Any]:
    """An exposure node for the online table, with every key dbt writes for one, so dbt
    docs lists it and draws it downstream of its model."""
    name = f"online_{table.name}"
    package = model["package_name"]
    # The YAML that declares `online: true`, not the SQL.
    yaml_path = (model.get("patch_path") or "").partition("://")[2] or model["original_file_path"]
    layout = key_layout(table)
    meta = {
        "DynamoDB table": dynamodb_table,
        "key": layout,
        "ttl": format_duration(table.ttl) or "none",
        "features": ", ".join(table.feature_names),
    }
    return {
        "name": name,
        "resource_type": "exposure",
        "package_name": package,
        "path": yaml_path.removeprefix("models/"),
        "original_file_path": yaml_path,
        "unique_id": f"exposure.{package}.{name}",
        "fqn": [package, "online", name],
        "type": "application",
        "owner": {"email": table.owner if "@" in table.owner else None, "name": table.owner},
        "description": (
            f"DynamoDB table `{dynamodb_table}`: the newest value of each {table.entity}, "
            f"written by the online sync after each published partition.\n\n"
            f"One item per entity; {layout}. Every feature is a native attribute "
            f"({', '.join(f'`{f}`' for f in table.feature_names)}), plus the event and created "
            f"timestamps and `{EXPIRY_ATTRIBUTE}`, the DynamoDB TTL attribute."
        ),
        "label": f"Online: {table.name}",
        "maturity": None,
        "meta": meta,
        "tags": ["online"],
        "config": {"enabled": True, "tags": ["online"], "meta": meta},
        "unrendered_config": {},
        "url": None,
        "depends_on": {"macros": [], "nodes": [model["unique_id"]]},
        "refs": [{"name": table.name, "package": None, "version": None}],
        "sources": [],
        "metrics": [],
        "created_at": model.get("created_at"),
    }


def add_exposure(manifest: dict[str, Any], node: dict[str, Any]) -> None:
    """Add an exposure and its edges: dbt docs draws lineage from parent_map and child_map."""
    unique_id = node["unique_id"]
    manifest["exposures"][unique_id] = node
    manifest["parent_map"][unique_id] = list(node["depends_on"]["nodes"])
    manifest["child_map"][unique_id] = []
    for parent in node["depends_on"]["nodes"]:
        manifest["child_map"].setdefault(parent, []).append(unique_id)


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
