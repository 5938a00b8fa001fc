"""The point-in-time join on Spark: the semantics of `resources.point_in_time`, in a plan
Spark can run (it has no ASOF join).

Spark gets the entity rows' keys, row ids and times only, and returns per row id the
requested features; DuckDB then puts them beside the input columns (`spark_join_query`), so
input columns, order and result types are the DuckDB plan's own.

Times travel as epoch microseconds (BIGINT): no time zone or timestamp flavour between the
engines can shift an instant. Per table, one sort per key: feature rows and entity rows in
one union, ordered by the time a feature row becomes a candidate (its event time; with the
created-time cutoff, its created time if later) and a feature row before an entity row of
the same time (the join is inclusive). Each entity row takes the greatest candidate so far
by (event time, created time, day): `max` over a struct, over the running window. A range
join ranked per entity row, the first cutoff plan, grew with each key's history (31 s
against 5 s at ~1,000 rows a key). The TTL is checked against the winner: if it is too old,
every older row is too.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from feature_assets.kernel.contract import FeatureRequest, FeatureTable
from resources.entity_source import ADDED_COLUMNS
from resources.sql import DUCKDB_TYPES, ident, sident

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ENTITY = "__pit_entity"
# The entity columns Spark gets besides the keys.
ROW, AT, AT_CEIL = "__entity_row", "__entity_us", "__entity_ceil_us"
SPARK_RESULT = "__spark_features"


def _micros(column: str) -> str:
    # TIMESTAMP_NTZ (how Spark reads DuckDB's naive timestamps) cast under the UTC session.
    return f"unix_micros(CAST({column} AS TIMESTAMP))"


def entity_keys(requests: Sequence[FeatureRequest]) -> list[str]:
    return list(dict.fromkeys(key for r in requests for key in r.table.keys))


def spark_query(
    requests: Sequence[FeatureRequest],
    sources: Mapping[str, str | None],
    cutoff: Mapping[str, bool],
) -> str:
    """Spark SQL over the view `__pit_entity` and one view per table (None: no published
    rows): per entity row id, column `o<i>_<j>` for feature j of request i."""
    ctes, joins, selected = [], [], []
    for i, request in enumerate(requests):
        table, alias = request.table, f"j{i}"
        outputs = [f"o{i}_{j}" for j in range(len(request.all_features))]
        source = sources[table.name]
        if source is None:
            selected += [f"CAST(NULL AS STRING) AS {o}" for o in outputs]
            continue
        ctes.append(_running_latest(alias, request, source, cutoff[table.name]))
        joins.append(f"LEFT JOIN {alias} ON e.{ROW} = {alias}.{ROW}")
        selected += [f"{alias}.v{j} AS {o}" for j, o in enumerate(outputs)]
    with_clause = f"WITH {', '.join(ctes)}\n" if ctes else ""
    return (
        f"{with_clause}SELECT e.{ROW}{''.join(', ' + s for s in selected)}\n"
        f"FROM {ENTITY} AS e\n" + "\n".join(joins)
    )


def _keys_present(table: FeatureTable, alias: str) -> str:
    # A NULL key matches nothing, as in the DuckDB plan's equi-join.
    return " AND ".join(f"{alias}.{sident(k)} IS NOT NULL" for k in table.keys)


def _within_ttl(table: FeatureTable, event_us: str, ceil_us: str) -> str:
    if table.ttl is None:
        return "true"
    ttl_us = int(table.ttl.total_seconds() * 1_000_000)
    return f"{event_us} >= {ceil_us} - {ttl_us}"


def _running_latest(alias: str, request: FeatureRequest, source: str, cutoff: bool) -> str:
    """Feature rows and entity rows in one union sorted per key by the time a feature row
    becomes a candidate (its event time; with the cutoff, its created time if later), a
    feature row before an entity row of the same time (inclusive); each entity row takes the
    greatest candidate so far by (event time, created time, day), which max() over a struct
    compares field by field, a missing created time first (it loses, as in the DuckDB plan).
    """
    table = request.table
    keys = [sident(k) for k in table.keys]
    event = _micros(f"f.{sident(table.timestamp)}")
    created = _micros(f"f.{sident(table.created_timestamp)}") if table.created_timestamp else "NULL"
    values = ", ".join(
        f"'v{j}', f.{sident(feature)}" for j, feature in enumerate(request.all_features)
    )
    rank = (
        f"'__e', {event}, '__c', {created}, '__p', CAST(f.{sident(table.partition_column)} AS DATE)"
    )
    present = _keys_present(table, "f")
    if cutoff:  # a row without a created time is never a candidate, as in the DuckDB plan
        present += f" AND f.{sident(table.created_timestamp)} IS NOT NULL"
    unioned = f"""
        SELECT {", ".join(f"f.{k}" for k in keys)},
            {f"greatest({event}, {created})" if cutoff else event} AS __t, 0 AS __side,
            named_struct({rank}, {values}) AS __v,
            CAST(NULL AS BIGINT) AS {ROW}, CAST(NULL AS BIGINT) AS {AT_CEIL}
        FROM {source} AS f WHERE {present}
        UNION ALL
        SELECT {", ".join(f"e.{k}" for k in keys)}, e.{AT}, 1, NULL, e.{ROW}, e.{AT_CEIL}
        FROM {ENTITY} AS e WHERE {_keys_present(table, "e")}"""
    window = (
        f"max(__v) OVER (PARTITION BY {', '.join(keys)} ORDER BY __t, __side "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
    )
    # If the winner is past its TTL, every other candidate is older still.
    in_ttl = _within_ttl(table, "w.__v.__e", f"w.{AT_CEIL}")
    picked = ", ".join(
        f"CASE WHEN {in_ttl} THEN w.__v.v{j} END AS v{j}" for j in range(len(request.all_features))
    )
    return f"""{alias} AS (
        SELECT w.{ROW}, {picked} FROM (
            SELECT __side, {ROW}, {AT_CEIL}, {window} AS __v FROM ({unioned}) AS u
        ) AS w WHERE w.__side = 1
    )"""


def spark_features(
    spark: SparkSession,
    entity: pa.Table,
    requests: Sequence[FeatureRequest],
    files: Mapping[str, Sequence[Path]],
    cutoff: Mapping[str, bool],
    scratch: Path,
) -> pa.Table:
    """Run the join on Spark: `entity` holds the keys, `__entity_row`, `__entity_us` and
    `__entity_ceil_us`; `files` the Parquet files of each table's window. Returns per entity
    row id the `o<i>_<j>` columns (rows in no particular order).

    The entity rows reach Spark as a Parquet file in `scratch` (removed after): a DataFrame
    made from them in memory would live in the driver's heap, as long as its view did, and
    a second 1M-row join in one process ran the default 1 GB heap out of memory."""
    # Its own temporary views: joins running at once in one process do not see each other's.
    spark = spark.newSession()
    folder = scratch / f"join-{uuid.uuid4().hex}"
    folder.mkdir(parents=True)
    views = [ENTITY]
    try:
        pq.write_table(entity, folder / "entity.parquet")
        spark.read.parquet(str(folder / "entity.parquet")).createOrReplaceTempView(ENTITY)
        sources: dict[str, str | None] = {}
        for i, request in enumerate(requests):
            paths = [str(path) for path in files[request.table.name]]
            if not paths:
                sources[request.table.name] = None
                continue
            view = f"__pit_source_{i}"
            frame: DataFrame = spark.read.option("mergeSchema", "true").parquet(*paths)
            frame.createOrReplaceTempView(view)
            views.append(view)
            sources[request.table.name] = view
        return spark.sql(spark_query(requests, sources, cutoff)).toArrow()
    finally:
        for view in views:
            spark.catalog.dropTempView(view)
        shutil.rmtree(folder, ignore_errors=True)


def spark_join_query(
    entity_relation: str,
    requests: Sequence[FeatureRequest],
    *,
    full_feature_names: bool = False,
) -> str:
    """DuckDB SQL over the entity view and the registered Spark result `__spark_features`:
    the same columns, order and types as `point_in_time_query`'s."""
    selected = []
    for i, request in enumerate(requests):
        outputs = request.all_output_names(full_feature_names)
        types = request.table.column_types
        selected += [
            f"CAST(s.o{i}_{j} AS {DUCKDB_TYPES[types[feature]]}) AS {ident(output)}"
            for j, (feature, output) in enumerate(zip(request.all_features, outputs, strict=True))
        ]
    return (
        f"SELECT e.* EXCLUDE ({ADDED_COLUMNS}), {', '.join(selected)}\n"
        f"FROM {entity_relation} AS e LEFT JOIN {SPARK_RESULT} AS s "
        f"ON e.{ROW} = s.{ROW}\nORDER BY e.{ROW}"
    )
