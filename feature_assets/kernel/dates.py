"""Daily partitions as plain dates: the days a window covers, day ranges, the newest day."""

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from feature_assets.kernel.names import RANGE_END_TAG, RANGE_START_TAG


def days_in(start: datetime, end: datetime) -> list[date]:
    """The days of a partition time window [start, end)."""
    return days_between(start.date(), end.date() - timedelta(days=1))


def days_between(first: date, last: date) -> list[date]:
    """first..last, both included."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def contiguous_ranges(days: Iterable[date]) -> list[tuple[date, date]]:
    """[1, 2, 3, 5] -> [(1, 3), (5, 5)]: each range can be one run."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and day == ranges[-1][1] + timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def last_complete_day(first_partition: date, now: datetime) -> date | None:
    """The newest daily partition at `now`: yesterday (UTC), or None before the first one."""
    last = now.astimezone(UTC).date() - timedelta(days=1)
    return last if last >= first_partition else None


def range_tags(first: date, last: date) -> dict[str, str]:
    """Run tags that make one run cover first..last (inclusive) as a single-run backfill."""
    return {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()}
