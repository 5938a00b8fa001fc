"""The contract's types: feature tables, services, feature requests and raw sources.

`kernel.manifest` parses them once from the dbt manifest; everything else (asset specs, the
pandera schema, online tables, joins, schedules) takes these frozen objects, and nothing
re-reads YAML or re-parses "30d".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from feature_assets.kernel.errors import FeatureDefinitionError, FeatureReferenceError

# entity_grain_metric_window: the part after the entity, e.g. "daily_transactions_7d".
GRAIN_METRIC_WINDOW = r"(?P<grain>hourly|daily|weekly|monthly)_[a-z][a-z0-9_]*_(?P<window>\d+[hdw])"
NAME_PATTERN = re.compile(
    rf"^(?P<entity>[a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)*?)_{GRAIN_METRIC_WINDOW}$"
)
DURATION_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
OWNER_PATTERN = re.compile(r"^(team:[A-Za-z0-9_.-]+|[^@\s]+@[^@\s]+\.[^@\s]+)$")
# Column checks and the argument each takes; validation maps each name to pandera's check
# of the same name, so this is the one list of them.
NUMBER_CHECKS = ("ge", "gt", "le", "lt")
CHECK_NAMES = frozenset({*NUMBER_CHECKS, "isin", "str_matches"})

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


@dataclass(frozen=True)
class FeatureColumn:
    name: str
    logical_type: str
    description: str = ""
    data_type: str = ""  # as written in the YAML, e.g. "bigint"
    nullable: bool = True
    checks: Mapping[str, Any] = field(default_factory=dict)

    @property
    def type_name(self) -> str:
        """The YAML's data_type, or the logical type for a table defined in code."""
        return self.data_type or self.logical_type


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
    # The window in the name, parsed once: a row for feature date f reads source days
    # [f - window, f]. Derived from the name when not given.
    window: timedelta = field(default=timedelta(0))

    def __post_init__(self) -> None:
        if not self.window:
            match = NAME_PATTERN.match(self.name)
            if match is None:
                raise FeatureDefinitionError(
                    f"feature table {self.name!r}, field 'name': has no window; "
                    "use entity_grain_metric_window, for example 'user_daily_transactions_7d'"
                )
            object.__setattr__(self, "window", parse_duration(match.group("window")))

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(feature.name for feature in self.features)

    @property
    def column_types(self) -> dict[str, str]:
        """Every column of the table's files and its logical type, in file order: keys,
        event time, partition day, created time, features."""
        types = {**self.key_types, self.timestamp: "timestamp", self.partition_column: "date"}
        if self.created_timestamp:
            types[self.created_timestamp] = "timestamp"
        types.update({f.name: f.logical_type for f in self.features})
        return types

    def feature(self, name: str) -> FeatureColumn:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise FeatureReferenceError(
            f"feature table {self.name!r} has no feature {name!r}; it has {list(self.feature_names)}"
        )


# Longer than any sensible ttl or freshness, and far inside what datetime arithmetic allows.
MAX_DURATION = timedelta(days=36_500)


def parse_duration(raw: str) -> timedelta:
    """'30d', '12h', '2w' -> timedelta; ValueError for anything else, zero or over 100 years."""
    match = DURATION_PATTERN.match(str(raw)) if isinstance(raw, str) else None
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{raw!r} is not a positive duration like '30d' or '12h'")
    amount, unit = match.groups()
    too_long = ValueError(f"{raw!r} is longer than {MAX_DURATION.days} days")
    try:
        value = timedelta(**{DURATION_UNITS[unit]: int(amount)})
    except OverflowError:
        raise too_long from None
    if value > MAX_DURATION:
        raise too_long
    return value


def format_duration(value: timedelta | None) -> str | None:
    """The shortest contract spelling of a duration: 30 days -> '30d', 36 hours -> '36h'."""
    if value is None:
        return None
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class FeatureService:
    """A named list of `table:feature` references a model consumes (a dbt exposure)."""

    name: str
    features: tuple[str, ...]
    description: str = ""
    owner: str | None = None
    # Output columns are named table__feature; required when two tables share a feature name.
    full_feature_names: bool = False
    # The online sync also writes one item per entity holding every stored feature of the
    # service, so reading it is one round trip.
    online_colocated: bool = False
    # The on-demand features among the references (computed at read time, not stored).
    on_demand_names: frozenset[str] = frozenset()

    @property
    def table_names(self) -> frozenset[str]:
        """The stored feature tables the service reads directly."""
        owners = {reference.partition(":")[0] for reference in self.features}
        return frozenset(owners - self.on_demand_names)

    @property
    def stored_features(self) -> tuple[str, ...]:
        return tuple(r for r in self.features if r.partition(":")[0] not in self.on_demand_names)


def services_reading(services: Mapping[str, FeatureService], table_name: str) -> tuple[str, ...]:
    """The names of the services that read a table, sorted."""
    return tuple(sorted(s.name for s in services.values() if table_name in s.table_names))


@dataclass(frozen=True)
class OnDemandInput:
    """One argument of an on-demand function: a stored feature (`table:feature`) or a
    request-time field the caller passes (an entity-frame column, a key of an entity row)."""

    name: str
    logical_type: str
    feature: str | None = None  # "table:feature"; None for a request field

    @property
    def is_request(self) -> bool:
        return self.feature is None


@dataclass(frozen=True)
class OnDemandFeature:
    """Features computed at read time by a plain Python function (a dbt exposure with
    `meta.on_demand_feature`). The function takes one NumPy array per input, all of the
    same length, and returns a mapping of each output name to an array of that length.
    The same function runs over the training frame and over each online request."""

    name: str
    function: str  # "package.module:function"
    inputs: tuple[OnDemandInput, ...]
    outputs: tuple[FeatureColumn, ...]
    description: str = ""
    owner: str | None = None

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(output.name for output in self.outputs)

    @property
    def stored_inputs(self) -> tuple[OnDemandInput, ...]:
        return tuple(i for i in self.inputs if not i.is_request)

    @property
    def request_inputs(self) -> tuple[OnDemandInput, ...]:
        return tuple(i for i in self.inputs if i.is_request)

    @property
    def table_names(self) -> frozenset[str]:
        return frozenset(str(i.feature).partition(":")[0] for i in self.stored_inputs)

    def feature(self, name: str) -> FeatureColumn:
        for output in self.outputs:
            if output.name == name:
                return output
        raise FeatureReferenceError(
            f"on-demand feature {self.name!r} has no output {name!r}; "
            f"it has {list(self.feature_names)}"
        )


@dataclass(frozen=True)
class FeatureRequest:
    """The features asked of one table in one call, in the order asked, and the ones read
    only as inputs of on-demand features (`hidden`: joined or read, then dropped)."""

    table: FeatureTable
    features: tuple[str, ...]
    hidden: tuple[str, ...] = ()

    def output_names(self, full_feature_names: bool) -> tuple[str, ...]:
        if full_feature_names:
            return tuple(f"{self.table.name}__{feature}" for feature in self.features)
        return self.features

    @property
    def all_features(self) -> tuple[str, ...]:
        return (*self.features, *self.hidden)

    def all_output_names(self, full_feature_names: bool) -> tuple[str, ...]:
        """Column names of every feature read: the asked ones, then the hidden inputs."""
        hidden = tuple(hidden_input_column(self.table.name, f) for f in self.hidden)
        return (*self.output_names(full_feature_names), *hidden)


def hidden_input_column(table_name: str, feature: str) -> str:
    """The column a stored input of an on-demand feature is read into when not asked for."""
    return f"__input__{table_name}__{feature}"


@dataclass(frozen=True)
class OnDemandRequest:
    """The outputs asked of one on-demand feature, in the order asked."""

    feature: OnDemandFeature
    outputs: tuple[str, ...]

    def output_names(self, full_feature_names: bool) -> tuple[str, ...]:
        if full_feature_names:
            return tuple(f"{self.feature.name}__{output}" for output in self.outputs)
        return self.outputs


@dataclass(frozen=True)
class ResolvedFeatures:
    """What one call reads: stored features per table (with hidden inputs) and on-demand
    outputs computed from them and from request fields."""

    stored: tuple[FeatureRequest, ...]
    on_demand: tuple[OnDemandRequest, ...] = ()

    def input_column(self, item: OnDemandInput, full_feature_names: bool) -> str:
        """Where a stored input's value is after the join or online read."""
        table_name, _, feature = str(item.feature).partition(":")
        for request in self.stored:
            if request.table.name == table_name and feature in request.features:
                return request.output_names(full_feature_names)[request.features.index(feature)]
        return hidden_input_column(table_name, feature)


@dataclass(frozen=True)
class RawSource:
    """A dbt source: raw data landing as Parquet, daily or replaced whole, and its gate's rules."""

    source_name: str
    name: str
    description: str
    columns: tuple[FeatureColumn, ...]
    # Hive partition column of a daily landing folder; None for a dimension replaced whole.
    landing_partition: str | None
    # Unique within a landing day (within the whole file for a dimension).
    unique_key: tuple[str, ...] = ()
    # Must lie inside the landing day.
    timestamp: str | None = None

    @property
    def key(self) -> str:
        """`source_name.name`, as feature tables list their sources."""
        return f"{self.source_name}.{self.name}"

    @property
    def file_columns(self) -> tuple[FeatureColumn, ...]:
        """The columns the landing files hold (the day of a daily source is the folder's)."""
        return tuple(c for c in self.columns if c.name != self.landing_partition)


@dataclass(frozen=True)
class Contract:
    """Everything the dbt project defines, parsed once: tables, services, raw sources and
    on-demand features."""

    tables: Mapping[str, FeatureTable]
    services: Mapping[str, FeatureService]
    sources: Mapping[str, RawSource]
    on_demand: Mapping[str, OnDemandFeature] = field(default_factory=dict)


def resolve_features(
    contract: Contract, features: Sequence[str] | str, *, full_feature_names: bool = False
) -> ResolvedFeatures:
    """`table:feature` and `on_demand:output` references (or a feature service name), grouped
    per table and per on-demand feature in the order asked. Stored inputs of on-demand
    features that were not asked for are read as hidden features of their table."""
    if isinstance(features, str):
        service = contract.services.get(features)
        if service is None:
            raise FeatureReferenceError(
                f"unknown feature service {features!r}; known: {sorted(contract.services)}"
            )
        features = service.features
    if not isinstance(features, Sequence) or not features:
        raise FeatureReferenceError(
            "features must be a non-empty list of 'table:feature' strings or a service name"
        )
    by_table: dict[str, list[str]] = {}
    by_on_demand: dict[str, list[str]] = {}
    for reference in features:
        if not isinstance(reference, str):
            raise FeatureReferenceError(
                f"feature reference {reference!r} is not a 'table:feature' string"
            )
        owner, sep, feature = reference.partition(":")
        if not sep or not feature:
            raise FeatureReferenceError(f"feature reference {reference!r} is not 'table:feature'")
        if owner in contract.on_demand:
            contract.on_demand[owner].feature(feature)  # names its outputs when unknown
            _append_once(by_on_demand.setdefault(owner, []), feature)
            continue
        table = contract.tables.get(owner)
        if table is None:
            known = sorted({*contract.tables, *contract.on_demand})
            raise FeatureReferenceError(
                f"unknown feature table {owner!r} in {reference!r}; known: {known}"
            )
        table.feature(feature)  # names the table and its features when unknown
        _append_once(by_table.setdefault(owner, []), feature)
    hidden: dict[str, list[str]] = {}
    for name in by_on_demand:
        for item in contract.on_demand[name].stored_inputs:
            table_name, _, feature = str(item.feature).partition(":")
            if feature not in by_table.get(table_name, []):
                _append_once(hidden.setdefault(table_name, []), feature)
    stored = tuple(
        FeatureRequest(contract.tables[t], tuple(by_table.get(t, ())), tuple(hidden.get(t, ())))
        for t in dict.fromkeys([*by_table, *hidden])
    )
    on_demand = tuple(
        OnDemandRequest(contract.on_demand[n], tuple(outputs))
        for n, outputs in by_on_demand.items()
    )
    names = [name for r in stored for name in r.output_names(full_feature_names)]
    names += [name for r in on_demand for name in r.output_names(full_feature_names)]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise FeatureReferenceError(
            f"feature names {clashes} come from several tables; pass full_feature_names=True"
        )
    return ResolvedFeatures(stored, on_demand)


def _append_once(names: list[str], name: str) -> None:
    if name not in names:
        names.append(name)


def uses_full_feature_names(
    contract: Contract, features: Sequence[str] | str, requested: bool
) -> bool:
    """A feature service that serves clashing names always uses table__feature names."""
    service = contract.services.get(features) if isinstance(features, str) else None
    return requested or bool(service and service.full_feature_names)


def colocated_features(contract: Contract, service_name: str) -> dict[str, tuple[str, ...]]:
    """What a co-located service's item holds, per table: every stored feature the service
    reads, inputs of its on-demand features included."""
    service = contract.services[service_name]
    resolved = resolve_features(
        contract, service_name, full_feature_names=service.full_feature_names
    )
    return {request.table.name: request.all_features for request in resolved.stored}


def colocations(contract: Contract, table_name: str) -> dict[str, tuple[str, ...]]:
    """The co-located services holding part of a table, and which of its features each holds."""
    layouts = {
        name: colocated_features(contract, name)
        for name, service in sorted(contract.services.items())
        if service.online_colocated
    }
    return {name: layout[table_name] for name, layout in layouts.items() if table_name in layout}


def colocated_companions(
    contract: Contract, table_name: str
) -> dict[str, tuple[tuple[FeatureTable, tuple[str, ...]], ...]]:
    """Per co-located service holding part of a table: the service's other tables, and which
    of their features it holds."""
    return {
        service: tuple(
            (contract.tables[other], tuple(features))
            for other, features in colocated_features(contract, service).items()
            if other != table_name
        )
        for service in colocations(contract, table_name)
    }


def colocated_group(contract: Contract, table_name: str) -> tuple[str, ...]:
    """The tables whose syncs may put the same co-located items: the table, and every table
    sharing a co-located service with it, transitively (sorted)."""
    group, todo = {table_name}, [table_name]
    while todo:
        name = todo.pop()
        for service in colocations(contract, name):
            for other in colocated_features(contract, service):
                if other not in group:
                    group.add(other)
                    todo.append(other)
    return tuple(sorted(group))
