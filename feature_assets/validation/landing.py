"""The landing gate: a raw source's landing days checked before any feature table reads them.

Per day (per file for a dimension): every declared column present with its declared type
(as the Parquet files declare it, so nothing is coerced into passing), then pandera over the
rows: no null key or timestamp, `unique_key` unique, `timestamp` inside the landing day,
each column's checks. A day with no rows, or a day of the run that has not landed, fails
unless its folder holds an `_EMPTY` file. Problems name the source, day, column and rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd
import pandera.pandas as pa
from pyarrow import DataType

from feature_assets.kernel.contract import FeatureTable, RawSource
from feature_assets.kernel.dates import days_between
from feature_assets.kernel.names import EMPTY_DAY_MARKER
from feature_assets.validation.checks import CHECKS
from resources.landing_zone import LandedData, LandingZone, logical_type

EXAMPLES = 3


@dataclass
class GateVerdict:
    source: RawSource
    rows: dict[str, int] = field(default_factory=dict)  # day (or "all") -> rows checked
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        if self.passed:
            return f"raw source {self.source.key!r}: {len(self.rows)} landing day(s) passed"
        return "\n".join([f"raw source {self.source.key!r}: landing gate failed", *self.problems])


def days_read(
    source: RawSource, tables: Sequence[FeatureTable], first: date, last: date
) -> tuple[list[date], list[date]]:
    """(lookback days, run days): feature day f reads landing days [f - window, f]."""
    reach = max((t.window.days for t in tables if source.key in t.source_tables), default=0)
    lookback = days_between(first - timedelta(days=reach), first - timedelta(days=1))
    return lookback, days_between(first, last)


def check_landing(
    zone: LandingZone, source: RawSource, lookback: Sequence[date], run_days: Sequence[date]
) -> GateVerdict:
    """Gate a daily source's days: run days must have landed; lookback days are checked when
    they have (days before the data starts have not)."""
    verdict = GateVerdict(source)
    for day in [*lookback, *run_days]:
        where = f"landing day {day.isoformat()}"
        if not zone.landed(source, day):
            if day in run_days:
                verdict.problems.append(
                    f"  {where}: has not landed ({zone.folder(source, day)} is missing)"
                )
            continue
        _check(verdict, zone.read(source, day), day, where, zone.marked_empty(source, day))
    return verdict


def check_dimension(zone: LandingZone, source: RawSource) -> GateVerdict:
    verdict = GateVerdict(source)
    _check(verdict, zone.read(source), None, f"files under {zone.folder(source)}", False)
    return verdict


def _check(
    verdict: GateVerdict, data: LandedData, day: date | None, where: str, marked_empty: bool
) -> None:
    source = verdict.source
    verdict.rows[day.isoformat() if day else "all"] = len(data.rows)
    if len(data.rows) == 0:
        if not marked_empty:
            verdict.problems.append(
                f"  {where}: no rows; if the day is truly empty, add an {EMPTY_DAY_MARKER!r} "
                "file to its folder"
            )
        return
    problems = _type_problems(source, data.types)
    if not problems:
        problems = _value_problems(source, data.rows, day)
    verdict.problems += [f"  {where}: {problem}" for problem in problems]


def _type_problems(source: RawSource, types: Mapping[str, DataType]) -> list[str]:
    problems = []
    for column in source.file_columns:
        if column.name not in types:
            problems.append(f"column {column.name!r} is missing (columns: {sorted(types)})")
        elif column.logical_type and logical_type(types[column.name]) != column.logical_type:
            problems.append(
                f"column {column.name!r} landed as {types[column.name]}, "
                f"declared {column.data_type}"
            )
    return problems


def gate_schema(source: RawSource, day: date | None) -> pa.DataFrameSchema:
    required = {*source.unique_key, *([source.timestamp] if source.timestamp else [])}
    columns = {
        column.name: pa.Column(
            nullable=column.nullable and column.name not in required,
            checks=[CHECKS[name](argument) for name, argument in column.checks.items()],
        )
        for column in source.file_columns
    }
    checks = []
    if source.timestamp and day is not None:
        start, end = pd.Timestamp(day), pd.Timestamp(day + timedelta(days=1))
        ts = source.timestamp
        checks.append(
            pa.Check(
                lambda df: (df[ts] >= start) & (df[ts] < end),
                error=f"{ts} outside the landing day",
            )
        )
    return pa.DataFrameSchema(
        columns,
        checks=checks,
        unique=list(source.unique_key) or None,
        report_duplicates="all",
    )


def _value_problems(source: RawSource, rows: pd.DataFrame, day: date | None) -> list[str]:
    try:
        gate_schema(source, day).validate(rows, lazy=True)
    except pa.errors.SchemaErrors as errors:
        return _describe(source, rows, errors.failure_cases)
    return []


def _describe(source: RawSource, rows: pd.DataFrame, failures: pd.DataFrame) -> list[str]:
    problems = []
    for (column, check), cases in failures.groupby(["column", "check"], dropna=False, sort=True):
        positions = pd.to_numeric(cases["index"], errors="coerce").dropna().astype(int).unique()
        if check == "multiple_fields_uniqueness":
            label, what = f"unique_key {list(source.unique_key)}", "share a key"
        elif pd.isna(column):
            label, what = "rows", f"fail {check}"
        else:
            label, what = f"column {column!r}", f"fail {check}"
        count = len(positions) if len(positions) else len(cases)
        examples = _example_rows(source, rows, positions, column)
        problems.append(f"{label}: {count} row(s) {what}{examples}")
    return problems


def _example_rows(
    source: RawSource, rows: pd.DataFrame, positions: Sequence[int], column: object
) -> str:
    if not len(positions):
        return ""
    shown = [*source.unique_key, *([source.timestamp] if source.timestamp else [])]
    if isinstance(column, str) and column in rows.columns and column not in shown:
        shown.append(column)
    sample = rows.iloc[list(positions[:EXAMPLES])][shown]
    described = [
        "{"
        + ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in record.items())
        + "}"
        for record in sample.astype(object).to_dict("records")
    ]
    return ", e.g. " + "; ".join(described)
