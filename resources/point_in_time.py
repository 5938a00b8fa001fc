"""The point-in-time join as one DuckDB query.

Per entity row and table: candidate rows share the keys and have event time <= the entity
time (inclusive) and, with a TTL, >= entity time - ttl; with the created-time cutoff, also
created time <= entity time. The winner is the latest event time, then the latest created
time, then the latest partition (the rule the online sync uses). Rows without a candidate
keep NULL features; output order and duplicates follow the input.

Three plans give that answer, fastest first:
- ASOF join straight on the feature rows, when no two rows can share keys and event time
  (the publish check makes (keys, event time) unique within a partition, and event times
  lie within their partition's day, so only midnight rows at a partition boundary can tie);
- ASOF join after settling such ties;
- a range join ranked per entity row, for the created-time cutoff, which ASOF cannot express.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from feature_assets.kernel.contract import FeatureRequest, FeatureTable
from resources.entity_source import ADDED_COLUMNS
from resources.sql import ident


class JoinPlan(Enum):
    ASOF = "asof"
    ASOF_SETTLE_TIES = "asof_settle_ties"
    RANGE_CUTOFF = "range_cutoff"


def point_in_time_query(
    entity_relation: str,
    requests: list[FeatureRequest],
    sources: dict[str, str],
    plans: dict[str, JoinPlan],
    *,
    full_feature_names: bool = False,
) -> str:
    """SQL over `entity_relation` (with `__entity_row`, `__entity_ts` and `__entity_ts_ceil`,
    see `entity_source`) and one source per table."""
    ctes: list[str] = []
    joins: list[str] = []
    selected: list[str] = []
    for i, request in enumerate(requests):
        table, plan, alias = request.table, plans[request.table.name], f"f{i}"
        outputs = request.all_output_names(full_feature_names)
        if plan is JoinPlan.RANGE_CUTOFF:
            ctes.append(_ranked_cutoff_cte(alias, request, sources[table.name], entity_relation))
            joins.append(f"LEFT JOIN {alias} ON e.__entity_row = {alias}.__entity_row")
            selected += [
                f"{alias}.{ident(f)} AS {ident(o)}"
                for f, o in zip(request.all_features, outputs, strict=True)
            ]
            continue
        source = sources[table.name]
        if plan is JoinPlan.ASOF_SETTLE_TIES:
            ctes.append(_settled_ties_cte(f"{alias}_rows", table, source))
            source = f"{alias}_rows"
        keys = [ident(key) for key in table.keys]
        on = [f"e.{key} = {alias}.{key}" for key in keys]
        on.append(f"e.__entity_ts >= {alias}.{ident(table.timestamp)}")
        joins.append(f"ASOF LEFT JOIN {source} AS {alias} ON {' AND '.join(on)}")
        # ASOF finds the latest row at or before the entity time; if that one is past its
        # TTL every earlier one is too, so a NULL is the right answer.
        in_ttl = _within_ttl(table, f"{alias}.{ident(table.timestamp)}")
        selected += [
            f"CASE WHEN {in_ttl} THEN {alias}.{ident(f)} END AS {ident(o)}"
            for f, o in zip(request.all_features, outputs, strict=True)
        ]
    with_clause = f"WITH {', '.join(ctes)}\n" if ctes else ""
    return (
        f"{with_clause}SELECT e.* EXCLUDE ({ADDED_COLUMNS}), {', '.join(selected)}\n"
        f"FROM {entity_relation} AS e\n" + "\n".join(joins) + "\nORDER BY e.__entity_row"
    )


def _within_ttl(table: FeatureTable, event_ts: str) -> str:
    if table.ttl is None:
        return f"{event_ts} IS NOT NULL"
    ttl_us = int(table.ttl.total_seconds() * 1_000_000)
    # The ceiling: a row exactly ttl before a sub-microsecond entity time is already too old.
    return f"{event_ts} >= e.__entity_ts_ceil - to_microseconds({ttl_us})"


def winner_order(
    table: FeatureTable, alias: str = "", quote: Callable[[str], str] = ident
) -> list[str]:
    """The one tie-break rule shared by training sets and the online syncs, as ORDER BY terms
    over `winner_columns` (`quote`: the engine's identifiers, DuckDB's by default)."""
    return [f"{alias}{quote(table.timestamp)} DESC", *_tie_order(table, alias, quote)]


def winner_columns(table: FeatureTable) -> list[str]:
    """The columns the winner rule ranks by, in its order."""
    created = [table.created_timestamp] if table.created_timestamp else []
    return [table.timestamp, *created, table.partition_column]


def _tie_order(
    table: FeatureTable, alias: str = "", quote: Callable[[str], str] = ident
) -> list[str]:
    """The rule among rows with the same keys and event time."""
    created = (
        [f"{alias}{quote(table.created_timestamp)} DESC NULLS LAST"]
        if table.created_timestamp
        else []
    )
    return [*created, f"{alias}{quote(table.partition_column)} DESC"]


def _settled_ties_cte(name: str, table: FeatureTable, source: str) -> str:
    keys = ", ".join(ident(key) for key in table.keys)
    return (
        f"{name} AS (\n"
        f"    SELECT * FROM {source}\n"
        f"    QUALIFY row_number() OVER (PARTITION BY {keys}, {ident(table.timestamp)}\n"
        f"        ORDER BY {', '.join(_tie_order(table))}) = 1\n)"
    )


def _ranked_cutoff_cte(
    alias: str, request: FeatureRequest, source: str, entity_relation: str
) -> str:
    table = request.table
    ts = f"f.{ident(table.timestamp)}"
    conditions = [f"e.{ident(k)} = f.{ident(k)}" for k in table.keys]
    conditions.append(f"{ts} <= e.__entity_ts")
    if table.ttl is not None:
        conditions.append(_within_ttl(table, ts))
    if table.created_timestamp:
        conditions.append(f"f.{ident(table.created_timestamp)} <= e.__entity_ts")
    order = winner_order(table, "f.")
    return (
        f"{alias} AS (\n"
        f"    SELECT e.__entity_row, {', '.join(f'f.{ident(x)}' for x in request.all_features)}\n"
        f"    FROM {entity_relation} AS e JOIN {source} AS f ON {' AND '.join(conditions)}\n"
        f"    QUALIFY row_number() OVER (PARTITION BY e.__entity_row ORDER BY {', '.join(order)}) = 1\n)"
    )
