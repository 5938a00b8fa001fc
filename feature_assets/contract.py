"""The feature-table contract: dbt model meta parsed once into a typed `FeatureTable`.

Everything else (asset specs, pandera schema, online table, joins) takes a `FeatureTable`;
nothing re-reads YAML or re-parses "30d".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

# entity_grain_metric_window: the part after the entity, e.g. "daily_transactions_7d".
GRAIN_METRIC_WINDOW = r"(?P<grain>hourly|daily|weekly|monthly)_[a-z][a-z0-9_]*_(?P<window>\d+[hdw])"
NAME_PATTERN = re.compile(
    rf"^(?P<entity>[a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)*?)_{GRAIN_METRIC_WINDOW}$"
)
DURATION_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
OWNER_PATTERN = re.compile(r"^(team:[A-Za-z0-9_.-]+|[^@\s]+@[^@\s]+\.[^@\s]+)$")
# Column checks the pandera schema knows how to build (validation.CHECKS).
CHECK_NAMES = frozenset({"ge", "gt", "le", "lt", "isin", "str_matches"})

# Attributes every online item carries besides its keys and features.
EVENT_TIMESTAMP_ATTRIBUTE = "event_timestamp"
CREATED_TIMESTAMP_ATTRIBUTE = "created_timestamp"
EXPIRY_ATTRIBUTE = "expires_at"
RESERVED_ATTRIBUTES = frozenset(
    {EVENT_TIMESTAMP_ATTRIBUTE, CREATED_TIMESTAMP_ATTRIBUTE, EXPIRY_ATTRIBUTE}
)

# dbt data_type (lower-cased, without precision) -> logical type used by every consumer.
LOGICAL_TYPES = {
    "bigint": "int",
    "integer": "int",
    "int": "int",
    "smallint": "int",
    "double": "float",
    "float": "float",
    "real": "float",
    "decimal": "float",
    "numeric": "float",
    "varchar": "str",
    "string": "str",
    "text": "str",
    "boolean": "bool",
    "bool": "bool",
    "timestamp": "timestamp",
    "date": "date",
}


class FeatureDefinitionError(ValueError):
    """A feature table's definition (dbt model + YAML meta) is invalid."""


@dataclass(frozen=True)
class FeatureColumn:
    name: str
    logical_type: str
    description: str = ""
    data_type: str = ""  # as written in the YAML, e.g. "bigint"

    @property
    def type_name(self) -> str:
        """The YAML's data_type, or the logical type for a table defined in code."""
        return self.data_type or self.logical_type

    nullable: bool = True
    checks: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FeatureTable:
    name: str
    description: str
    entity: str
    keys: tuple[str, ...]
    key_types: Mapping[str, str]
    timestamp: str
    created_timestamp: str | None
    partition_column: str
    ttl: timedelta | None
    freshness: timedelta | None
    owner: str
    online: bool
    tags: tuple[str, ...]
    features: tuple[FeatureColumn, ...]
    source_tables: tuple[str, ...] = ()

    @property
    def window(self) -> timedelta:
        """The window in the name: a row for feature date f reads source days [f - window, f]."""
        match = NAME_PATTERN.match(self.name)
        if match is None:
            raise FeatureDefinitionError(f"feature table {self.name!r}: name has no window")
        return parse_duration(match.group("window"))

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(feature.name for feature in self.features)

    def feature(self, name: str) -> FeatureColumn:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(f"feature table {self.name!r} has no feature {name!r}")


def parse_duration(raw: str) -> timedelta:
    """'30d', '12h', '2w' -> timedelta; ValueError for anything else, zero included."""
    match = DURATION_PATTERN.match(str(raw))
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{raw!r} is not a positive duration like '30d' or '12h'")
    amount, unit = match.groups()
    return timedelta(**{DURATION_UNITS[unit]: int(amount)})


def format_duration(value: timedelta | None) -> str | None:
    """The shortest contract spelling of a duration: 30 days -> '30d', 36 hours -> '36h'."""
    if value is None:
        return None
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class _NodeErrors:
    """Builds errors that name the model, the YAML file it is declared in, and the field."""

    def __init__(self, node: Mapping[str, Any]) -> None:
        self.name = node["name"]
        path = node.get("patch_path") or node.get("original_file_path") or ""
        self.where = f" ({path.split('://')[-1]})" if path else ""

    def __call__(self, field_name: str, message: str) -> FeatureDefinitionError:
        return FeatureDefinitionError(
            f"feature table {self.name!r}{self.where}, field {field_name!r}: {message}"
        )


def _logical_type(data_type: str | None, *, error: _NodeErrors, column: str) -> str:
    field_name = f"columns.{column}.data_type"
    if not data_type:
        raise error(field_name, f"column {column!r} has no data_type")
    base = data_type.lower().split("(")[0].strip()
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


def feature_table_from_node(node: Mapping[str, Any]) -> FeatureTable:
    """Parse one dbt manifest node (a model with `config.meta.feature_table`)."""
    name = node["name"]
    error = _NodeErrors(node)
    meta = (node.get("config") or {}).get("meta", {}).get("feature_table")
    if meta is None:
        raise error("meta.feature_table", "the model declares no feature_table block")
    if not NAME_PATTERN.match(name):
        raise error(
            "name",
            "must follow entity_grain_metric_window, for example 'user_daily_transactions_7d'",
        )

    def required(field_name: str) -> Any:
        if field_name not in meta or meta[field_name] in (None, "", []):
            raise error(field_name, "is required")
        return meta[field_name]

    columns: dict[str, Mapping[str, Any]] = dict(node.get("columns") or {})
    keys = tuple(required("keys"))
    timestamp = required("timestamp")
    created = meta.get("created_timestamp")
    partition_column = meta.get("partition", "feature_date")
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

    structural = {*keys, timestamp, created, partition_column}
    features = []
    for column_name, column in columns.items():
        logical = _logical_type(column.get("data_type"), error=error, column=column_name)
        if column_name in structural:
            continue
        if column_name in RESERVED_ATTRIBUTES:
            raise error(f"columns.{column_name}", "feature uses a reserved online attribute name")
        column_meta = column.get("meta") or {}
        checks = dict(column_meta.get("checks") or {})
        unknown = sorted(set(checks) - CHECK_NAMES)
        if unknown:
            raise error(
                f"columns.{column_name}.meta.checks",
                f"unknown checks {unknown}; use {sorted(CHECK_NAMES)}",
            )
        features.append(
            FeatureColumn(
                name=column_name,
                logical_type=logical,
                description=(column.get("description") or "").strip(),
                data_type=str(column["data_type"]),
                nullable=bool(column_meta.get("nullable", True)),
                checks=checks,
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

    return FeatureTable(
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
        online=bool(meta.get("online", True)),
        tags=tuple(str(tag) for tag in meta.get("tags", [])),
        features=tuple(features),
        source_tables=tuple(
            ".".join(dep.split(".")[-2:])
            for dep in (node.get("depends_on") or {}).get("nodes", [])
            if dep.startswith("source.")
        ),
    )


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


@dataclass(frozen=True)
class FeatureService:
    """A named list of `table:feature` references a model consumes (a dbt exposure)."""

    name: str
    features: tuple[str, ...]
    description: str = ""
    owner: str | None = None
    # Output columns are named table__feature; required when two tables share a feature name.
    full_feature_names: bool = False

    @property
    def table_names(self) -> frozenset[str]:
        return frozenset(reference.partition(":")[0] for reference in self.features)


def load_feature_services(
    manifest: Mapping[str, Any], tables: Mapping[str, FeatureTable]
) -> dict[str, FeatureService]:
    """Every dbt exposure with `meta.feature_service`, its references checked against `tables`."""
    services: dict[str, FeatureService] = {}
    for node in (manifest.get("exposures") or {}).values():
        meta = {**(node.get("meta") or {}), **((node.get("config") or {}).get("meta") or {})}
        spec = meta.get("feature_service")
        if spec is None:
            continue
        name = node["name"]
        references = tuple(spec.get("features") or ())
        if not references:
            raise FeatureDefinitionError(f"feature service {name!r}: 'features' lists no feature")
        for reference in references:
            table_name, _, feature = str(reference).partition(":")
            if table_name not in tables:
                raise FeatureDefinitionError(
                    f"feature service {name!r}: {reference!r} names unknown feature table {table_name!r}"
                )
            if feature not in tables[table_name].feature_names:
                raise FeatureDefinitionError(
                    f"feature service {name!r}: feature table {table_name!r} has no feature {feature!r}"
                )
        full_names = bool(spec.get("full_feature_names", False))
        if not full_names:
            _reject_name_collisions(name, references)
        owner = (node.get("owner") or {}).get("email")
        services[name] = FeatureService(
            name, references, (node.get("description") or "").strip(), owner, full_names
        )
    return services


def _reject_name_collisions(service: str, references: tuple[str, ...]) -> None:
    tables_by_feature: dict[str, set[str]] = {}
    for reference in references:
        table_name, _, feature = reference.partition(":")
        tables_by_feature.setdefault(feature, set()).add(table_name)
    for feature, table_names in sorted(tables_by_feature.items()):
        if len(table_names) > 1:
            raise FeatureDefinitionError(
                f"feature service {service!r}, field 'features': feature {feature!r} comes from "
                f"{sorted(table_names)}; rename one or set full_feature_names: true"
            )
