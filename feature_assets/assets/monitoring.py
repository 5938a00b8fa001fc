"""The drift asset of each feature service: a day's served values against its reference,
per feature, as asset metadata (plotted by the UI over days), one warning check per feature,
and an HTML report with charts."""

from datetime import date
from pathlib import Path

import dagster as dg

from feature_assets.kernel.contract import Contract, FeatureService
from feature_assets.kernel.names import MONITORING_GROUP, drift_asset_path, table_asset_path
from feature_assets.monitoring import drift, report
from feature_assets.monitoring.sources import monitored_columns, samples_for
from feature_assets.sdk import FeatureStore
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore


def drift_check_name(column: str) -> str:
    return f"drift_{column}"


def build_drift_asset(
    contract: Contract,
    service: FeatureService,
    partitions_def: dg.PartitionsDefinition,
    report_root: Path,
    thresholds: drift.Thresholds = drift.Thresholds(),  # noqa: B008 - frozen, shared on purpose
) -> dg.AssetsDefinition:
    """`report_root`: where each day's pages go (`<report_root>/<day>/<service>.html`)."""
    key = dg.AssetKey(drift_asset_path(service.name))
    # The column list is fixed by the contract, so the checks are known before any run.
    columns = monitored_columns(contract, service)
    rule = (
        f"null rate +{thresholds.null_rate:.0%} over the reference's, PSI > {thresholds.psi:g} "
        f"or KL > {thresholds.kl:g}"
    )

    @dg.asset(
        key=key,
        partitions_def=partitions_def,
        deps=[dg.AssetKey(table_asset_path(t)) for t in sorted(service.table_names)],
        group_name=MONITORING_GROUP,
        owners=[service.owner] if service.owner and "@" in service.owner else None,
        kinds={"python"},
        check_specs=[
            dg.AssetCheckSpec(
                drift_check_name(c.name),
                asset=key,
                description=f"Warns when {c.name} drifts from the reference ({rule}).",
            )
            for c in columns
        ],
        description=(
            f"Drift of the features of {service.name}: each day's served values against "
            "the saved training set its model was trained on (else the week before), per "
            f"feature: null rate, PSI, KL, count. Warns at {rule}."
        ),
    )
    def _drift(
        context: dg.AssetExecutionContext,
        offline_store: dg.ResourceParam[OfflineStore],
        online_store: dg.ResourceParam[OnlineStore],
    ) -> dg.MaterializeResult:
        store = FeatureStore(
            contract.tables, offline_store, online_store, contract.services, contract.on_demand
        )
        day = date.fromisoformat(context.partition_key)
        monitored, served, reference = samples_for(store, service, day)
        kinds = {c.name: c.kind for c in monitored}
        results = drift.compare(reference.values, served.values, kinds=kinds)
        directory = report_root / day.isoformat()
        page = report.write_report(
            directory,
            service.name,
            results,
            thresholds=thresholds,
            day=day.isoformat(),
            reference=reference.label,
            served=served.label,
        )
        report.save_results(directory, service.name, results)
        checks, warned = [], []
        metadata: dict = {
            "report": dg.MetadataValue.path(str(page)),
            "reference": reference.label,
            "served": served.label,
            "served_rows": served.rows,
        }
        for result in results:
            alerts = result.alerts(thresholds)
            figures = {
                "count": result.count,
                "null_rate": round(result.null_rate, 6),
                "reference_null_rate": round(result.reference_null_rate, 6),
                **({"psi": round(result.psi, 6)} if result.psi is not None else {}),
                **({"kl": round(result.kl, 6)} if result.kl is not None else {}),
            }
            metadata.update({f"{name}/{result.feature}": v for name, v in figures.items()})
            if alerts:
                warned.append(result.feature)
            checks.append(
                dg.AssetCheckResult(
                    check_name=drift_check_name(result.feature),
                    passed=not alerts,
                    severity=dg.AssetCheckSeverity.WARN,
                    description=(
                        f"{service.name}.{result.feature} drifted on {day}: {'; '.join(alerts)}"
                        if alerts
                        else None
                    ),
                    metadata=figures,
                )
            )
        if warned:
            context.log.warning(f"{service.name} on {day}: drift in {', '.join(warned)}")
        return dg.MaterializeResult(metadata=metadata, check_results=checks)

    return _drift
