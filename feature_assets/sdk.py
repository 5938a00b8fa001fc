"""The user-facing SDK: online reads and point-in-time training sets over the same resources."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from feature_assets.contract import FeatureTable, load_feature_tables
from feature_assets.dbt_project import feature_dbt_project
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from resources.point_in_time import FeatureRequest
from resources.settings import Settings


class FeatureReferenceError(KeyError):
    """A `table:feature` reference that names no known table or feature."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class OnlineFeatures:
    """One row per requested entity, in request order; a missing or expired value is None."""

    rows: list[dict[str, Any]]

    def to_dict(self) -> dict[str, list[Any]]:
        columns: dict[str, list[Any]] = {}
        for row in self.rows:
            for name, value in row.items():
                columns.setdefault(name, []).append(value)
        return columns

    def to_df(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


class FeatureStore:
    def __init__(
        self, tables: Mapping[str, FeatureTable], offline: OfflineStore, online: OnlineStore
    ) -> None:
        self.tables = dict(tables)
        self.offline = offline
        self.online = online

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> FeatureStore:
        from feature_assets.definitions import offline_store, online_store

        settings = settings or Settings.from_env()
        project = feature_dbt_project(settings.dbt_project_dir)
        tables = load_feature_tables(json.loads(project.manifest_path.read_text()))
        return cls(tables, offline_store(settings), online_store(settings))

    def resolve(self, features: Sequence[str]) -> list[FeatureRequest]:
        """`table:feature` references grouped per table, in first-mentioned order."""
        by_table: dict[str, list[str]] = {}
        for reference in features:
            table_name, sep, feature = reference.partition(":")
            if not sep or not feature:
                raise FeatureReferenceError(
                    f"feature reference {reference!r} is not 'table:feature'"
                )
            table = self.tables.get(table_name)
            if table is None:
                raise FeatureReferenceError(
                    f"unknown feature table {table_name!r} in {reference!r}; known: {sorted(self.tables)}"
                )
            if feature not in table.feature_names:
                raise FeatureReferenceError(
                    f"feature table {table_name!r} has no feature {feature!r}; "
                    f"it has {list(table.feature_names)}"
                )
            by_table.setdefault(table_name, [])
            if feature not in by_table[table_name]:
                by_table[table_name].append(feature)
        names = [f for fs in by_table.values() for f in fs]
        clashes = sorted({f for f in names if names.count(f) > 1})
        if clashes:
            raise FeatureReferenceError(
                f"feature names {clashes} are requested from several tables"
            )
        return [FeatureRequest(self.tables[t], tuple(fs)) for t, fs in by_table.items()]

    def get_online_features(
        self,
        features: Sequence[str],
        entity_rows: Sequence[Mapping[str, Any]],
        *,
        now: datetime | None = None,
    ) -> OnlineFeatures:
        requests = self.resolve(features)

        def read(request: FeatureRequest) -> list[dict[str, Any] | None]:
            return self.online.read(request.table, entity_rows, request.features, now=now)

        # Tables of one request are read in parallel; each read batches its keys.
        if len(requests) == 1:
            per_table = [read(requests[0])]
        else:
            with ThreadPoolExecutor(max_workers=len(requests)) as pool:
                per_table = list(pool.map(read, requests))
        rows = []
        for i, entity in enumerate(entity_rows):
            row = dict(entity)
            for request, values in zip(requests, per_table, strict=True):
                found = values[i]
                row.update(found if found is not None else dict.fromkeys(request.features))
            rows.append(row)
        return OnlineFeatures(rows)

    def get_historical_features(
        self,
        entity_df: pd.DataFrame,
        features: Sequence[str],
        *,
        timestamp_column: str = "event_timestamp",
    ) -> pd.DataFrame:
        """Point-in-time correct features for each row of `entity_df` (one output row per input row)."""
        requests = self.resolve(features)
        if timestamp_column not in entity_df.columns:
            raise KeyError(f"entity_df has no timestamp column {timestamp_column!r}")
        for request in requests:
            missing = [key for key in request.table.keys if key not in entity_df.columns]
            if missing:
                raise KeyError(
                    f"feature table {request.table.name!r}: entity_df lacks key column(s) {missing}"
                )
            clashing = [f for f in request.features if f in entity_df.columns]
            if clashing:
                raise ValueError(
                    f"entity_df already has column(s) {clashing} named like requested features"
                )
        return self.offline.get_historical_features(
            entity_df, requests, timestamp_column=timestamp_column
        )
