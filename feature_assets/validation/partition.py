"""The pandera schema of a feature table, derived from its contract, and its verdict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd
import pandera.pandas as pa

from feature_assets.kernel.contract import FeatureTable
from feature_assets.kernel.errors import PartitionValidationError, PushValidationError
from feature_assets.validation.checks import CHECKS
from resources.offline_store import OfflineStore

PANDAS_DTYPES = {"int": "Int64", "float": "float64", "bool": "boolean"}


SCHEMA_MESSAGES = {
    "column_in_schema": "is not declared in the model's YAML",
    "column_in_dataframe": "is declared in the model's YAML but missing from the built rows",
}


def partition_schema(table: FeatureTable, days: list[date]) -> pa.DataFrameSchema:
    columns = {
        key: pa.Column(PANDAS_DTYPES.get(table.key_types[key]), nullable=False, coerce=True)
        for key in table.keys
    }
    columns[table.timestamp] = pa.Column(nullable=False)
    columns[table.partition_column] = pa.Column(
        nullable=False,
        checks=pa.Check(
            lambda s: pd.to_datetime(s).dt.date.isin(set(days)),
            error=f"{table.partition_column} outside the partitions being built",
        ),
    )
    if table.created_timestamp:
        columns[table.created_timestamp] = pa.Column(nullable=False)
    for feature in table.features:
        checks = [CHECKS[name](arg) for name, arg in feature.checks.items()]
        columns[feature.name] = pa.Column(
            PANDAS_DTYPES.get(feature.logical_type),
            nullable=feature.nullable,
            checks=checks,
            coerce=True,
        )
    partition, event_time = table.partition_column, table.timestamp
    return pa.DataFrameSchema(
        columns,
        strict=True,
        unique=[*table.keys, table.timestamp],
        report_duplicates="all",
        checks=[
            # Lets readers prune partitions: a row's event time lies within its partition day
            # (midnight after it included, for values that cover the whole day).
            pa.Check(
                lambda df: (
                    (pd.to_datetime(df[event_time]) >= pd.to_datetime(df[partition]))
                    & (
                        pd.to_datetime(df[event_time])
                        <= pd.to_datetime(df[partition]) + timedelta(days=1)
                    )
                ),
                error=f"{event_time} outside its {partition} day",
            )
        ],
    )


# Published times are naive UTC microseconds, like the dbt macro writes them: the join compares
# them with entity times floored to the microsecond, and the midnight-tie test reads their
# Parquet statistics as such. A zone or nanoseconds from another writer would break both.
EXACT_TYPES = {"timestamp": "TIMESTAMP", "date": "DATE"}


@dataclass(frozen=True)
class DayVerdict:
    """One built day's verdict: no problem, or the message naming table, partition and
    columns with pandera's failure cases of that day."""

    day: date
    problem: str | None = None
    failures: pd.DataFrame | None = None


def audit_staged(
    store: OfflineStore, table: FeatureTable, run_id: str, days: list[date]
) -> tuple[pd.DataFrame, list[DayVerdict]]:
    """A run's staged rows and a verdict per day: the time columns' exact types as the file
    declares them (a wrong type fails every day), then the pandera schema, each failure
    charged to the day of its row (one not tied to a built day fails every day)."""
    try:
        check_time_types(table, store.staged_types(table, run_id), days)
    except PartitionValidationError as error:
        return pd.DataFrame(), [DayVerdict(day, str(error)) for day in days]
    frame = store.read_staged(table, run_id)
    try:
        return partition_schema(table, days).validate(frame, lazy=True), [
            DayVerdict(day) for day in days
        ]
    except pa.errors.SchemaErrors as errors:
        failures = errors.failure_cases
    row_days = (
        pd.to_datetime(frame[table.partition_column], errors="coerce").dt.date
        if table.partition_column in frame
        else pd.Series(dtype=object)
    )
    failure_days = failures["index"].map(lambda i: row_days.get(i) if pd.notna(i) else None)
    everywhere = ~failure_days.isin(days)
    verdicts = []
    for day in days:
        mine = failures[everywhere | (failure_days == day)]
        verdicts.append(
            DayVerdict(day, _describe(table, [day], mine), mine) if len(mine) else DayVerdict(day)
        )
    return frame, verdicts


def check_time_types(table: FeatureTable, types: Mapping[str, str], days: list[date]) -> None:
    expected = {table.timestamp: "timestamp", table.partition_column: "date"}
    if table.created_timestamp:
        expected[table.created_timestamp] = "timestamp"
    problems = [
        f"  column {column!r}: is {types[column]}, must be {EXACT_TYPES[kind]} "
        f"({'naive UTC, microseconds' if kind == 'timestamp' else 'a date'}); "
        f"cast it in the model"
        for column, kind in expected.items()
        if column in types and types[column] != EXACT_TYPES[kind]
    ]
    if problems:
        raise PartitionValidationError("\n".join([_heading(table, days), *problems]))


def validate_partition(table: FeatureTable, frame: pd.DataFrame, days: list[date]) -> pd.DataFrame:
    """Validated rows, or PartitionValidationError naming every failing column."""
    schema = partition_schema(table, days)
    try:
        return schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        raise PartitionValidationError(_describe(table, days, errors.failure_cases)) from None


def _heading(table: FeatureTable, days: list[date]) -> str:
    span = days[0].isoformat() if len(days) == 1 else f"{days[0]}..{days[-1]}"
    return f"feature table {table.name!r}, partition {span}: validation failed"


def _describe(table: FeatureTable, days: list[date], failures: pd.DataFrame) -> str:
    lines = [_heading(table, days)]
    duplicates = failures["check"] == "multiple_fields_uniqueness"
    if duplicates.any():
        rows = failures.loc[duplicates, "index"].nunique()
        keys = failures.loc[duplicates & (failures["column"] == table.keys[0]), "failure_case"]
        examples = ", ".join(repr(v) for v in keys.drop_duplicates().head(3).tolist())
        lines.append(
            f"  duplicate key: {rows} rows share columns {[*table.keys, table.timestamp]}, "
            f"e.g. {table.keys[0]}={examples}"
        )
    structural = failures["check"].isin(list(SCHEMA_MESSAGES))
    for check, column in failures.loc[structural, ["check", "failure_case"]].itertuples(
        index=False
    ):
        lines.append(f"  column {column!r}: {SCHEMA_MESSAGES[check]}")
    for (column, check), cases in failures[~duplicates & ~structural].groupby(
        ["column", "check"], dropna=False, sort=True
    ):
        label = "table" if pd.isna(column) else f"column {column!r}"
        examples = ", ".join(repr(v) for v in cases["failure_case"].head(3).tolist())
        lines.append(f"  {label}: {check} failed for {len(cases)} value(s), e.g. {examples}")
    return "\n".join(lines)


PUSH_SCHEMA_MESSAGES = {
    "column_in_schema": "is not a column of the table",
    "column_in_dataframe": "missing (a push carries the keys, the event time and every feature)",
}


def validate_pushed(table: FeatureTable, frame: pd.DataFrame) -> pd.DataFrame:
    """Pushed rows checked by the table's own schema (the partition column derived from each
    row's event time); PushValidationError names the row and column of each failure."""
    days = sorted(set(frame[table.partition_column])) if len(frame) else []
    try:
        return partition_schema(table, days).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        failures = errors.failure_cases
    lines = [f"push to feature table {table.name!r}: nothing written"]
    for case in failures.head(10).itertuples(index=False):
        if case.check in PUSH_SCHEMA_MESSAGES:
            lines.append(f"  column {case.failure_case!r}: {PUSH_SCHEMA_MESSAGES[case.check]}")
            continue
        row = "" if pd.isna(case.index) else f"row {int(case.index)}, "
        column = "" if pd.isna(case.column) else f"column {case.column!r}: "
        check = (
            "duplicate keys and event time"
            if case.check == "multiple_fields_uniqueness"
            else case.check
        )
        value = (
            case.failure_case.item() if hasattr(case.failure_case, "item") else case.failure_case
        )
        lines.append(f"  {row}{column}{check} failed (value {value!r})")
    if len(failures) > 10:
        lines.append(f"  ... {len(failures) - 10} more")
    raise PushValidationError("\n".join(lines))
