"""The online/offline parity check of each online feature table, on its online-sync asset.

Not partitioned: it compares what is served now with what a training set has now, once per
run, whatever days the run synced. Non-blocking: a mismatch is reported, nothing is held back
(the values are already served)."""

import dagster as dg

from feature_assets.assets.online_sync import online_asset_key
from feature_assets.kernel.contract import FeatureTable
from feature_assets.kernel.errors import StoreUnavailableError
from feature_assets.kernel.names import PARITY_CHECK, online_sync_pool
from feature_assets.monitoring.parity import ParityReport, check_parity, mismatch_records
from feature_assets.sdk import FeatureStore
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore

MISMATCH_COLUMNS = ("key", "feature", "online", "offline", "online_status")


def build_parity_check(
    table: FeatureTable, sample_size: int = 500, *, pool_table: str | None = None
) -> dg.AssetChecksDefinition:
    """`pool_table`: whose sync pool to join (the online sync's), so no sync of the table
    writes between the two reads."""

    @dg.asset_check(
        asset=online_asset_key(table),
        name=PARITY_CHECK,
        blocking=False,
        pool=online_sync_pool(pool_table or table.name),
        description=(
            f"Reads up to {sample_size} published keys of {table.name} online and through the "
            "training-set join as of now, and fails naming each key and feature served "
            "differently (a stale online table, or a sync that wrote wrong values)."
        ),
    )
    def _parity(
        offline_store: dg.ResourceParam[OfflineStore],
        online_store: dg.ResourceParam[OnlineStore],
    ) -> dg.AssetCheckResult:
        store = FeatureStore({table.name: table}, offline_store, online_store)
        try:
            report = check_parity(store, table, sample_size=sample_size)
        except StoreUnavailableError as error:
            # Nothing was compared: say so, without failing the run that served the values.
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"feature table {table.name!r}: parity not checked: {error}",
            )
        return _result(report)

    return _parity


def _result(report: ParityReport) -> dg.AssetCheckResult:
    metadata: dict[str, dg.RawMetadataValue] = {
        "as_of": dg.MetadataValue.timestamp(report.now),
        "sampled": report.sampled,
        "mismatches": report.mismatch_count,
        "mismatched_keys": report.mismatched_keys,
        # One number per feature, so each gets its own plot across runs.
        **{f"mismatches/{f}": n for f, n in report.mismatches_by_feature.items()},
    }
    if not report.passed:
        metadata["sample_mismatches"] = dg.MetadataValue.table(
            records=[dg.TableRecord(dict(r)) for r in mismatch_records(report.mismatches)],
            schema=dg.TableSchema(columns=[dg.TableColumn(c, "string") for c in MISMATCH_COLUMNS]),
        )
    return dg.AssetCheckResult(
        passed=report.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=report.summary(),
        metadata=metadata,
    )
