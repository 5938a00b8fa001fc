"""One blocking check per raw source: its landing days gated before a feature table reads them.

Every job that builds a feature table selects the gates of its sources (`gate_check_keys`),
so a failing gate stops the dbt build of the same run: nothing is built, published or synced.
"""

from collections.abc import Mapping

import dagster as dg

from feature_assets.assets.raw_sources import raw_source_key
from feature_assets.kernel.contract import FeatureTable, RawSource
from feature_assets.kernel.dates import days_in
from feature_assets.kernel.names import (
    EMPTY_DAY_MARKER,
    LANDING_GATE,
    build_check_paths,
    table_asset_path,
)
from feature_assets.validation.landing import check_dimension, check_landing, days_read
from resources.landing_zone import LandingZone


def gated_sources(
    tables: Mapping[str, FeatureTable], sources: Mapping[str, RawSource]
) -> list[RawSource]:
    """The sources some feature table reads, each gated once."""
    read = {key for table in tables.values() for key in table.source_tables}
    return [source for key, source in sources.items() if key in read]


def gate_check_keys(table: FeatureTable) -> list[dg.AssetCheckKey]:
    """The checks a run building `table` must run: its sources' gates and its publish check."""
    return [
        dg.AssetCheckKey(dg.AssetKey(path), name)
        for path, name in build_check_paths(table.name, table.source_tables)
    ]


def build_landing_gate(
    source: RawSource,
    tables: Mapping[str, FeatureTable],
    partitions_def: dg.DailyPartitionsDefinition,
    zone: LandingZone,
) -> dg.AssetChecksDefinition:
    daily = source.landing_partition is not None
    readers = [t for t in tables.values() if source.key in t.source_tables]

    @dg.asset_check(
        asset=raw_source_key(source),
        name=LANDING_GATE,
        blocking=True,
        partitions_def=partitions_def if daily else None,
        description=(
            f"Checks the landing days of {source.key} that the run's feature partitions read: "
            "declared columns and types, unique key, timestamps inside the day, column checks, "
            f"no empty day (unless its folder holds {EMPTY_DAY_MARKER!r}). Blocks the build on failure."
        ),
    )
    def _gate(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        if daily:
            window = context.partition_time_window
            days = days_in(window.start, window.end)
            built = _built_in_run(context, readers)
            lookback, run_days = days_read(source, built, days[0], days[-1])
            verdict = check_landing(zone, source, lookback, run_days)
        else:
            verdict = check_dimension(zone, source)
        if not verdict.passed:
            context.log.error(verdict.describe())
        return dg.AssetCheckResult(
            passed=verdict.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=verdict.describe(),
            metadata={"landing_days": len(verdict.rows), "rows": sum(verdict.rows.values())},
        )

    return _gate


def _built_in_run(
    context: dg.AssetCheckExecutionContext, readers: list[FeatureTable]
) -> list[FeatureTable]:
    """The readers this run builds: their windows set how far back the gate looks."""
    selected = context.run.asset_selection or context.job_def.asset_selection
    if not selected:
        return readers
    built = [t for t in readers if dg.AssetKey(table_asset_path(t.name)) in selected]
    return built or readers
