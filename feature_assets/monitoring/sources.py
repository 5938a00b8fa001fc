"""What drift compares for one feature service on one day.

Served: the values the service's reads returned that day (the serving log). A service that
reads an offline-only table is never served online; its "served" values are the recent
window of its tables instead (the week ending that day).

Reference: the saved training set its model was trained on (`save_training_set` with the
service's name records it; `set_monitoring_reference` changes it), else the same source over
the week before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feature_assets import saved_training_sets
from feature_assets.kernel.contract import Contract, FeatureService, resolve_features
from feature_assets.sdk import FeatureStore
from resources.serving_log import read_served

WINDOW_DAYS = 7
NUMERIC_TYPES = {"int", "float", "bool"}


@dataclass(frozen=True)
class MonitoredColumn:
    name: str  # as a read returns it (and a training set holds it)
    source: str  # the feature table or on-demand feature
    kind: str  # "numeric" or "categorical"
    stored: bool


@dataclass(frozen=True)
class Sample:
    """Values per column, and where they came from (in words, for the report)."""

    label: str
    rows: int
    values: dict[str, pd.Series]


def monitored_columns(contract: Contract, service: FeatureService) -> list[MonitoredColumn]:
    """The columns drift compares: every feature of the service as a read returns it; for a
    service that is not served online, its stored features only."""
    resolved = resolve_features(
        contract, service.name, full_feature_names=service.full_feature_names
    )
    columns = []
    for request in resolved.stored:
        names = request.output_names(service.full_feature_names)
        for name, feature in zip(names, request.features, strict=True):
            kind = request.table.feature(feature).logical_type
            columns.append(MonitoredColumn(name, request.table.name, _kind(kind), stored=True))
    for request in resolved.on_demand:
        types = {o.name: o.logical_type for o in request.feature.outputs}
        names = request.output_names(service.full_feature_names)
        for name, output in zip(names, request.outputs, strict=True):
            columns.append(
                MonitoredColumn(name, request.feature.name, _kind(types[output]), stored=False)
            )
    return columns if served_online(contract, service) else [c for c in columns if c.stored]


def _kind(logical_type: str) -> str:
    return "numeric" if logical_type in NUMERIC_TYPES else "categorical"


def served_online(contract: Contract, service: FeatureService) -> bool:
    """Whether the service can be read online at all (every table it reads is online)."""
    return all(contract.tables[name].online for name in service.table_names)


def served_sample(
    store: FeatureStore, service: FeatureService, columns: list[MonitoredColumn], days: list[date]
) -> Sample:
    """The logged answers of the service's reads on `days`, one series per column."""
    logged = read_served(
        store.offline.state_root,
        days,
        feature_service=service.name,
        columns=("feature", "value_number", "value_text"),
    )
    feature = logged.column("feature")
    values = {}
    for column in columns:
        field = "value_number" if column.kind == "numeric" else "value_text"
        rows = logged.column(field).filter(pc.equal(feature, column.name))
        values[column.name] = rows.to_pandas()
    # Every logged read holds every column of the service.
    reads = len(values[columns[0].name]) if columns else 0
    return Sample(f"served {_span(days)}: {reads:,} entity reads (serving log)", reads, values)


def table_sample(store: FeatureStore, columns: list[MonitoredColumn], days: list[date]) -> Sample:
    """The stored columns' published values over `days` (on-demand columns need request
    fields, which only reads and training sets carry: left out)."""
    values: dict[str, pd.Series] = {}
    rows = 0
    for source in dict.fromkeys(c.source for c in columns if c.stored):
        table = store.tables[source]
        frames = [
            store.offline.read_partition(table, day)
            for day in days
            if store.offline.is_published(table, day)
        ]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        rows = max(rows, len(frame))
        for column in columns:
            if column.stored and column.source == source:
                feature = column.name.removeprefix(f"{source}__")
                values[column.name] = (
                    frame[feature] if feature in frame else pd.Series([], dtype=object)
                )
    return Sample(f"published rows {_span(days)}: {rows:,} rows", rows, values)


def training_set_sample(directory: Path, columns: list[MonitoredColumn]) -> Sample:
    names = [c.name for c in columns]
    present = set(pq.read_schema(directory / saved_training_sets.DATA).names)
    frame = pq.read_table(
        directory / saved_training_sets.DATA, columns=[n for n in names if n in present]
    ).to_pandas()
    values = {n: frame[n] for n in names if n in frame}
    return Sample(f"training set {directory} ({len(frame):,} rows)", len(frame), values)


def samples_for(
    store: FeatureStore, service: FeatureService, day: date
) -> tuple[list[MonitoredColumn], Sample, Sample]:
    """(columns, served, reference) of a service on `day`."""
    columns = monitored_columns(store.contract, service)
    online = served_online(store.contract, service)
    if online:
        current = served_sample(store, service, columns, [day])
    else:
        current = table_sample(store, columns, _days(day, WINDOW_DAYS))
    trained_on = saved_training_sets.reference_for(store.offline.state_root, service.name)
    if trained_on is not None:
        reference = training_set_sample(trained_on, columns)
    elif online:
        before = _days(day - timedelta(days=1), WINDOW_DAYS)
        reference = served_sample(store, service, columns, before)
    else:
        reference = table_sample(store, columns, _days(day - timedelta(WINDOW_DAYS), WINDOW_DAYS))
    return columns, current, reference


def _days(last: date, count: int) -> list[date]:
    return [last - timedelta(days=n) for n in range(count - 1, -1, -1)]


def _span(days: list[date]) -> str:
    if not days:
        return "(no days)"
    return str(days[0]) if len(days) == 1 else f"{days[0]}..{days[-1]}"
