"""Online-sync sensor: every day that was published gets synced, once.

The offline store is the truth: a day is published only when its blocking check passed,
and each publish gives the day a new version (and records the publishing run in the file).
The cursor holds, per online table, the version of each day already handled; a day whose
version changed is synced, so a failed check (which publishes nothing) is never synced and
a passed one is never missed, whichever run or backfill published it. A day published by a
run still going is held back until the run ends; a run that synced the day itself (the
`feature_pipeline` job does) needs no second sync. Changed days of one table become one
run per contiguous range. Public Dagster API only: run records and asset materializations.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date

import dagster as dg

from feature_assets.kernel.contract import FeatureTable
from feature_assets.kernel.dates import contiguous_ranges, range_tags
from feature_assets.kernel.names import ONLINE_SYNC_SENSOR, TRIGGER_TAG, online_asset_path
from resources.offline_store import OfflineStore
from sensors.dead_runs import reap_dead_runs

Versions = dict[str, dict[str, int]]  # table -> day -> published version


def build_online_sync_sensor(
    tables: Mapping[str, FeatureTable], offline_store: OfflineStore
) -> dg.SensorDefinition:
    online = {name: t for name, t in tables.items() if t.online}

    @dg.sensor(
        name=ONLINE_SYNC_SENSOR,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        target=dg.AssetSelection.assets(*(dg.AssetKey(online_asset_path(name)) for name in online)),
        description="Syncs each partition that passed its publish check to the online store.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        return evaluate_online_sync(context.instance, context.cursor, online, offline_store)

    return _sensor


def evaluate_online_sync(
    instance: dg.DagsterInstance,
    cursor: str | None,
    tables: Mapping[str, FeatureTable],
    offline_store: OfflineStore,
) -> dg.SensorResult:
    """One tick: compare each table's published versions with the cursor's."""
    reap_dead_runs(instance)  # a day whose publishing run died must not wait for it
    handled: Versions = json.loads(cursor) if cursor else {}
    now: Versions = {
        name: {day.isoformat(): v for day, v in offline_store.published_versions(t).items()}
        for name, t in tables.items()
    }
    if cursor is None:
        # What is published already was synced by whatever published it, or by resync.
        return dg.SensorResult(
            cursor=json.dumps(now), skip_reason="watching published partitions from now on"
        )
    to_sync: dict[str, set[date]] = {}
    for name, table in tables.items():
        seen = handled.get(name, {})
        for day_text, version in now[name].items():
            if seen.get(day_text) == version:
                continue
            day = date.fromisoformat(day_text)
            decision = _decide(instance, offline_store, table, day)
            if decision == "wait":
                continue  # the cursor keeps the old version: decided on a later tick
            seen[day_text] = version
            if decision == "sync":
                to_sync.setdefault(name, set()).add(day)
        handled[name] = seen
    requests = [
        dg.RunRequest(
            run_key=_run_key(name, start, end, now[name]),
            asset_selection=[dg.AssetKey(online_asset_path(name))],
            tags={**range_tags(start, end), TRIGGER_TAG: "published"},
        )
        for name, days in sorted(to_sync.items())
        for start, end in contiguous_ranges(days)
    ]
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(handled))


def _decide(
    instance: dg.DagsterInstance, offline_store: OfflineStore, table: FeatureTable, day: date
) -> str:
    """'sync', 'skip' (the publishing run synced it) or 'wait' (that run is still going)."""
    run_id = offline_store.published_by(table, day)
    run = instance.get_run_by_id(run_id) if run_id else None
    if run is None:
        return "sync"  # published outside Dagster, or its run was deleted
    if not run.is_finished:
        return "wait"
    return "skip" if _run_synced(instance, run_id, table, day) else "sync"


def _run_synced(instance: dg.DagsterInstance, run_id: str, table: FeatureTable, day: date) -> bool:
    """Whether the run that published the day also wrote it to the online store."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(online_asset_path(table.name)),
            asset_partitions=[day.isoformat()],
        ),
        limit=20,
    ).records
    return any(record.run_id == run_id for record in records)


def _run_key(name: str, start: date, end: date, versions: Mapping[str, int]) -> str:
    """The same publish of the same days always gives the same key: nothing runs twice."""
    span = {d: v for d, v in versions.items() if start.isoformat() <= d <= end.isoformat()}
    digest = hashlib.sha256(json.dumps(span, sort_keys=True).encode()).hexdigest()[:16]
    return f"sync:{name}:{start}:{end}:{digest}"
