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

NAME_PATTERN = re.compile(
    r"^(?P<entity>[a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)*?)_(?P<grain>hourly|daily|weekly|monthly)_[a-z][a-z0-9_]*_(?P<window>\d+[hdwm])$"
)
DURATION_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
OWNER_PATTERN = re.compile(r"^(team:[A-Za-z0-9_.-]+|[^@\s]+@[^@\s]+\.[^@\s]+)$")

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
    def feature_names(self) -> tuple[str, ...]:
        return tuple(feature.name for feature in self.features)

    def feature(self, name: str) -> FeatureColumn:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(f"feature table {self.name!r} has no feature {name!r}")


def parse_duration(raw: str, *, table: str, field_name: str) -> timedelta:
    match = DURATION_PATTERN.match(str(raw))
    if not match:
        raise FeatureDefinitionError(
            f"feature table {table!r}: {field_name} {raw!r} is not a duration like '30d' or '12h'"
        )
    amount, unit = match.groups()
    return timedelta(**{DURATION_UNITS[unit]: int(amount)})


def _logical_type(data_type: str | None, *, table: str, column: str) -> str:
    if not data_type:
        raise FeatureDefinitionError(f"feature table {table!r}: column {column!r} has no data_type")
    base = data_type.lower().split("(")[0].strip()
    if base not in LOGICAL_TYPES:
        raise FeatureDefinitionError(
            f"feature table {table!r}: column {column!r} has unsupported data_type {data_type!r}; "
            f"use one of {sorted(LOGICAL_TYPES)}"
        )
    return LOGICAL_TYPES[base]


def feature_table_from_node(node: Mapping[str, Any]) -> FeatureTable:
    """Parse one dbt manifest node (a model with `config.meta.feature_table`)."""
    name = node["name"]
    meta = (node.get("config") or {}).get("meta", {}).get("feature_table")
    if meta is None:
        raise FeatureDefinitionError(f"model {name!r}: no config.meta.feature_table block")
    if not NAME_PATTERN.match(name):
        raise FeatureDefinitionError(
            f"feature table {name!r}: name must follow entity_grain_metric_window, "
            "for example 'user_daily_transactions_7d'"
        )

    def required(field_name: str) -> Any:
        if field_name not in meta or meta[field_name] in (None, "", []):
            raise FeatureDefinitionError(
                f"feature table {name!r}: meta field {field_name!r} is required"
            )
        return meta[field_name]

    columns: dict[str, Mapping[str, Any]] = dict(node.get("columns") or {})
    keys = tuple(required("keys"))
    timestamp = required("timestamp")
    created = meta.get("created_timestamp")
    partition_column = meta.get("partition", "feature_date")
    for role, column in [("key", k) for k in keys] + [
        ("timestamp", timestamp),
        ("created_timestamp", created),
        ("partition", partition_column),
    ]:
        if column is not None and column not in columns:
            raise FeatureDefinitionError(
                f"feature table {name!r}: {role} column {column!r} is not a column of the model"
            )
    owner = str(required("owner"))
    if not OWNER_PATTERN.match(owner):
        raise FeatureDefinitionError(
            f"feature table {name!r}: owner {owner!r} must be an email or 'team:<name>'"
        )

    structural = {*keys, timestamp, created, partition_column}
    features = []
    for column_name, column in columns.items():
        logical = _logical_type(column.get("data_type"), table=name, column=column_name)
        if column_name in structural:
            continue
        if column_name in RESERVED_ATTRIBUTES:
            raise FeatureDefinitionError(
                f"feature table {name!r}: feature {column_name!r} uses a reserved online attribute name"
            )
        column_meta = column.get("meta") or {}
        features.append(
            FeatureColumn(
                name=column_name,
                logical_type=logical,
                description=column.get("description", ""),
                nullable=bool(column_meta.get("nullable", True)),
                checks=dict(column_meta.get("checks") or {}),
            )
        )
    if not features:
        raise FeatureDefinitionError(f"feature table {name!r}: no feature columns declared")

    key_types = {}
    for key in keys:
        logical = _logical_type(columns[key].get("data_type"), table=name, column=key)
        if logical not in ("int", "str"):
            raise FeatureDefinitionError(
                f"feature table {name!r}: key {key!r} must be an integer or string, not {logical}"
            )
        key_types[key] = logical

    ttl = meta.get("ttl")
    freshness = meta.get("freshness")
    return FeatureTable(
        name=name,
        description=node.get("description", ""),
        entity=str(required("entity")),
        keys=keys,
        key_types=key_types,
        timestamp=timestamp,
        created_timestamp=created,
        partition_column=partition_column,
        ttl=parse_duration(ttl, table=name, field_name="ttl") if ttl else None,
        freshness=parse_duration(freshness, table=name, field_name="freshness")
        if freshness
        else None,
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
    for node in manifest["nodes"].values():
        if node.get("resource_type") != "model":
            continue
        if "feature_table" not in (node.get("config") or {}).get("meta", {}):
            continue
        table = feature_table_from_node(node)
        if table.name in tables:
            raise FeatureDefinitionError(f"feature table {table.name!r} is defined twice")
        tables[table.name] = table
    return tables


@dataclass(frozen=True)
class FeatureService:
    """A named list of `table:feature` references a model consumes (a dbt exposure)."""

    name: str
    features: tuple[str, ...]
    description: str = ""
    owner: str | None = None


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
        owner = (node.get("owner") or {}).get("email")
        services[name] = FeatureService(name, references, node.get("description", ""), owner)
    return services
