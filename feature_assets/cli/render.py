"""How the CLI shows data: aligned columns for people, JSON for scripts."""

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from feature_assets.kernel.contract import format_duration
from feature_assets.registry import Freshness, OnDemandDetails, SearchHit, TableDetails


def plain(value: Any) -> Any:
    """A registry value as JSON-ready data: durations as '30d', dates as ISO strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return "-" if value is None else str(value)


def print_rows(rows: Sequence[Any], as_json: bool) -> None:
    """Dataclasses or dicts, one per row."""
    records = [plain(row) for row in rows]
    if as_json:
        print(json.dumps(records, indent=2, default=str))
        return
    if not records:
        print("(none)")
        return
    cells = [[cell(v) for v in record.values()] for record in records]
    headers = [h.upper().replace("_", " ") for h in records[0]]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    for line in [headers, *cells]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def freshness_status(row: Freshness) -> str:
    if row.due_partition is None:
        return "no SLA"
    if row.newest_partition is None:
        return "STALE (never published)"
    if row.stale:
        return f"STALE ({row.days_behind} day(s) behind)"
    return "fresh"


def freshness_rows(rows: Sequence[Freshness]) -> list[dict[str, Any]]:
    return [
        {
            "table": r.table,
            "freshness": r.freshness,
            "refresh_every": r.refresh_every,
            "newest_partition": r.newest_partition,
            "due_partition": r.due_partition,
            "status": freshness_status(r),
        }
        for r in rows
    ]


def search_rows(hits: Sequence[SearchHit]) -> list[dict[str, Any]]:
    return [
        {"kind": h.kind, "name": h.name, "matched": list(h.matched), "description": h.description}
        for h in hits
    ]


def print_facts(facts: Mapping[str, Any]) -> None:
    """One aligned `name: value` line per fact."""
    for name, value in facts.items():
        print(f"  {name.replace('_', ' ') + ':':22} {cell(value)}")


def print_details(details: TableDetails, as_json: bool) -> None:
    if as_json:
        print(json.dumps(plain(details), indent=2, default=str))
        return
    summary = plain(details.summary)
    print(f"{summary.pop('table')}: {details.description}\n")
    facts = {
        **summary,
        "timestamp": details.timestamp,
        "created_timestamp": details.created_timestamp,
        "partition": details.partition,
        "tags": details.tags,
        "sources": details.sources,
        "published_partitions": details.published_partitions,
        "services": details.services,
    }
    print_facts(facts)
    print()
    print_rows(
        [
            {
                "name": f.name,
                "type": f.type_name,
                "nullable": f.nullable,
                "checks": " ".join(f"{k} {v}" for k, v in f.checks.items()),
                "description": f.description,
            }
            for f in details.features
        ],
        False,
    )


def print_on_demand(details: OnDemandDetails, as_json: bool) -> None:
    if as_json:
        print(json.dumps(plain(details), indent=2, default=str))
        return
    summary = plain(details.summary)
    print(f"{summary.pop('on_demand')} (on-demand): {details.description}\n")
    print_facts({**summary, "services": details.services})
    print("\ninputs:")
    print_rows(details.inputs, False)
    print("\noutputs:")
    print_rows(
        [
            {"name": f.name, "type": f.type_name, "description": f.description}
            for f in details.features
        ],
        False,
    )
