"""The user-facing SDK: online reads and point-in-time training sets over the same resources."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from feature_assets import saved_training_sets
from feature_assets.kernel.contract import (
    Contract,
    FeatureService,
    FeatureTable,
    OnDemandFeature,
    ResolvedFeatures,
    colocations,
    resolve_features,
    uses_full_feature_names,
)
from feature_assets.kernel.errors import (
    EntityInputError,
    FeatureReferenceError,
    TrainingSetDriftError,
)
from resources.colocated import ColocatedItems
from resources.dbt_manifest import load_project_contract
from resources.entity_source import parses_as_sql
from resources.offline_store import OfflineStore
from resources.on_demand import compute, request_column, stored_column
from resources.online_store import OnlineStore
from resources.online_sync import apply_pushes
from resources.serving_log import ServedColumn, ServingLog
from resources.settings import Settings
from resources.training_set import TrainingSet


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


@dataclass(frozen=True)
class PushResult:
    rows: int  # rows pushed (all logged offline)
    written: int  # items written online
    kept_newer: int  # rows not written online: the stored item was newer


class FeatureStore:
    """Training sets and online reads over one contract and the two stores."""

    def __init__(
        self,
        tables: Mapping[str, FeatureTable],
        offline: OfflineStore,
        online: OnlineStore,
        services: Mapping[str, FeatureService] | None = None,
        on_demand: Mapping[str, OnDemandFeature] | None = None,
        serving_log: ServingLog | None = None,
    ) -> None:
        """`serving_log`: where the online reads log what they served (sampled); None logs
        nothing."""
        self.serving_log = serving_log
        self.contract = Contract(
            tables=dict(tables),
            services=dict(services or {}),
            sources={},
            on_demand=dict(on_demand or {}),
        )
        self.offline = offline
        self.online = online

    @property
    def tables(self) -> Mapping[str, FeatureTable]:
        return self.contract.tables

    @property
    def services(self) -> Mapping[str, FeatureService]:
        return self.contract.services

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> FeatureStore:
        """The dbt project's contract and both stores, from `settings` (default: environment)."""
        settings = settings or Settings.from_env()
        contract = load_project_contract(settings.dbt_project_dir)
        offline = OfflineStore.from_settings(settings)
        rate = settings.serving_log_rate
        return cls(
            contract.tables,
            offline,
            OnlineStore.from_settings(settings),
            contract.services,
            contract.on_demand,
            ServingLog(offline.state_root, sample_rate=rate) if rate > 0 else None,
        )

    def close(self) -> None:
        """Write what the serving log holds (reads after this are not logged)."""
        if self.serving_log is not None:
            self.serving_log.close()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def resolve(
        self, features: Sequence[str] | str, *, full_feature_names: bool = False
    ) -> ResolvedFeatures:
        """`table:feature` and on-demand references (or a feature service name), grouped."""
        return resolve_features(self.contract, features, full_feature_names=full_feature_names)

    def ping(self) -> None:
        """Raises StoreUnavailableError when the online store does not answer."""
        self.online.ping()

    def get_online_features(
        self,
        features: Sequence[str] | str,
        entity_rows: Sequence[Mapping[str, Any]],
        *,
        full_feature_names: bool = False,
        now: datetime | None = None,
        request_id: str | None = None,
    ) -> OnlineFeatures:
        """Latest values for each entity row, TTL applied at read time (as the training-set
        join), then on-demand features computed from them and the rows' request fields.
        With a serving log, the answer is logged (sampled) under `request_id` (default: a
        new one) at `now` (default: the time of the read)."""
        full_feature_names = self._full_names(features, full_feature_names)
        resolved = self.resolve(features, full_feature_names=full_feature_names)
        offline_only = sorted(r.table.name for r in resolved.stored if not r.table.online)
        if offline_only:
            raise FeatureReferenceError(
                f"feature tables {offline_only} are offline only (online: false in their YAML); "
                "read them with get_historical_features"
            )
        # Request fields are checked before the store is asked anything.
        request_fields = [_request_columns(r.feature, entity_rows) for r in resolved.on_demand]
        reads = [(r.table, r.all_features) for r in resolved.stored]
        service = self.services.get(features) if isinstance(features, str) else None
        if service is not None and service.online_colocated and reads:
            per_table = self.colocated(service.name).read(reads, entity_rows, now=now)
        else:
            per_table = self.online.read_tables(reads, entity_rows, now=now)
        rows = [dict(entity) for entity in entity_rows]
        statuses: list[dict[str, str]] = [{} for _ in entity_rows]
        stored_values: dict[str, list[Any]] = {}  # column -> value per entity row
        for request, table_reads in zip(resolved.stored, per_table, strict=True):
            names = request.all_output_names(full_feature_names)
            for name, feature in zip(names, request.all_features, strict=True):
                stored_values[name] = [read.values[feature] for read in table_reads]
            asked = names[: len(request.features)]
            for row, status, read in zip(rows, statuses, table_reads, strict=True):
                row.update(
                    {name: read.values[f] for name, f in zip(asked, request.features, strict=True)}
                )
                status[request.table.name] = read.status.value
        for request, fields in zip(resolved.on_demand, request_fields, strict=True):
            inputs = {
                **fields,
                **{
                    item.name: stored_column(
                        stored_values[resolved.input_column(item, full_feature_names)],
                        item.logical_type,
                    )
                    for item in request.feature.stored_inputs
                },
            }
            values = compute(request.feature, inputs, len(entity_rows))
            for name, output in zip(
                request.output_names(full_feature_names), request.outputs, strict=True
            ):
                for row, value in zip(rows, values[output].to_pylist(), strict=True):
                    row[name] = value
        if self.serving_log is not None:
            self._log_served(
                features, resolved, full_feature_names, rows, statuses, now, request_id
            )
        return OnlineFeatures(rows, statuses)

    def _log_served(
        self,
        features: Sequence[str] | str,
        resolved: ResolvedFeatures,
        full_feature_names: bool,
        rows: list[dict[str, Any]],
        statuses: list[dict[str, str]],
        now: datetime | None,
        request_id: str | None,
    ) -> None:
        columns = [
            ServedColumn(name, request.table.name, stored=True)
            for request in resolved.stored
            for name in request.output_names(full_feature_names)
        ]
        columns += [
            ServedColumn(name, request.feature.name, stored=False)
            for request in resolved.on_demand
            for name in request.output_names(full_feature_names)
        ]
        keys = dict.fromkeys(k for request in resolved.stored for k in request.table.keys)
        self.serving_log.record(
            request_id or uuid.uuid4().hex[:12],
            (now or datetime.now(UTC)).astimezone(UTC),
            features if isinstance(features, str) and features in self.services else None,
            columns,
            list(keys),
            rows,
            statuses,
        )

    def push(
        self,
        table_name: str,
        rows: pd.DataFrame | Sequence[Mapping[str, Any]],
        *,
        now: datetime | None = None,
    ) -> PushResult:
        """Write fresh values of an online table straight to the online store and to the push
        log, so training sets see them point-in-time correctly.

        Each row holds the keys, the event time and the features (the created time defaults
        to now). Rows are checked by the table's schema first; on any problem nothing is
        written. Online, a row replaces an item only if it is newer (event time, then
        created time): a late push never overwrites newer data."""
        from feature_assets.validation.push import pushed_rows

        table = self.contract.tables.get(table_name)
        if table is None:
            raise FeatureReferenceError(
                f"unknown feature table {table_name!r}; known: {sorted(self.tables)}"
            )
        if not table.online:
            raise FeatureReferenceError(
                f"feature table {table_name!r} is offline only (online: false); push needs an "
                "online table"
            )
        checked = pushed_rows(table, rows, now or datetime.now(UTC))
        # The log first: a sync that races this push finds it there and re-applies it.
        self.offline.push_log.append(table, checked)
        written, kept = apply_pushes(
            self.offline, self.online, table, colocations(self.contract, table.name), checked
        )
        return PushResult(rows=checked.num_rows, written=written, kept_newer=kept)

    def colocated(self, service_name: str) -> ColocatedItems:
        """The one-item-per-entity online table of a co-located service."""
        service = self.services[service_name]
        key_table = self.tables[sorted(service.table_names)[0]]
        return ColocatedItems(self.online, service_name, key_table)

    def get_historical_features(
        self,
        entity_df: Any,
        features: Sequence[str] | str,
        *,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
        created_timestamp_cutoff: bool = False,
    ) -> TrainingSet:
        """Point-in-time correct features for each entity row: one output row per input row.

        `entity_df` is a pandas, Arrow or polars frame, a Parquet path, or a SQL query in which
        every feature table is a view of its published partitions. With
        `created_timestamp_cutoff`, a value computed after the entity time is not used either
        (late corrections do not leak).
        """
        full_feature_names = self._full_names(features, full_feature_names)
        resolved = self.resolve(features, full_feature_names=full_feature_names)
        return self.offline.get_historical_features(
            self._entity_source(entity_df),
            list(resolved.stored),
            timestamp_column=timestamp_column,
            full_feature_names=full_feature_names,
            created_timestamp_cutoff=created_timestamp_cutoff,
            on_demand=resolved.on_demand,
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
        resolved = self.resolve(features, full_feature_names=full_feature_names)
        requests = list(resolved.stored)
        entities = directory / saved_training_sets.ENTITIES
        first, last = self.offline.write_entity_rows(
            self._entity_source(entity_df), entities, timestamp_column
        )
        options = {
            "timestamp_column": timestamp_column,
            "full_feature_names": full_feature_names,
            "created_timestamp_cutoff": created_timestamp_cutoff,
        }
        references = [f"{r.table.name}:{f}" for r in requests for f in r.features]
        references += [f"{r.feature.name}:{o}" for r in resolved.on_demand for o in r.outputs]
        inputs = saved_training_sets.describe_inputs(self.offline, requests, first, last)
        self.get_historical_features(entities, references, **options).to_parquet(
            directory / saved_training_sets.DATA
        )
        rows = pq.ParquetFile(directory / saved_training_sets.DATA).metadata.num_rows
        manifest = saved_training_sets.new_manifest(references, options, rows, inputs)
        service = features if isinstance(features, str) and features in self.services else None
        manifest["feature_service"] = service
        saved_training_sets.write_manifest(directory, manifest)
        if service is not None:
            # The model of this service is trained on it: its served values drift from it.
            saved_training_sets.record_reference(self.offline.state_root, service, directory)
        return manifest

    def set_monitoring_reference(self, service: str, directory: str | Path) -> None:
        """Compare `service`'s served values with this saved training set from now on."""
        if service not in self.services:
            raise FeatureReferenceError(
                f"unknown feature service {service!r}; known: {sorted(self.services)}"
            )
        directory = Path(directory)
        if not (directory / saved_training_sets.DATA).exists():
            raise FeatureReferenceError(
                f"feature service {service!r}: {directory} holds no saved training set "
                f"({saved_training_sets.DATA} missing)"
            )
        saved_training_sets.record_reference(self.offline.state_root, service, directory)

    def rebuild_training_set(self, directory: str | Path, output_path: str | Path) -> Path:
        """Rebuild a saved training set from its manifest; refuses if its partitions changed."""
        directory = Path(directory)
        manifest = saved_training_sets.read_manifest(directory)
        requests = list(
            self.resolve(
                manifest["features"], full_feature_names=manifest["options"]["full_feature_names"]
            ).stored
        )
        entities = directory / manifest["entity_rows"]
        first, last = self.offline.entity_time_range(
            entities, manifest["options"]["timestamp_column"]
        )
        changes = saved_training_sets.changed_partitions(
            manifest["tables"],
            saved_training_sets.describe_inputs(self.offline, requests, first, last),
        )
        if changes:
            raise TrainingSetDriftError(
                f"training set {directory}: partitions changed since it was built: {', '.join(changes)}"
            )
        return self.get_historical_features(
            entities, manifest["features"], **manifest["options"]
        ).to_parquet(output_path)

    def _full_names(self, features: Sequence[str] | str, requested: bool) -> bool:
        return uses_full_feature_names(self.contract, features, requested)

    def _entity_source(self, entity_df: Any) -> Any:
        """A string that parses as SQL runs over views of the published tables; any other string
        (and a Path) is a Parquet path; frames pass through."""
        if isinstance(entity_df, str) and parses_as_sql(entity_df):
            return self.offline.query(entity_df, list(self.tables.values()))
        return entity_df


def _request_columns(
    feature: OnDemandFeature, entity_rows: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The request fields of one on-demand feature, one typed column each, from entity rows."""
    columns = {}
    for item in feature.request_inputs:
        missing = [i for i, entity in enumerate(entity_rows) if item.name not in entity]
        if missing:
            raise EntityInputError(
                f"on-demand feature {feature.name!r}: entity row {missing[0]} lacks request "
                f"field {item.name!r}"
            )
        columns[item.name] = request_column(
            feature, item.name, item.logical_type, [e[item.name] for e in entity_rows]
        )
    return columns
