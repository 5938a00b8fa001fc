"""Daily partitions: the days a partition window covers, and day ranges as single runs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import dagster as dg

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def days_in(window: dg.TimeWindow) -> list[date]:
    return days_between(window.start.date(), window.end.date() - timedelta(days=1))


def days_between(first: date, last: date) -> list[date]:
    """first..last, both included."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def range_tags(first: date, last: date) -> dict[str, str]:
    """Run tags that make one run cover first..last (inclusive) as a single-run backfill."""
    return {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()}


def contiguous_ranges(days: Iterable[date]) -> list[tuple[date, date]]:
    """[1, 2, 3, 5] -> [(1, 3), (5, 5)]: each range can be one run."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and day == ranges[-1][1] + timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def last_complete_day(partitions_def: dg.DailyPartitionsDefinition, now: datetime) -> date | None:
    """The newest daily partition at `now`: yesterday (UTC), or None before the first one."""
    last = now.astimezone(UTC).date() - timedelta(days=1)
    return last if last >= partitions_def.start.date() else None
