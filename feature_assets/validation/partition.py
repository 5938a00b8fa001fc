"""The pandera schema of a feature table, derived from its contract, and its verdict."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd
import pandera.pandas as pa

from feature_assets.kernel.contract import FeatureTable
from feature_assets.kernel.errors import PartitionValidationError, PushValidationError
from feature_assets.validation.checks import CHECKS
from feature_assets.validation.compiled import staged_rows_pass
from resources.offline_store import OfflineStore

PANDAS_DTYPES = {"int": "Int64", "float": "float64", "bool": "boolean"}


SCHEMA_MESSAGES = {
    "column_in_schema": "is not declared in the model's YAML",
    "column_in_dataframe": "is declared in the model's YAML but missing from the built rows",
}


def partition_schema(
    table: FeatureTable, days: list[date], *, unique: bool = True
) -> pa.DataFrameSchema:
    """`unique=False` leaves out the keys-and-event-time uniqueness (checked across batches
    by DuckDB when the staged rows are validated batch by batch)."""
    columns = {
        key: pa.Column(PANDAS_DTYPES.get(table.key_types[key]), nullable=False, coerce=True)
        for key in table.keys
    }
    columns[table.timestamp] = pa.Column(nullable=False)
    wanted = pd.to_datetime(pd.Series(days, dtype=object))
    columns[table.partition_column] = pa.Column(
        nullable=False,
        checks=pa.Check(
            # Compared as timestamps: `.dt.date` makes a Python object per row.
            lambda s: pd.to_datetime(s).dt.normalize().isin(wanted),
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
        unique=[*table.keys, table.timestamp] if unique else None,
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
) -> list[DayVerdict]:
    """A verdict per day for a run's staged rows: the time columns' exact types as the file
    declares them (a wrong type fails every day), then the pandera schema, each failure
    charged to the day of its row (one not tied to a built day fails every day).

    Memory stays flat whatever the size: rows one DuckDB aggregate proves clean are not
    turned into pandas at all (`compiled`); otherwise pandera sees one batch of rows at a time,
    and the one check across batches (keys and event time unique) is a DuckDB aggregate that spills
    to disk past the store's audit memory limit. Failure cases are kept as samples
    (`SAMPLE_CASES` per column, check and day) and counted in full."""
    types = store.staged_types(table, run_id)
    try:
        check_time_types(table, types, days)
    except PartitionValidationError as error:
        return [DayVerdict(day, str(error)) for day in days]
    samples, totals = [], Counter()
    # Rows one DuckDB pass proves clean skip pandera (which would find nothing).
    if not staged_rows_pass(store, table, run_id, days, types):
        schema = partition_schema(table, days, unique=False)
        for batch in store.staged_batches(table, run_id):
            try:
                schema.validate(batch, lazy=True)
            except pa.errors.SchemaErrors as errors:
                found = _with_days(table, errors.failure_cases, batch)
                _keep(found, samples, totals)
    duplicates = store.staged_duplicates(table, run_id)
    if len(duplicates):
        _keep(_duplicate_cases(table, duplicates), samples, totals)
    if not samples:
        return [DayVerdict(day) for day in days]
    failures = pd.concat(samples, ignore_index=True).drop_duplicates(
        ["column", "check", "failure_case", "index"]
    )
    everywhere = ~failures["day"].isin(days)
    verdicts = []
    for day in days:
        mine = failures[everywhere | (failures["day"] == day)]
        counts = {
            group: n for group, n in totals.items() if group[2] == day or group[2] not in days
        }
        verdicts.append(
            DayVerdict(day, _describe(table, [day], mine, counts), mine.drop(columns="day"))
            if len(mine)
            else DayVerdict(day)
        )
    return verdicts


# Failure cases kept per column, check and day (every one is counted).
SAMPLE_CASES = 100


def _with_days(table: FeatureTable, failures: pd.DataFrame, batch: pd.DataFrame) -> pd.DataFrame:
    """Failure cases with the day of their row (None for those tied to no row)."""
    row_days = (
        pd.to_datetime(batch[table.partition_column], errors="coerce").dt.date
        if table.partition_column in batch
        else pd.Series(dtype=object)
    )
    failures = failures.copy()
    failures["day"] = failures["index"].map(lambda i: row_days.get(i) if pd.notna(i) else None)
    return failures


def _keep(failures: pd.DataFrame, samples: list[pd.DataFrame], totals: Counter) -> None:
    """Count every failure; keep the first `SAMPLE_CASES` of each column, check and day."""
    groups = ["column", "check", "day"]
    for group, n in failures.groupby(groups, dropna=False, sort=False).size().items():
        totals[tuple(None if pd.isna(v) else v for v in group)] += n
    kept = pd.concat([*samples, failures], ignore_index=True) if samples else failures
    samples[:] = [kept.groupby(groups, dropna=False, sort=False).head(SAMPLE_CASES)]


def _duplicate_cases(table: FeatureTable, duplicates: pd.DataFrame) -> pd.DataFrame:
    """DuckDB's duplicate rows as pandera reports them: one case per row and key column."""
    return pd.DataFrame(
        [
            {
                "schema_context": "DataFrameSchema",
                "column": column,
                "check": "multiple_fields_uniqueness",
                "check_number": None,
                "failure_case": row[column],
                "index": row["__row"],
                "day": pd.Timestamp(row["__day"]).date(),
            }
            for row in duplicates.to_dict("records")
            for column in (*table.keys, table.timestamp)
        ]
    )


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


def _describe(
    table: FeatureTable,
    days: list[date],
    failures: pd.DataFrame,
    totals: Mapping[tuple, int] | None = None,
) -> str:
    """The message; `totals` counts every failure per (column, check, day) where `failures`
    holds samples only."""

    def total(column: object, check: str, shown: int) -> int:
        if totals is None:
            return shown
        column = None if pd.isna(column) else column
        return sum(n for (c, k, _), n in totals.items() if c == column and k == check) or shown

    lines = [_heading(table, days)]
    duplicates = failures["check"] == "multiple_fields_uniqueness"
    if duplicates.any():
        rows = (
            total(table.keys[0], "multiple_fields_uniqueness", 0)
            or failures.loc[duplicates, "index"].nunique()
        )
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
        count = total(column, check, len(cases))
        lines.append(f"  {label}: {check} failed for {count} value(s), e.g. {examples}")
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
