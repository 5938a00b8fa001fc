"""Online-sync sensor: every partition that passed its publish check gets synced, once.

A cursor over all check-evaluation events (not a plain asset sensor, which fires on the
materialization before the check has run and sees only the newest event per tick). A
passed `validated_and_published` evaluation names the days it published; a failed one
published nothing and is never synced. Evaluations of runs still going are held back until
the run ends: a run that synced the table itself (the `feature_pipeline` job does) needs
no second sync. Several evaluations of one table in a tick become one run per contiguous
day range.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, timedelta

import dagster as dg

from feature_assets.contract import FeatureTable
from feature_assets.online_sync import online_asset_key
from feature_assets.partitions import contiguous_ranges, range_tags
from feature_assets.publishing import CHECK_NAME, FIRST_DAY, LAST_DAY

SENSOR_NAME = "online_sync_sensor"
BATCH = 1_000


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
    if cursor is None:
        # First tick: earlier publishes were synced by whatever published them, or by resync.
        newest = _records(instance, after=None, limit=1, ascending=False)
        start = newest[0].storage_id if newest else 0
        return dg.SensorResult(
            skip_reason="watching check evaluations from now on",
            cursor=json.dumps({"after": start, "pending": []}),
        )
    state = json.loads(cursor)
    records = _records(instance, storage_ids=state["pending"]) if state["pending"] else []
    records += _records(instance, after=state["after"], limit=BATCH, ascending=True)
    after = max([state["after"], *(r.storage_id for r in records)])

    pending: list[int] = []
    days: dict[str, set[date]] = {}
    newest_id: dict[str, int] = {}
    for record in sorted(records, key=lambda r: r.storage_id):
        evaluation = record.event_log_entry.dagster_event.asset_check_evaluation_data
        table = tables.get(evaluation.asset_key.to_user_string())
        if table is None or evaluation.check_name != CHECK_NAME or not evaluation.passed:
            continue
        run = instance.get_run_by_id(record.run_id)
        if run is not None and not run.is_finished:
            pending.append(record.storage_id)
            continue
        if _run_synced(instance, record.run_id, table):
            continue
        first = date.fromisoformat(evaluation.metadata[FIRST_DAY].value)
        last = date.fromisoformat(evaluation.metadata[LAST_DAY].value)
        days.setdefault(table.name, set()).update(
            first + timedelta(days=i) for i in range((last - first).days + 1)
        )
        newest_id[table.name] = record.storage_id

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
        run_requests=requests, cursor=json.dumps({"after": after, "pending": pending})
    )


def _records(
    instance: dg.DagsterInstance,
    *,
    after: int | None = None,
    storage_ids: list[int] | None = None,
    limit: int | None = None,
    ascending: bool = True,
) -> list[dg.EventLogRecord]:
    records_filter = dg.EventRecordsFilter(
        event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION,
        after_cursor=after,
        storage_ids=storage_ids,
    )
    return list(instance.get_event_records(records_filter, limit=limit, ascending=ascending))


def _run_synced(instance: dg.DagsterInstance, run_id: str, table: FeatureTable) -> bool:
    """Whether the run that published these days also wrote them to the online store."""
    key = online_asset_key(table)
    materializations = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    return any(r.event_log_entry.dagster_event.asset_key == key for r in materializations)
