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
    kind: str  # "table", "feature" or "service"
    name: str  # table name, "table:feature", or service name
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
    ) -> None:
        self.tables = dict(tables)
        self.services = dict(services)
        self.offline = offline

    def table(self, name: str) -> FeatureTable:
        if name not in self.tables:
            raise FeatureReferenceError(
                f"unknown feature table {name!r}; known: {sorted(self.tables)}"
            )
        return self.tables[name]

    def last_partition(self, table: FeatureTable) -> date | None:
        days = self.offline.published_days(table)
        return days[-1] if days else None

    def table_summaries(self) -> list[TableSummary]:
        return [
            self._summary(t, self.offline.published_days(t))
            for t in sorted(self.tables.values(), key=lambda t: t.name)
        ]

    def feature_summaries(self, table_name: str | None = None) -> list[FeatureSummary]:
        tables = [self.table(table_name)] if table_name else self.tables.values()
        return [
            FeatureSummary(f"{t.name}:{f.name}", f.type_name, t.owner, t.ttl, f.description)
            for t in sorted(tables, key=lambda t: t.name)
            for f in t.features
        ]

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
