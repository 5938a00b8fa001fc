"""Discovery: list, describe and search the feature tables, their features and services.

Everything comes from the parsed contracts (the same objects the assets are built from)
plus the offline store, which alone knows which partitions were published.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from feature_assets.contract import FeatureService, FeatureTable, format_duration
from resources.offline_store import OfflineStore
from sensors.refresh_policy import due_partition, is_stale, refresh_interval

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
            raise KeyError(f"unknown feature table {name!r}; known: {sorted(self.tables)}")
        return self.tables[name]

    def last_partition(self, table: FeatureTable) -> date | None:
        days = self.offline.published_days(table)
        return days[-1] if days else None

    def table_rows(self) -> list[dict[str, Any]]:
        return [
            self._summary(t, self.offline.published_days(t))
            for t in sorted(self.tables.values(), key=lambda t: t.name)
        ]

    def feature_rows(self, table_name: str | None = None) -> list[dict[str, Any]]:
        tables = [self.table(table_name)] if table_name else self.tables.values()
        return [
            {
                "feature": f"{t.name}:{f.name}",
                "type": f.type_name,
                "owner": t.owner,
                "ttl": format_duration(t.ttl),
                "description": f.description,
            }
            for t in sorted(tables, key=lambda t: t.name)
            for f in t.features
        ]

    def freshness_rows(self, now: datetime) -> list[dict[str, Any]]:
        """Per table: the newest published day against the day its freshness SLA makes due."""
        rows = []
        for table in sorted(self.tables.values(), key=lambda t: t.name):
            newest, due = self.last_partition(table), due_partition(table, now)
            stale = is_stale(table, newest, now)
            if due is None:
                status = "no SLA"
            elif newest is None:
                status = "STALE (never published)"
            elif stale:
                status = f"STALE ({(due - newest).days} day(s) behind)"
            else:
                status = "fresh"
            rows.append(
                {
                    "table": table.name,
                    "freshness": format_duration(table.freshness),
                    "refresh_every": format_duration(refresh_interval(table)),
                    "newest_partition": newest.isoformat() if newest else None,
                    "due_partition": due.isoformat() if due else None,
                    "status": status,
                    "stale": stale,
                }
            )
        return rows

    def describe(self, table_name: str) -> dict[str, Any]:
        table = self.table(table_name)
        published = self.offline.published_days(table)
        return {
            **self._summary(table, published),
            "description": table.description,
            "timestamp": table.timestamp,
            "created_timestamp": table.created_timestamp,
            "partition": table.partition_column,
            "tags": list(table.tags),
            "sources": list(table.source_tables),
            "published_partitions": len(published),
            "services": sorted(
                s.name for s in self.services.values() if table.name in s.table_names
            ),
            "features": [
                {
                    "name": f.name,
                    "type": f.type_name,
                    "nullable": f.nullable,
                    "checks": dict(f.checks),
                    "description": f.description,
                }
                for f in table.features
            ],
        }

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

    def _summary(self, table: FeatureTable, published: list[date]) -> dict[str, Any]:
        last = published[-1] if published else None
        return {
            "table": table.name,
            "entity": table.entity,
            "keys": list(table.keys),
            "owner": table.owner,
            "ttl": format_duration(table.ttl),
            "freshness": format_duration(table.freshness),
            "online": table.online,
            "features": len(table.features),
            "last_partition": last.isoformat() if last else None,
        }
