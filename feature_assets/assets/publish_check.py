"""Write, audit, publish: the blocking pandera check that alone makes a partition visible.

One evaluation per day, so Dagster records Passed or Failed for every partition of a range
run (an evaluation for the range as a whole would leave each day "Skipped")."""

import math
from collections.abc import Iterator
from datetime import date

import dagster as dg
import pandas as pd
from dagster._core.definitions.asset_checks.asset_check_evaluation import (  # no public name
    AssetCheckEvaluationTargetMaterializationData,
)

from feature_assets.kernel.contract import FeatureTable
from feature_assets.kernel.dates import days_in
from feature_assets.kernel.names import PUBLISH_CHECK, publish_pool, table_asset_path
from feature_assets.validation.partition import DayVerdict, audit_staged
from resources.offline_store import OfflineStore

SAMPLES = 10  # pandera failure cases shown per failed day


def build_publish_check(
    table: FeatureTable, partitions_def: dg.DailyPartitionsDefinition
) -> dg.AssetChecksDefinition:
    asset_key = dg.AssetKey(table_asset_path(table.name))
    check_key = dg.AssetCheckKey(asset_key, PUBLISH_CHECK)

    @dg.asset_check(
        asset=asset_key,
        name=PUBLISH_CHECK,
        blocking=True,
        partitions_def=partitions_def,
        pool=publish_pool(table.name),
        description=(
            f"Validates each built day of {table.name} against its pandera schema and, only "
            "if every day of the run passes, publishes them for training sets and the online "
            "sync (a failed day holds back its whole run)."
        ),
    )
    def _check(
        context: dg.AssetCheckExecutionContext, offline_store: dg.ResourceParam[OfflineStore]
    ) -> Iterator[dg.AssetCheckEvaluation | dg.AssetObservation | dg.Output]:
        window = context.partition_time_window
        days = days_in(window.start, window.end)
        verdicts = audit_staged(offline_store, table, context.run.run_id, days)
        failed = [v for v in verdicts if v.problem]
        if failed:
            for verdict in failed:
                context.log.error(verdict.problem)
            for verdict in verdicts:
                target = _built(context.instance, asset_key, verdict.day)
                yield _held_back(check_key, verdict, failed, target)
        else:
            by_day = offline_store.staged_statistics(table, context.run.run_id)
            offline_store.publish(table, context.run.run_id, days)
            offline_store.discard_staged(table, context.run.run_id)
            for day in days:
                stats = by_day.get(day, {"rows": 0})
                path = offline_store.day_file(table, day) or ""
                yield _evaluation(
                    check_key,
                    day,
                    None,
                    None,
                    {**stats, "path": dg.MetadataValue.path(path)},
                    _built(context.instance, asset_key, day),
                )
                # Observations carry the statistics to the asset's plots, day by day.
                yield dg.AssetObservation(
                    asset_key=asset_key, partition=day.isoformat(), metadata=stats
                )
        output = context.op_execution_context.assets_def.get_output_name_for_asset_check_key
        yield dg.Output(None, output_name=output(check_key))

    return _check


def _built(
    instance: dg.DagsterInstance, key: dg.AssetKey, day: date
) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The day's materialization the evaluation judges: Dagster shows a day's check outcome
    only while it belongs to the day's latest materialization."""
    latest = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day.isoformat()]), limit=1
    ).records
    if not latest:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        run_id=latest[0].event_log_entry.run_id,
        storage_id=latest[0].storage_id,
        timestamp=latest[0].timestamp,
    )


def _held_back(
    key: dg.AssetCheckKey,
    verdict: DayVerdict,
    failed: list[DayVerdict],
    target: AssetCheckEvaluationTargetMaterializationData | None,
) -> dg.AssetCheckEvaluation:
    """A failed day (ERROR, with its failure samples), or a valid day held back with it (WARN)."""
    if verdict.problem is None:
        culprits = ", ".join(v.day.isoformat() for v in failed)
        return _evaluation(
            key,
            verdict.day,
            dg.AssetCheckSeverity.WARN,
            f"valid, but not published: {culprits} failed in the same run",
            {},
            target,
        )
    samples = verdict.failures if verdict.failures is not None else pd.DataFrame()
    return _evaluation(
        key,
        verdict.day,
        dg.AssetCheckSeverity.ERROR,
        verdict.problem,
        {"failures": len(samples), "failure_samples": _sample_table(samples.head(SAMPLES))},
        target,
    )


def _evaluation(
    key: dg.AssetCheckKey,
    day: date,
    failure: dg.AssetCheckSeverity | None,
    description: str | None,
    metadata: dict,
    target: AssetCheckEvaluationTargetMaterializationData | None,
) -> dg.AssetCheckEvaluation:
    """The day's outcome: passed (and published) without a failure severity."""
    return dg.AssetCheckEvaluation(
        asset_key=key.asset_key,
        check_name=key.name,
        passed=failure is None,
        partition=day.isoformat(),
        blocking=True,
        severity=failure or dg.AssetCheckSeverity.ERROR,
        description=description,
        target_materialization_data=target,
        metadata={**metadata, "published": failure is None},
    )


def _sample_table(failures: pd.DataFrame) -> dg.MetadataValue:
    """pandera's failure cases as a Dagster table: column, check, failing value, row."""
    columns = ("column", "check", "failure_case", "index")
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({c: _text(row.get(c)) for c in columns})
            for row in failures.to_dict("records")
        ],
        schema=dg.TableSchema(columns=[dg.TableColumn(c, "string") for c in columns]),
    )


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
