"""Daily partitions: the days a partition window covers."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg


def days_in(window: dg.TimeWindow) -> list[date]:
    start, end = window.start.date(), window.end.date()
    return [start + timedelta(days=i) for i in range((end - start).days)]
