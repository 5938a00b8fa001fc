"""How often each feature table is refreshed, derived from its contract (ttl and freshness).

The rule: refresh at least twice per freshness window and twice per ttl, and never less
than once per daily partition; the interval is rounded down to a divisor of a day (1, 2, 3,
4, 6, 8, 12 or 24 hours) so every tick lands at the same hours each day.

An online value is replaced only when the next daily partition is built, so it must
outlive one partition plus one refresh interval; an online table whose ttl is shorter
would serve nothing part of every day, and is rejected when the definitions load.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from feature_assets.kernel.contract import FeatureTable, format_duration
from feature_assets.kernel.errors import FeatureDefinitionError

PARTITION = timedelta(days=1)
INTERVALS = tuple(timedelta(hours=h) for h in (24, 12, 8, 6, 4, 3, 2, 1))
# Minutes past the hour: after the day's landing files have arrived.
TICK_MINUTE = 15


def refresh_interval(table: FeatureTable) -> timedelta:
    bound = min([PARTITION] + [d / 2 for d in (table.freshness, table.ttl) if d is not None])
    return next((i for i in INTERVALS if i <= bound), INTERVALS[-1])


def refresh_cron(table: FeatureTable) -> str:
    hours = int(refresh_interval(table).total_seconds() // 3600)
    return f"{TICK_MINUTE} {'0' if hours == 24 else f'*/{hours}'} * * *"


def check_refresh_policy(table: FeatureTable) -> None:
    """Load-time check: an online table's values must not expire before they can be replaced."""
    interval = refresh_interval(table)
    if table.online and table.ttl is not None and table.ttl < PARTITION + interval:
        raise FeatureDefinitionError(
            f"feature table {table.name!r}, field 'ttl': {format_duration(table.ttl)} is shorter "
            f"than one daily partition plus the refresh interval ({format_duration(interval)}), "
            "so its online values would expire before the next ones are written; raise the ttl "
            "or set online: false"
        )


def due_partition(table: FeatureTable, now: datetime) -> date | None:
    """The newest day that must be published by `now`: day d is due `freshness` after it ends."""
    if table.freshness is None:
        return None
    return (now - table.freshness - PARTITION).date()


def is_stale(table: FeatureTable, newest: date | None, now: datetime) -> bool:
    due = due_partition(table, now)
    return due is not None and (newest is None or newest < due)


def rewrite_horizon(table: FeatureTable, now: datetime) -> int:
    """Epoch seconds a stored online expiry must outlast for the sync to leave an item with
    unchanged values as it is: the next refresh, plus one interval of slack for a late one."""
    return int((now + 2 * refresh_interval(table)).timestamp())
