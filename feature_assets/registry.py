"""Discovery: list, describe and search the feature tables, their features and services.

Everything comes from the parsed contracts (the same objects the assets are built from)
plus the offline store, which alone knows which partitions were published.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from feature_assets.kernel.contract import (
    FeatureColumn,
    FeatureService,
    FeatureTable,
    OnDemandFeature,
    services_reading,
)
from feature_assets.kernel.errors import FeatureReferenceError
from feature_assets.kernel.refresh_policy import due_partition, is_stale, refresh_interval
from resources.offline_store import OfflineStore

WORD = re.compile(r"[a-z0-9]+")
# A match in a name says more than one in a tag, and a tag more than one in prose.
FIELD_WEIGHTS = {"name": 3, "tags": 2, "entity": 2, "owner": 1, "description": 1}


@dataclass(frozen=True)
class SearchHit:
    kind: str  # "table", "on_demand", "feature" or "service"
    name: str  # table or on-demand name, "table:feature", or service name
    description: str
    matched: tuple[str, ...]  # the fields the query words were found in
    score: int


@dataclass(frozen=True)
class TableSummary:
    table: str
    entity: str
    keys: tuple[str, ...]
    owner: str
    ttl: timedelta | None
    freshness: timedelta | None
    online: bool
    features: int
    last_partition: date | None


@dataclass(frozen=True)
class FeatureSummary:
    feature: str  # "table:feature"
    type: str
    owner: str
    ttl: timedelta | None
    description: str


@dataclass(frozen=True)
class TableDetails:
    summary: TableSummary
    description: str
    timestamp: str
    created_timestamp: str | None
    partition: str
    tags: tuple[str, ...]
    sources: tuple[str, ...]
    published_partitions: int
    services: tuple[str, ...]
    features: tuple[FeatureColumn, ...]


@dataclass(frozen=True)
class OnDemandInputSummary:
    name: str
    type: str
    source: str  # "table:feature", or "request" for a field the caller passes


@dataclass(frozen=True)
class OnDemandSummary:
    on_demand: str
    function: str
    owner: str
    inputs: int
    outputs: int
    reads_tables: tuple[str, ...]


@dataclass(frozen=True)
class OnDemandDetails:
    summary: OnDemandSummary
    description: str
    inputs: tuple[OnDemandInputSummary, ...]
    services: tuple[str, ...]
    features: tuple[FeatureColumn, ...]  # the outputs


@dataclass(frozen=True)
class Freshness:
    """A table's newest published day against the day its freshness SLA makes due."""

    table: str
    freshness: timedelta | None
    refresh_every: timedelta
    newest_partition: date | None
    due_partition: date | None
    stale: bool

    @property
    def days_behind(self) -> int | None:
        if not self.stale or self.due_partition is None or self.newest_partition is None:
            return None
        return (self.due_partition - self.newest_partition).days


def _words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def _score(query: list[str], fields: Mapping[str, str]) -> tuple[int, tuple[str, ...]]:
    """Every query word must prefix-match a word of some field ("merchant" finds "merchants")."""
    words = {field: _words(text) for field, text in fields.items()}
    score, matched = 0, set()
    for term in query:
        hits = [f for f, ws in words.items() if any(w.startswith(term) for w in ws)]
        if not hits:
            return 0, ()
        score += max(FIELD_WEIGHTS[f] for f in hits)
        matched.update(hits)
    return score, tuple(f for f in FIELD_WEIGHTS if f in matched)


class Registry:
    def __init__(
        self,
        tables: Mapping[str, FeatureTable],
        services: Mapping[str, FeatureService],
        offline: OfflineStore,
        on_demand: Mapping[str, OnDemandFeature] | None = None,
    ) -> None:
        self.tables = dict(tables)
        self.services = dict(services)
        self.offline = offline
        self.on_demand = dict(on_demand or {})

    def table(self, name: str) -> FeatureTable:
        if name not in self.tables:
            known = sorted(self.tables) + sorted(self.on_demand)
            raise FeatureReferenceError(f"unknown feature table {name!r}; known: {known}")
        return self.tables[name]

    def on_demand_summaries(self) -> list[OnDemandSummary]:
        return [self._on_demand_summary(f) for _, f in sorted(self.on_demand.items())]

    def describe_on_demand(self, name: str) -> OnDemandDetails:
        feature = self.on_demand[name]
        return OnDemandDetails(
            summary=self._on_demand_summary(feature),
            description=feature.description,
            inputs=tuple(
                OnDemandInputSummary(i.name, i.logical_type, i.feature or "request")
                for i in feature.inputs
            ),
            services=tuple(
                sorted(s.name for s in self.services.values() if name in s.on_demand_names)
            ),
            features=feature.outputs,
        )

    def last_partition(self, table: FeatureTable) -> date | None:
        days = self.offline.published_days(table)
        return days[-1] if days else None

    def table_summaries(self) -> list[TableSummary]:
        return [
            self._summary(t, self.offline.published_days(t))
            for t in sorted(self.tables.values(), key=lambda t: t.name)
        ]

    def feature_summaries(self, table_name: str | None = None) -> list[FeatureSummary]:
        """Stored features, then on-demand outputs (of one table or on-demand feature)."""
        if table_name in self.on_demand:
            tables, on_demand = [], [self.on_demand[table_name]]
        elif table_name:
            tables, on_demand = [self.table(table_name)], []
        else:
            tables, on_demand = list(self.tables.values()), list(self.on_demand.values())
        stored = [
            FeatureSummary(f"{t.name}:{f.name}", f.type_name, t.owner, t.ttl, f.description)
            for t in sorted(tables, key=lambda t: t.name)
            for f in t.features
        ]
        computed = [
            FeatureSummary(f"{od.name}:{o.name}", o.type_name, od.owner or "", None, o.description)
            for od in sorted(on_demand, key=lambda od: od.name)
            for o in od.outputs
        ]
        return stored + computed

    def freshness(self, now: datetime) -> list[Freshness]:
        return [
            Freshness(
                table=table.name,
                freshness=table.freshness,
                refresh_every=refresh_interval(table),
                newest_partition=(newest := self.last_partition(table)),
                due_partition=due_partition(table, now),
                stale=is_stale(table, newest, now),
            )
            for table in sorted(self.tables.values(), key=lambda t: t.name)
        ]

    def describe(self, table_name: str) -> TableDetails:
        table = self.table(table_name)
        published = self.offline.published_days(table)
        return TableDetails(
            summary=self._summary(table, published),
            description=table.description,
            timestamp=table.timestamp,
            created_timestamp=table.created_timestamp,
            partition=table.partition_column,
            tags=table.tags,
            sources=table.source_tables,
            published_partitions=len(published),
            services=services_reading(self.services, table.name),
            features=table.features,
        )

    def search(self, query: str) -> list[SearchHit]:
        """Tables, features and services whose name, description, tags, entity or owner
        contain every word of the query (as a word prefix), best first."""
        terms = sorted(_words(query))
        if not terms:
            return []
        hits = [
            SearchHit(kind, name, description, matched, score)
            for kind, name, description, fields in self._documents()
            for score, matched in [_score(terms, fields)]
            if score
        ]
        return sorted(hits, key=lambda h: (-h.score, h.kind != "feature", h.name))

    def _documents(self) -> Iterable[tuple[str, str, str, dict[str, str]]]:
        for t in self.tables.values():
            tags = " ".join(t.tags)
            yield (
                "table",
                t.name,
                t.description,
                {
                    "name": t.name,
                    "tags": tags,
                    "entity": t.entity,
                    "owner": t.owner,
                    "description": t.description,
                },
            )
            for f in t.features:
                # A feature inherits its table's tags and entity: "fraud" finds fraud features.
                yield (
                    "feature",
                    f"{t.name}:{f.name}",
                    f.description,
                    {
                        "name": f.name,
                        "tags": tags,
                        "entity": t.entity,
                        "owner": t.owner,
                        "description": f.description,
                    },
                )
        for od in self.on_demand.values():
            inputs = " ".join(i.feature or i.name for i in od.inputs)
            yield (
                "on_demand",
                od.name,
                od.description,
                {
                    "name": f"{od.name} {' '.join(od.feature_names)}",
                    "owner": od.owner or "",
                    "description": f"{od.description} {inputs}",
                },
            )
            for o in od.outputs:
                yield (
                    "feature",
                    f"{od.name}:{o.name}",
                    o.description,
                    {"name": o.name, "owner": od.owner or "", "description": o.description},
                )
        for s in self.services.values():
            yield (
                "service",
                s.name,
                s.description,
                {
                    "name": s.name,
                    "owner": s.owner or "",
                    "description": s.description,
                },
            )

    def _on_demand_summary(self, feature: OnDemandFeature) -> OnDemandSummary:
        return OnDemandSummary(
            on_demand=feature.name,
            function=feature.function,
            owner=feature.owner or "",
            inputs=len(feature.inputs),
            outputs=len(feature.outputs),
            reads_tables=tuple(sorted(feature.table_names)),
        )

    def _summary(self, table: FeatureTable, published: list[date]) -> TableSummary:
        return TableSummary(
            table=table.name,
            entity=table.entity,
            keys=table.keys,
            owner=table.owner,
            ttl=table.ttl,
            freshness=table.freshness,
            online=table.online,
            features=len(table.features),
            last_partition=published[-1] if published else None,
        )
