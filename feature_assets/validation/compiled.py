"""The partition schema's rules compiled to one DuckDB aggregate over the staged file.

A clean build (the usual case) is then proven clean by one scan, without turning millions of
rows into pandas batches. The proof is one-sided: any rule that fails, and any column or check
this module cannot compile with pandera's exact meaning, sends the rows to pandera, which finds
and describes the failures as before. So a verdict never differs from pandera's; only its cost
does.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from feature_assets.kernel.contract import NUMBER_CHECKS, FeatureTable
from resources.offline_store import OfflineStore
from resources.sql import ident, literal

# Staged types whose values pandera's coercion to the column's dtype (`partition.PANDAS_DTYPES`)
# takes as they are, per logical type. Other types (DECIMAL, UBIGINT beyond Int64, ...) go to
# pandera, which decides.
INTEGERS = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"}
)
UNCOERCED_TYPES = {
    "int": INTEGERS,
    "float": frozenset({"FLOAT", "DOUBLE"}),
    "bool": frozenset({"BOOLEAN"}),
    "str": frozenset({"VARCHAR"}),
    "timestamp": frozenset({"TIMESTAMP"}),
    "date": frozenset({"DATE"}),
}
COMPARISONS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
assert set(COMPARISONS) == set(NUMBER_CHECKS)


def staged_rows_pass(
    store: OfflineStore,
    table: FeatureTable,
    run_id: str,
    days: list[date],
    types: dict[str, str],
) -> bool:
    """True only if one DuckDB pass shows every staged row passes the table's pandera
    schema (uniqueness aside: checked apart); `types` are the staged columns' types."""
    rules = compile_rules(table, days, types)
    if rules is None:
        return False
    return not any(store.staged_aggregate(table, run_id, rules))


def compile_rules(table: FeatureTable, days: list[date], types: dict[str, str]) -> list[str] | None:
    """One `count_if(<violation>)` per rule, or None when a column or check has no exact
    compiled form (pandera then checks the rows)."""
    declared = table.column_types
    if set(types) != set(declared):
        return None  # strict schema: pandera names the extra or missing columns
    if any(types[c] not in UNCOERCED_TYPES.get(kind, ()) for c, kind in declared.items()):
        return None
    required = [*table.keys, table.timestamp, table.partition_column]
    if table.created_timestamp:
        required.append(table.created_timestamp)
    required += [f.name for f in table.features if not f.nullable]
    rules = [_missing(c, declared[c]) for c in required]
    partition, event = ident(table.partition_column), ident(table.timestamp)
    wanted = ", ".join(f"DATE {literal(day.isoformat())}" for day in days) or "NULL"
    rules.append(f"{partition} IS NOT NULL AND {partition} NOT IN ({wanted})")
    # Null times fail the rule above; pandera's frame check fails them too.
    rules.append(
        f"{event} IS NULL OR {partition} IS NULL OR NOT "
        f"({event} >= {partition} AND {event} <= {partition} + INTERVAL 1 DAY)"
    )
    for feature in table.features:
        for name, argument in feature.checks.items():
            rule = _check(ident(feature.name), feature.logical_type, name, argument)
            if rule is None:
                return None
            rules.append(rule)
    return [f"count_if({rule})" for rule in rules]


def _missing(column: str, kind: str) -> str:
    # pandas holds a float NULL as NaN, and pandera counts NaN as null.
    name = ident(column)
    return f"{name} IS NULL OR isnan({name})" if kind == "float" else f"{name} IS NULL"


def _check(name: str, kind: str, check: str, argument: Any) -> str | None:
    """A value failing the check; pandera skips nulls (NaN included) in column checks."""
    present = f"{name} IS NOT NULL" + (f" AND NOT isnan({name})" if kind == "float" else "")
    if check in COMPARISONS:
        if kind not in ("int", "float") or not _number(argument):
            return None
        return f"{present} AND NOT ({name} {COMPARISONS[check]} {argument!r})"
    if check == "isin":
        values = list(argument) if isinstance(argument, list | tuple | set | frozenset) else None
        if not values:
            return None
        if kind in ("int", "float") and all(_number(v) for v in values):
            listed = ", ".join(repr(v) for v in values)
        elif kind == "str" and all(isinstance(v, str) for v in values):
            listed = ", ".join(literal(v) for v in values)
        else:
            return None
        return f"{present} AND NOT ({name} IN ({listed}))"
    return None  # str_matches: Python's `re` and DuckDB's RE2 differ; pandera decides


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
