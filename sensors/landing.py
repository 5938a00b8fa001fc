"""Landing sensor: a new or replaced raw landing day rebuilds exactly the partitions reading it.

A feature table's row for day f reads source days [f - window, f] (the window is in its
name), so landing day d feeds partitions d .. d + window, cut to the partitions that exist.
The cursor holds each landed day's newest file modification time, so a replaced file counts
as new and nothing is missed between ticks; run keys make a repeated evaluation launch nothing
twice. The UI shows the cursor, so it reads as a summary line and UTC times (to the nanosecond).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg

from feature_assets.kernel.contract import FeatureTable, RawSource
from feature_assets.kernel.dates import contiguous_ranges, last_complete_day, range_tags
from feature_assets.kernel.names import (
    LANDING_SENSOR,
    TRIGGER_TAG,
    build_check_paths,
    table_asset_path,
)

LandingState = dict[str, dict[str, str]]  # source -> day -> newest file mtime, UTC, to the ns


def landing_state(landing_dir: Path, sources: Mapping[str, RawSource]) -> LandingState:
    state: dict[str, dict[str, int]] = {}
    for key, source in sources.items():
        if source.landing_partition is None:
            continue
        days = state.setdefault(key, {})
        for path in (landing_dir / source.name).glob(f"{source.landing_partition}=*/*.parquet"):
            day = path.parent.name.split("=", 1)[1]
            days[day] = max(days.get(day, 0), path.stat().st_mtime_ns)
    return as_times(state)


def utc_ns(nanoseconds: int) -> str:
    """A file time as ISO UTC with all nine digits (a replaced file may differ by less than
    a microsecond); strings of this form sort as the times do."""
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{fraction:09d}Z"


def encode_cursor(state: LandingState) -> str:
    days = sum(len(d) for d in state.values())
    newest = max((t for d in state.values() for t in d.values()), default="never")
    summary = f"{len(state)} sources, {days} landed days; newest file written {newest}"
    return json.dumps({"summary": summary, "landed": state}, indent=1, sort_keys=True)


def decode_cursor(cursor: str) -> LandingState:
    data = json.loads(cursor)
    if "landed" in data:
        return data["landed"]
    # A cursor written before the summary (source -> day -> mtime in ns) reads as the same times.
    return as_times(data)


def as_times(nanoseconds: Mapping[str, Mapping[str, int]]) -> LandingState:
    return {key: {day: utc_ns(ns) for day, ns in days.items()} for key, days in nanoseconds.items()}


def changed_days(before: LandingState, now: LandingState) -> dict[str, list[date]]:
    return {
        source: sorted(
            date.fromisoformat(day)
            for day, mtime in days.items()
            if before.get(source, {}).get(day) != mtime
        )
        for source, days in now.items()
    }


def dependent_days(
    table: FeatureTable, landed: list[date], first_partition: date, last_partition: date
) -> set[date]:
    reach = table.window.days
    return {
        day + timedelta(days=offset)
        for day in landed
        for offset in range(reach + 1)
        if first_partition <= day + timedelta(days=offset) <= last_partition
    }


def build_landing_sensor(
    tables: Mapping[str, FeatureTable],
    sources: Mapping[str, RawSource],
    landing_dir: Path,
    partitions_def: dg.DailyPartitionsDefinition,
) -> dg.SensorDefinition:
    @dg.sensor(
        name=LANDING_SENSOR,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        target=dg.AssetSelection.assets(*(dg.AssetKey(table_asset_path(n)) for n in tables)),
        description="Rebuilds the feature partitions that read a newly landed or replaced raw day.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        now = landing_state(landing_dir, sources)
        if context.cursor is None:
            # First tick: what already landed is history, for `feature-store backfill`.
            return dg.SensorResult(
                skip_reason="recorded the landing folders as they are; watching for changes",
                cursor=encode_cursor(now),
            )
        changes = changed_days(decode_cursor(context.cursor), now)
        return dg.SensorResult(
            run_requests=landing_run_requests(tables, changes, partitions_def),
            cursor=encode_cursor(now),
        )

    return _sensor


def landing_run_requests(
    tables: Mapping[str, FeatureTable],
    changes: Mapping[str, list[date]],
    partitions_def: dg.DailyPartitionsDefinition,
    now: datetime | None = None,
) -> list[dg.RunRequest]:
    """One run per table and contiguous range of dependent partitions."""
    first = partitions_def.start.date()
    last = last_complete_day(first, now or datetime.now(UTC))
    if last is None:
        return []
    digest = hashlib.sha256(json.dumps(changes, default=str, sort_keys=True).encode()).hexdigest()
    requests = []
    for table in tables.values():
        days: set[date] = set()
        for source in table.source_tables:
            days |= dependent_days(table, changes.get(source, []), first, last)
        for start, end in contiguous_ranges(days):
            requests.append(
                dg.RunRequest(
                    run_key=f"{table.name}:{start}:{end}:{digest[:16]}",
                    asset_selection=[dg.AssetKey(table_asset_path(table.name))],
                    # Naming checks replaces the default (the selected assets' own checks).
                    asset_check_keys=[
                        dg.AssetCheckKey(dg.AssetKey(path), name)
                        for path, name in build_check_paths(table.name, table.source_tables)
                    ],
                    tags={**range_tags(start, end), TRIGGER_TAG: "landing"},
                )
            )
    return requests
