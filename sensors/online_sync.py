"""Online-sync sensor: every partition that passed its publish check gets synced, once.

A cursor over every execution of each table's publish check (not a plain asset sensor,
which fires on the materialization before the check has run and sees only the newest
event per tick). A passed `validated_and_published` evaluation names the days it
published; a failed one published nothing and is never synced. Evaluations of runs still
going are held back until the run ends: a run that synced the table itself (the
`feature_pipeline` job does) needs no second sync. Several evaluations of one table in a
tick become one run per contiguous day range.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

from feature_assets.contract import FeatureTable
from feature_assets.online_sync import online_asset_key
from feature_assets.partitions import contiguous_ranges, days_between, range_tags
from feature_assets.publishing import CHECK_NAME, FIRST_DAY, LAST_DAY

SENSOR_NAME = "online_sync_sensor"
PAGE = 200


def build_online_sync_sensor(tables: Mapping[str, FeatureTable]) -> dg.SensorDefinition:
    online = {name: t for name, t in tables.items() if t.online}

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        target=dg.AssetSelection.assets(*(online_asset_key(t) for t in online.values())),
        description="Syncs each partition that passed its publish check to the online store.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        return evaluate_online_sync(context.instance, context.cursor, online)

    return _sensor


def evaluate_online_sync(
    instance: dg.DagsterInstance, cursor: str | None, tables: Mapping[str, FeatureTable]
) -> dg.SensorResult:
    """One tick. The cursor holds, per table, the check-execution id up to which every
    execution has been handled, and the ids above it handled already (runs end out of order)."""
    state: dict[str, dict] = json.loads(cursor) if cursor else {}
    first_tick = cursor is None
    days: dict[str, set[date]] = {}
    newest_id: dict[str, int] = {}
    for name, table in tables.items():
        seen = state.get(name, {"after": 0, "done": []})
        records = _executions_after(instance, table, seen["after"])
        if first_tick:
            # Earlier publishes were synced by whatever published them, or by resync.
            state[name] = {"after": max([0, *(r.id for r in records)]), "done": []}
            continue
        done = set(seen["done"])
        for record in records:
            if record.id in done:
                continue
            run = instance.get_run_by_id(record.run_id)
            if run is not None and not run.is_finished:
                continue  # decide when the run has ended: it may sync the table itself
            done.add(record.id)
            if record.status != AssetCheckExecutionRecordStatus.SUCCEEDED:
                continue  # failed (nothing was published), skipped, or never evaluated
            evaluation = record.event.dagster_event.asset_check_evaluation_data
            if not evaluation.passed or _run_synced(instance, record.run_id, table):
                continue
            first = date.fromisoformat(evaluation.metadata[FIRST_DAY].value)
            last = date.fromisoformat(evaluation.metadata[LAST_DAY].value)
            days.setdefault(name, set()).update(days_between(first, last))
            newest_id[name] = max(newest_id.get(name, 0), record.id)
        after = seen["after"]
        for record_id in sorted(r.id for r in records):
            if record_id not in done:
                break
            after = record_id
        state[name] = {"after": after, "done": sorted(i for i in done if i > after)}

    requests = [
        dg.RunRequest(
            run_key=f"sync:{name}:{start}:{end}:{newest_id[name]}",
            asset_selection=[online_asset_key(tables[name])],
            tags={**range_tags(start, end), "feature_store/trigger": "check_passed"},
        )
        for name, table_days in sorted(days.items())
        for start, end in contiguous_ranges(table_days)
    ]
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps(state),
        skip_reason="watching publish checks from now on" if first_tick else None,
    )


def _executions_after(
    instance: dg.DagsterInstance, table: FeatureTable, after: int
) -> list[AssetCheckExecutionRecord]:
    """Executions of the table's publish check with an id above `after`, oldest first.

    The check-execution index is one table for all runs, unlike the run-sharded event log
    of a default (SQLite) instance, which cannot be read with a global cursor."""
    key = dg.AssetCheckKey(dg.AssetKey(table.name), CHECK_NAME)
    records: list[AssetCheckExecutionRecord] = []
    before = None
    while True:
        page = instance.event_log_storage.get_asset_check_execution_history(
            key, limit=PAGE, cursor=before
        )
        newer = [r for r in page if r.id > after]
        records += newer
        if len(page) < PAGE or len(newer) < len(page):
            return sorted(records, key=lambda r: r.id)
        before = page[-1].id


def _run_synced(instance: dg.DagsterInstance, run_id: str, table: FeatureTable) -> bool:
    """Whether the run that published these days also wrote them to the online store."""
    key = online_asset_key(table)
    materializations = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    return any(r.event_log_entry.dagster_event.asset_key == key for r in materializations)
