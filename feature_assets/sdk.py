"""The user-facing SDK: online reads and point-in-time training sets over the same resources."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from feature_assets import training_sets
from feature_assets.contract import (
    FeatureService,
    FeatureTable,
    load_feature_services,
    load_feature_tables,
)
from feature_assets.dbt_project import feature_dbt_project
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from resources.point_in_time import FeatureRequest
from resources.settings import Settings

SQL_START = re.compile(r"^\s*(select|with|from)\b", re.IGNORECASE)


class FeatureReferenceError(KeyError):
    """A `table:feature` reference that names no known table or feature."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class OnlineFeatures:
    """One row per requested entity, in request order; a missing or expired value is None.

    `statuses[i][table]` says why: "present", "not_found" or "expired".
    """

    rows: list[dict[str, Any]]
    statuses: list[dict[str, str]]

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
        self,
        tables: Mapping[str, FeatureTable],
        offline: OfflineStore,
        online: OnlineStore,
        services: Mapping[str, FeatureService] | None = None,
    ) -> None:
        self.tables = dict(tables)
        self.services = dict(services or {})
        self.offline = offline
        self.online = online

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> FeatureStore:
        from feature_assets.definitions import offline_store, online_store

        settings = settings or Settings.from_env()
        project = feature_dbt_project(settings.dbt_project_dir)
        manifest = json.loads(project.manifest_path.read_text())
        tables = load_feature_tables(manifest)
        services = load_feature_services(manifest, tables)
        return cls(tables, offline_store(settings), online_store(settings), services)

    def resolve(
        self, features: Sequence[str] | str, *, full_feature_names: bool = False
    ) -> list[FeatureRequest]:
        """`table:feature` references (or a feature service name) grouped per table, in order."""
        if isinstance(features, str):
            service = self.services.get(features)
            if service is None:
                raise FeatureReferenceError(
                    f"unknown feature service {features!r}; known: {sorted(self.services)}"
                )
            features = service.features
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
        requests = [FeatureRequest(self.tables[t], tuple(fs)) for t, fs in by_table.items()]
        names = [name for r in requests for name in r.output_names(full_feature_names)]
        clashes = sorted({name for name in names if names.count(name) > 1})
        if clashes:
            raise FeatureReferenceError(
                f"feature names {clashes} come from several tables; pass full_feature_names=True"
            )
        return requests

    def get_online_features(
        self,
        features: Sequence[str] | str,
        entity_rows: Sequence[Mapping[str, Any]],
        *,
        full_feature_names: bool = False,
        now: datetime | None = None,
    ) -> OnlineFeatures:
        """Latest values for each entity row, TTL applied at read time (as the training-set join)."""
        full_feature_names = self._full_names(features, full_feature_names)
        requests = self.resolve(features, full_feature_names=full_feature_names)
        offline_only = sorted(r.table.name for r in requests if not r.table.online)
        if offline_only:
            raise FeatureReferenceError(
                f"feature tables {offline_only} are offline only (online: false in their YAML); "
                "read them with get_historical_features"
            )
        per_table = self.online.read_tables(
            [(r.table, r.features) for r in requests], entity_rows, now=now
        )
        rows, statuses = [], []
        for i, entity in enumerate(entity_rows):
            row, status = dict(entity), {}
            for request, reads in zip(requests, per_table, strict=True):
                read = reads[i]
                names = request.output_names(full_feature_names)
                row.update(
                    {name: read.values[f] for name, f in zip(names, request.features, strict=True)}
                )
                status[request.table.name] = read.status.value
            rows.append(row)
            statuses.append(status)
        return OnlineFeatures(rows, statuses)

    def get_historical_features(
        self,
        entity_df: Any,
        features: Sequence[str] | str,
        *,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
        created_timestamp_cutoff: bool = False,
        output: str = "pandas",
        output_path: str | Path | None = None,
    ) -> Any:
        """Point-in-time correct features for each entity row: one output row per input row.

        `entity_df` is a pandas, Arrow or polars frame, a Parquet path, or a SQL query in which
        every feature table is a view of its published partitions. With
        `created_timestamp_cutoff`, a value computed after the entity time is not used either
        (late corrections do not leak).
        """
        full_feature_names = self._full_names(features, full_feature_names)
        requests = self.resolve(features, full_feature_names=full_feature_names)
        return self.offline.get_historical_features(
            self._entity_source(entity_df),
            requests,
            timestamp_column=timestamp_column,
            full_feature_names=full_feature_names,
            created_timestamp_cutoff=created_timestamp_cutoff,
            output=output,
            output_path=output_path,
        )

    def save_training_set(
        self,
        directory: str | Path,
        entity_df: Any,
        features: Sequence[str] | str,
        *,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
        created_timestamp_cutoff: bool = False,
    ) -> dict[str, Any]:
        """Build a training set into `directory` (data, entity rows, manifest); returns the manifest."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        full_feature_names = self._full_names(features, full_feature_names)
        requests = self.resolve(features, full_feature_names=full_feature_names)
        entities = directory / training_sets.ENTITIES
        first, last = self.offline.write_entity_rows(
            self._entity_source(entity_df), entities, timestamp_column
        )
        options = {
            "timestamp_column": timestamp_column,
            "full_feature_names": full_feature_names,
            "created_timestamp_cutoff": created_timestamp_cutoff,
        }
        references = [f"{r.table.name}:{f}" for r in requests for f in r.features]
        inputs = training_sets.describe_inputs(self.offline, requests, first, last)
        self.get_historical_features(
            entities, references, **options, output_path=directory / training_sets.DATA
        )
        rows = pq.ParquetFile(directory / training_sets.DATA).metadata.num_rows
        manifest = training_sets.new_manifest(references, options, rows, inputs)
        training_sets.write_manifest(directory, manifest)
        return manifest

    def rebuild_training_set(self, directory: str | Path, output_path: str | Path) -> Path:
        """Rebuild a saved training set from its manifest; refuses if its partitions changed."""
        directory = Path(directory)
        manifest = training_sets.read_manifest(directory)
        requests = self.resolve(
            manifest["features"], full_feature_names=manifest["options"]["full_feature_names"]
        )
        entities = directory / manifest["entity_rows"]
        first, last = self.offline.entity_time_range(
            entities, manifest["options"]["timestamp_column"]
        )
        changes = training_sets.changed_partitions(
            manifest["tables"], training_sets.describe_inputs(self.offline, requests, first, last)
        )
        if changes:
            raise training_sets.TrainingSetDriftError(
                f"training set {directory}: partitions changed since it was built: {', '.join(changes)}"
            )
        return self.get_historical_features(
            entities, manifest["features"], **manifest["options"], output_path=output_path
        )

    def _full_names(self, features: Sequence[str] | str, requested: bool) -> bool:
        """A feature service that serves clashing names always uses table__feature names."""
        service = self.services.get(features) if isinstance(features, str) else None
        return requested or bool(service and service.full_feature_names)

    def _entity_source(self, entity_df: Any) -> Any:
        """A SQL query runs over views of the published tables; everything else passes through."""
        if isinstance(entity_df, str) and SQL_START.match(entity_df):
            return self.offline.query(entity_df, list(self.tables.values()))
        return entity_df
