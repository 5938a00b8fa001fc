"""The point-in-time join as one DuckDB query.

Per entity row and table: candidate rows share the keys and have event time <= the entity
time (inclusive) and, with a TTL, >= entity time - ttl. The winner is the latest event time,
then the latest created time, then the latest partition (the rule the online sync uses).
Rows without a candidate keep NULL features; output order and duplicates follow the input.
"""

from __future__ import annotations

from dataclasses import dataclass

from feature_assets.contract import FeatureTable
from resources.sql import ident


@dataclass(frozen=True)
class FeatureRequest:
    table: FeatureTable
    features: tuple[str, ...]


def point_in_time_query(
    entity_relation: str, requests: list[FeatureRequest], sources: dict[str, str]
) -> str:
    """SQL over `entity_relation` (with `__entity_row` and `__entity_ts`) and one source per table."""
    ctes: list[str] = []
    joins: list[str] = []
    selected: list[str] = []
    for i, request in enumerate(requests):
        table = request.table
        alias = f"f{i}"
        event_ts = f"__event_ts_{i}"
        keys = [ident(key) for key in table.keys]
        same_time_order = [f"{ident(table.partition_column)} DESC"]
        if table.created_timestamp:
            same_time_order.insert(0, f"{ident(table.created_timestamp)} DESC NULLS LAST")
        # ASOF picks one row per event time arbitrarily, so settle ties on event time first.
        ctes.append(
            f"{alias} AS (\n"
            f"    SELECT {', '.join(keys)}, {ident(table.timestamp)} AS {event_ts}, "
            f"{', '.join(ident(f) for f in request.features)}\n"
            f"    FROM {sources[table.name]}\n"
            f"    QUALIFY row_number() OVER (\n"
            f"        PARTITION BY {', '.join(keys)}, {ident(table.timestamp)}\n"
            f"        ORDER BY {', '.join(same_time_order)}) = 1\n"
            f")"
        )
        on = [f"e.{key} = {alias}.{key}" for key in keys]
        on.append(f"e.__entity_ts >= {alias}.{event_ts}")
        joins.append(f"ASOF LEFT JOIN {alias} ON {' AND '.join(on)}")
        if table.ttl is None:
            in_ttl = f"{alias}.{event_ts} IS NOT NULL"
        else:
            ttl_us = int(table.ttl.total_seconds() * 1_000_000)
            in_ttl = f"{alias}.{event_ts} >= e.__entity_ts - to_microseconds({ttl_us})"
        selected += [
            f"CASE WHEN {in_ttl} THEN {alias}.{ident(feature)} END AS {ident(feature)}"
            for feature in request.features
        ]
    return (
        f"WITH {', '.join(ctes)}\n"
        f"SELECT e.*, {', '.join(selected)}\n"
        f"FROM {entity_relation} AS e\n" + "\n".join(joins) + "\nORDER BY e.__entity_row"
    )
