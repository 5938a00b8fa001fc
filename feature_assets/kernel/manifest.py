"""The contract read from a dbt manifest, with every load-time rule applied once.

`load_contract(manifest)` is the one entry: feature tables (`config.meta.feature_table` on
a model), feature services (`meta.feature_service` on an exposure) and raw sources. A bad
definition fails here, naming the model, its YAML file and the field, so it fails when the
definitions load and not at 3 a.m.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from feature_assets.kernel.contract import (
    CHECK_NAMES,
    GRAIN_METRIC_WINDOW,
    LOGICAL_TYPES,
    NAME_PATTERN,
    NUMBER_CHECKS,
    OWNER_PATTERN,
    RESERVED_ATTRIBUTES,
    Contract,
    FeatureColumn,
    FeatureService,
    FeatureTable,
    OnDemandFeature,
    OnDemandInput,
    RawSource,
    parse_duration,
)
from feature_assets.kernel.errors import FeatureDefinitionError
from feature_assets.kernel.names import DEFAULT_PARTITION_COLUMN
from feature_assets.kernel.refresh_policy import check_refresh_policy


def load_contract(manifest: Mapping[str, Any]) -> Contract:
    tables = load_feature_tables(manifest)
    on_demand = load_on_demand_features(manifest, tables)
    return Contract(
        tables=tables,
        services=load_feature_services(manifest, tables, on_demand),
        sources=load_raw_sources(manifest),
        on_demand=on_demand,
    )


class _NodeErrors:
    """Builds errors that name the model (or source), its YAML file, and the field."""

    def __init__(self, node: Mapping[str, Any], kind: str = "feature table") -> None:
        self.name = node["name"]
        self.kind = kind
        path = node.get("patch_path") or node.get("original_file_path") or ""
        self.where = f" ({path.split('://')[-1]})" if path else ""

    def __call__(self, field_name: str, message: str) -> FeatureDefinitionError:
        return FeatureDefinitionError(
            f"{self.kind} {self.name!r}{self.where}, field {field_name!r}: {message}"
        )


def _logical_type(data_type: Any, *, error: _NodeErrors, column: str) -> str:
    field_name = f"columns.{column}.data_type"
    if not data_type:
        raise error(field_name, f"column {column!r} has no data_type")
    base = str(data_type).lower().split("(")[0].strip()
    if base not in LOGICAL_TYPES:
        raise error(
            field_name,
            f"column {column!r} has unsupported data_type {data_type!r}; "
            f"use one of {sorted(LOGICAL_TYPES)}",
        )
    return LOGICAL_TYPES[base]


def _duration(meta: Mapping[str, Any], field_name: str, error: _NodeErrors) -> timedelta | None:
    raw = meta.get(field_name)
    if raw in (None, ""):
        return None
    try:
        return parse_duration(raw)
    except ValueError as problem:
        raise error(field_name, str(problem)) from None


def _bool(
    values: Mapping[str, Any], name: str, default: bool, error: _NodeErrors, where: str
) -> bool:
    # YAML `online: "false"` is a string, and bool("false") is True: refuse, never guess.
    value = values.get(name, default)
    if not isinstance(value, bool):
        raise error(where, f"must be true or false, not {value!r}")
    return value


def _strings(value: Any, error: _NodeErrors, where: str) -> tuple[str, ...]:
    # `keys: user_id` would iterate as ('u', 's', ...): a list is required.
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise error(where, f"must be a list of names, not {value!r}")
    return tuple(value)


def _checks(column_meta: Mapping[str, Any], error: _NodeErrors, column: str) -> dict[str, Any]:
    where = f"columns.{column}.meta.checks"
    checks = column_meta.get("checks") or {}
    if not isinstance(checks, Mapping):
        raise error(where, f"must map check names to arguments, not {checks!r}")
    unknown = sorted(set(checks) - CHECK_NAMES)
    if unknown:
        raise error(where, f"unknown checks {unknown}; use {sorted(CHECK_NAMES)}")
    for name, argument in checks.items():
        if name in NUMBER_CHECKS and (
            isinstance(argument, bool) or not isinstance(argument, int | float)
        ):
            raise error(f"{where}.{name}", f"bound must be a number, not {argument!r}")
        if name == "isin" and not isinstance(argument, list):
            raise error(f"{where}.{name}", f"must be a list of allowed values, not {argument!r}")
        if name == "str_matches" and not isinstance(argument, str):
            raise error(f"{where}.{name}", f"must be a regular expression string, not {argument!r}")
    return dict(checks)


def feature_table_from_node(node: Mapping[str, Any]) -> FeatureTable:
    """Parse one dbt manifest node (a model with `config.meta.feature_table`)."""
    name = node["name"]
    error = _NodeErrors(node)
    meta = (node.get("config") or {}).get("meta", {}).get("feature_table")
    if meta is None:
        raise error("meta.feature_table", "the model declares no feature_table block")
    if not isinstance(meta, Mapping):
        raise error("meta.feature_table", f"must be a mapping of fields, not {meta!r}")
    if not NAME_PATTERN.match(name):
        raise error(
            "name",
            "must follow entity_grain_metric_window, for example 'user_daily_transactions_7d'",
        )

    def required(field_name: str) -> Any:
        if field_name not in meta or meta[field_name] in (None, "", []):
            raise error(field_name, "is required")
        return meta[field_name]

    def column_field(field_name: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise error(field_name, f"must be a column name, not {value!r}")
        return value

    columns: dict[str, Mapping[str, Any]] = dict(node.get("columns") or {})
    keys = _strings(required("keys"), error, "keys")
    timestamp = column_field("timestamp", required("timestamp"))
    created = meta.get("created_timestamp")
    if created is not None:
        created = column_field("created_timestamp", created)
    partition_column = column_field("partition", meta.get("partition", DEFAULT_PARTITION_COLUMN))
    for field_name, column in [("keys", k) for k in keys] + [
        ("timestamp", timestamp),
        ("created_timestamp", created),
        ("partition", partition_column),
    ]:
        if column is not None and column not in columns:
            raise error(field_name, f"column {column!r} is not a column of the model")
    entity = str(required("entity"))
    if not re.fullmatch(rf"{re.escape(entity)}_{GRAIN_METRIC_WINDOW}", name):
        raise error("entity", f"{entity!r} must be the first part of the table name")
    owner = str(required("owner"))
    if not OWNER_PATTERN.match(owner):
        raise error("owner", f"{owner!r} must be an email or 'team:<name>'")
    tags = _strings(meta.get("tags", []), error, "tags")

    structural = {*keys, timestamp, created, partition_column}
    features = []
    for column_name, column in columns.items():
        logical = _logical_type(column.get("data_type"), error=error, column=column_name)
        if column_name in structural:
            continue
        if column_name in RESERVED_ATTRIBUTES:
            raise error(f"columns.{column_name}", "feature uses a reserved online attribute name")
        column_meta = column.get("meta") or {}
        features.append(
            FeatureColumn(
                name=column_name,
                logical_type=logical,
                description=(column.get("description") or "").strip(),
                data_type=str(column["data_type"]),
                nullable=_bool(
                    column_meta, "nullable", True, error, f"columns.{column_name}.meta.nullable"
                ),
                checks=_checks(column_meta, error, column_name),
            )
        )
    if not features:
        raise error("columns", "no feature columns declared")

    key_types = {}
    for key in keys:
        logical = _logical_type(columns[key].get("data_type"), error=error, column=key)
        if logical not in ("int", "str"):
            raise error("keys", f"key {key!r} must be an integer or string, not {logical}")
        key_types[key] = logical

    table = FeatureTable(
        name=name,
        description=(node.get("description") or "").strip(),
        entity=entity,
        keys=keys,
        key_types=key_types,
        timestamp=timestamp,
        created_timestamp=created,
        partition_column=partition_column,
        ttl=_duration(meta, "ttl", error),
        freshness=_duration(meta, "freshness", error),
        owner=owner,
        online=_bool(meta, "online", True, error, "online"),
        tags=tags,
        features=tuple(features),
        source_tables=tuple(
            ".".join(dep.split(".")[-2:])
            for dep in (node.get("depends_on") or {}).get("nodes", [])
            if dep.startswith("source.")
        ),
    )
    check_refresh_policy(table)
    return table


def load_feature_tables(manifest: Mapping[str, Any]) -> dict[str, FeatureTable]:
    """Every model of the manifest that declares `meta.feature_table`, by name."""
    tables: dict[str, FeatureTable] = {}
    declared_in: dict[str, str] = {}
    for unique_id, node in manifest["nodes"].items():
        if node.get("resource_type") != "model":
            continue
        if "feature_table" not in (node.get("config") or {}).get("meta", {}):
            continue
        table = feature_table_from_node(node)
        if table.name in tables:
            raise FeatureDefinitionError(
                f"feature table {table.name!r}, field 'name': defined twice "
                f"({declared_in[table.name]} and {unique_id}); table names must be unique"
            )
        tables[table.name] = table
        declared_in[table.name] = unique_id
    return tables


def _exposure_meta(node: Mapping[str, Any]) -> dict[str, Any]:
    return {**(node.get("meta") or {}), **((node.get("config") or {}).get("meta") or {})}


def _exposure_where(kind: str, node: Mapping[str, Any]) -> str:
    path = node.get("original_file_path")
    return f"{kind} {node['name']!r}" + (f" ({path})" if path else "")


def load_feature_services(
    manifest: Mapping[str, Any],
    tables: Mapping[str, FeatureTable],
    on_demand: Mapping[str, OnDemandFeature] | None = None,
) -> dict[str, FeatureService]:
    """Every dbt exposure with `meta.feature_service`, its references checked against `tables`
    and the on-demand features."""
    on_demand = on_demand or {}
    services: dict[str, FeatureService] = {}
    for node in (manifest.get("exposures") or {}).values():
        spec = _exposure_meta(node).get("feature_service")
        if spec is None:
            continue
        name = node["name"]
        where = _exposure_where("feature service", node)
        references = tuple(spec.get("features") or ())
        if not references:
            raise FeatureDefinitionError(f"{where}, field 'features': lists no feature")
        for reference in references:
            owner, _, feature = str(reference).partition(":")
            if owner in on_demand:
                if feature not in on_demand[owner].feature_names:
                    raise FeatureDefinitionError(
                        f"{where}, field 'features': on-demand feature {owner!r} has no output "
                        f"{feature!r}"
                    )
                continue
            if owner not in tables:
                raise FeatureDefinitionError(
                    f"{where}, field 'features': {reference!r} names unknown feature table "
                    f"{owner!r}"
                )
            if feature not in tables[owner].feature_names:
                raise FeatureDefinitionError(
                    f"{where}, field 'features': feature table {owner!r} has no feature {feature!r}"
                )
        full_names = spec.get("full_feature_names", False)
        if not isinstance(full_names, bool):
            raise FeatureDefinitionError(
                f"{where}, field 'full_feature_names': must be true or false, not {full_names!r}"
            )
        if not full_names:
            _reject_name_collisions(where, references)
        colocated = spec.get("online_colocated", False)
        if not isinstance(colocated, bool):
            raise FeatureDefinitionError(
                f"{where}, field 'online_colocated': must be true or false, not {colocated!r}"
            )
        owner_email = (node.get("owner") or {}).get("email")
        service = FeatureService(
            name,
            references,
            (node.get("description") or "").strip(),
            owner_email,
            full_names,
            colocated,
            frozenset(r.partition(":")[0] for r in references if r.partition(":")[0] in on_demand),
        )
        if colocated:
            _check_colocated(where, service, tables)
        services[name] = service
    return services


def _check_colocated(
    where: str, service: FeatureService, tables: Mapping[str, FeatureTable]
) -> None:
    """One item per entity holds every stored feature: the tables must be online and share
    their keys (names and types)."""
    stored = [tables[name] for name in sorted(service.table_names) if name in tables]
    offline_only = [t.name for t in stored if not t.online]
    if offline_only:
        raise FeatureDefinitionError(
            f"{where}, field 'online_colocated': feature tables {offline_only} are offline only"
        )
    layouts = {(t.keys, tuple(t.key_types[k] for k in t.keys)) for t in stored}
    if len(layouts) > 1:
        raise FeatureDefinitionError(
            f"{where}, field 'online_colocated': its tables have different keys "
            f"({', '.join(f'{t.name}: {list(t.keys)}' for t in stored)}); one item per entity "
            "needs the same keys"
        )


ON_DEMAND_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
FUNCTION_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def load_on_demand_features(
    manifest: Mapping[str, Any], tables: Mapping[str, FeatureTable]
) -> dict[str, OnDemandFeature]:
    """Every dbt exposure with `meta.on_demand_feature`: its function path, typed inputs
    (stored features or request fields) and typed outputs. (Whether the function imports is
    checked where the code runs: `resources.on_demand.check_functions`.)"""
    found: dict[str, OnDemandFeature] = {}
    for node in (manifest.get("exposures") or {}).values():
        spec = _exposure_meta(node).get("on_demand_feature")
        if spec is None:
            continue
        where = _exposure_where("on-demand feature", node)

        def error(field_name: str, message: str, where: str = where) -> FeatureDefinitionError:
            return FeatureDefinitionError(f"{where}, field {field_name!r}: {message}")

        name = node["name"]
        if name in tables or not ON_DEMAND_NAME.match(name):
            raise error("name", "must be lower_snake_case and differ from every feature table")
        function = spec.get("function")
        if not isinstance(function, str) or not FUNCTION_PATH.match(function):
            raise error("function", f"must be 'package.module:function', not {function!r}")
        inputs = tuple(
            _on_demand_input(item, tables, error) for item in _named_list(spec, "inputs", error)
        )
        outputs = tuple(
            _on_demand_output(item, error) for item in _named_list(spec, "outputs", error)
        )
        if not outputs:
            raise error("outputs", "lists no output")
        found[name] = OnDemandFeature(
            name=name,
            function=function,
            inputs=inputs,
            outputs=outputs,
            description=(node.get("description") or "").strip(),
            owner=(node.get("owner") or {}).get("email"),
        )
    return found


def _named_list(spec: Mapping[str, Any], field_name: str, error: Any) -> list[Mapping[str, Any]]:
    items = spec.get(field_name) or []
    if not isinstance(items, list) or not all(
        isinstance(i, Mapping) and isinstance(i.get("name"), str) for i in items
    ):
        raise error(field_name, "must be a list of mappings, each with a 'name'")
    names = [item["name"] for item in items]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise error(field_name, f"{repeated} listed more than once")
    for item_name in names:
        if not item_name.isidentifier():
            raise error(f"{field_name}.{item_name}", "must be a Python identifier")
    return items


def _on_demand_input(
    item: Mapping[str, Any], tables: Mapping[str, FeatureTable], error: Any
) -> OnDemandInput:
    name, where = item["name"], f"inputs.{item['name']}"
    if ("feature" in item) == ("request" in item):
        raise error(where, "give either 'feature: table:feature' or 'request: <data_type>'")
    if "request" in item:
        base = str(item["request"]).lower().split("(")[0].strip()
        if base not in LOGICAL_TYPES:
            raise error(
                f"{where}.request",
                f"unsupported data_type {item['request']!r}; use one of {sorted(LOGICAL_TYPES)}",
            )
        return OnDemandInput(name, LOGICAL_TYPES[base])
    reference = str(item["feature"])
    table_name, _, feature = reference.partition(":")
    if table_name not in tables:
        raise error(f"{where}.feature", f"{reference!r} names unknown feature table {table_name!r}")
    if feature not in tables[table_name].feature_names:
        raise error(f"{where}.feature", f"feature table {table_name!r} has no feature {feature!r}")
    return OnDemandInput(name, tables[table_name].feature(feature).logical_type, reference)


def _on_demand_output(item: Mapping[str, Any], error: Any) -> FeatureColumn:
    name = item["name"]
    data_type = item.get("data_type")
    base = str(data_type or "").lower().split("(")[0].strip()
    if base not in LOGICAL_TYPES or LOGICAL_TYPES[base] in ("timestamp", "date"):
        allowed = sorted(k for k, v in LOGICAL_TYPES.items() if v not in ("timestamp", "date"))
        raise error(
            f"outputs.{name}.data_type",
            f"unsupported data_type {data_type!r}; use one of {allowed}",
        )
    return FeatureColumn(
        name=name,
        logical_type=LOGICAL_TYPES[base],
        description=str(item.get("description") or "").strip(),
        data_type=str(data_type),
    )


def _reject_name_collisions(where: str, references: tuple[str, ...]) -> None:
    tables_by_feature: dict[str, set[str]] = {}
    for reference in references:
        table_name, _, feature = reference.partition(":")
        tables_by_feature.setdefault(feature, set()).add(table_name)
    for feature, table_names in sorted(tables_by_feature.items()):
        if len(table_names) > 1:
            raise FeatureDefinitionError(
                f"{where}, field 'features': feature {feature!r} comes from "
                f"{sorted(table_names)}; rename one or set full_feature_names: true"
            )


def load_raw_sources(manifest: Mapping[str, Any]) -> dict[str, RawSource]:
    """Every dbt source of the manifest, by `source_name.name`, with its gate's rules."""
    sources = {}
    for node in (manifest.get("sources") or {}).values():
        source = raw_source_from_node(node)
        sources[source.key] = source
    return sources


def raw_source_from_node(node: Mapping[str, Any]) -> RawSource:
    error = _NodeErrors({**node, "name": f"{node['source_name']}.{node['name']}"}, "raw source")
    meta = node.get("meta") or {}
    columns = []
    for name, column in (node.get("columns") or {}).items():
        column_meta = column.get("meta") or {}
        data_type = column.get("data_type")
        columns.append(
            FeatureColumn(
                name=name,
                # Undeclared types are not checked (a source may describe columns loosely).
                logical_type=_logical_type(data_type, error=error, column=name)
                if data_type
                else "",
                description=(column.get("description") or "").strip(),
                data_type=str(data_type or ""),
                nullable=_bool(
                    column_meta, "nullable", True, error, f"columns.{name}.meta.nullable"
                ),
                checks=_checks(column_meta, error, name),
            )
        )
    declared = {column.name for column in columns}
    unique_key = _strings(meta.get("unique_key", []), error, "unique_key")
    timestamp = meta.get("timestamp")
    landing_partition = meta.get("landing_partition")
    for field_name, column in [("unique_key", k) for k in unique_key] + [
        ("timestamp", timestamp),
        ("landing_partition", landing_partition),
    ]:
        if column is not None and column not in declared:
            raise error(field_name, f"column {column!r} is not a declared column of the source")
    if timestamp is not None and landing_partition is None:
        raise error("timestamp", "only a daily source (with landing_partition) has a landing day")
    return RawSource(
        source_name=node["source_name"],
        name=node["name"],
        description=(node.get("description") or "").strip(),
        columns=tuple(columns),
        landing_partition=landing_partition,
        unique_key=unique_key,
        timestamp=timestamp,
    )
