"""Drift as Dagster sees it: a model's training set, the reads served after it (logged by
the SDK), and the service's drift asset warning on exactly the feature that drifted."""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from feature_assets.assets.build import build_definitions
from feature_assets.assets.monitoring import build_drift_asset, drift_check_name
from feature_assets.assets.runs import pipeline_job
from feature_assets.kernel.contract import Contract, FeatureService
from feature_assets.kernel.names import MONITORING_JOB, PARITY_CHECK, online_asset_path
from feature_assets.monitoring.report import load_results
from feature_assets.sdk import FeatureStore
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from resources.serving_log import ServingLog
from tests.builders import make_settings, publish_rows, synthetic_table

TABLE = synthetic_table(
    name="user_daily_stats_7d",
    ttl=timedelta(days=30),
    features=("amount", "visits", "segment"),
    feature_types={"amount": "float", "segment": "str"},
)
SERVICE = FeatureService(
    "scoring_v1", tuple(f"{TABLE.name}:{f}" for f in TABLE.feature_names), owner="ml@example.com"
)
USERS = 1_500
TRAINED = date(2026, 3, 1)  # the day whose values the model was trained on
SERVED = date(2026, 3, 2)  # the day whose values are then served
SERVED_AT = datetime(2026, 3, 3, 12)  # reads happen the day after, within the TTL


def day_rows(day: date, seed: int, drift: str | None = None) -> list[dict]:
    rng = random.Random(seed)
    stamp = datetime(day.year, day.month, day.day) + timedelta(days=1)
    rows = []
    for user in range(1, USERS + 1):
        amount = rng.gauss(100, 15) + (40 if drift == "amount" else 0)
        visits = rng.randrange(0, 6)
        mix = (0.2, 0.3, 0.5) if drift == "segment" else (0.5, 0.3, 0.2)
        segment = rng.choices(("a", "b", "c"), weights=mix)[0]
        rows.append(
            {
                "user_id": user,
                "feature_date": day,
                "event_timestamp": stamp,
                "created_at": stamp,
                "amount": amount,
                "visits": None if drift == "visits" and rng.random() < 0.2 else visits,
                "segment": segment,
            }
        )
    return rows


def served_and_judged(
    tmp_path, endpoint: str, drift: str | None
) -> dict[str, dg.AssetCheckEvaluation]:
    offline = OfflineStore(root=str(tmp_path / "offline"), staging_root=str(tmp_path / "staging"))
    online = OnlineStore(endpoint_url=endpoint, table_prefix=f"t{uuid.uuid4().hex[:8]}_")
    contract = Contract({TABLE.name: TABLE}, {SERVICE.name: SERVICE}, {}, {})
    store = FeatureStore(
        contract.tables,
        offline,
        online,
        contract.services,
        serving_log=ServingLog(offline.root, sample_rate=1.0),
    )
    publish_rows(offline, TABLE, day_rows(TRAINED, seed=1))
    entities = pd.DataFrame(
        {"user_id": range(1, USERS + 1), "event_timestamp": datetime(2026, 3, 2, 6)}
    )
    store.save_training_set(tmp_path / "trained", entities, SERVICE.name)
    publish_rows(offline, TABLE, day_rows(SERVED, seed=2, drift=drift))
    online.write_rows(TABLE, offline.latest_rows(TABLE))
    reads = [{"user_id": u} for u in range(1, USERS + 1)]
    for start in range(0, USERS, 100):
        store.get_online_features(SERVICE.name, reads[start : start + 100], now=SERVED_AT)
    store.close()

    partitions = dg.DailyPartitionsDefinition(start_date="2026-02-01", end_offset=1)
    asset = build_drift_asset(contract, SERVICE, partitions, tmp_path / "reports")
    result = dg.materialize(
        [asset],
        partition_key=SERVED_AT.date().isoformat(),
        resources={"offline_store": offline, "online_store": online},
        raise_on_error=False,
    )
    assert result.success
    metadata = result.asset_materializations_for_node(asset.op.name)[0].metadata
    assert metadata["count/amount"].value == USERS
    assert "training set" in metadata["reference"].value
    figures = load_results(tmp_path / "reports" / SERVED_AT.date().isoformat(), SERVICE.name)
    assert [f.feature for f in figures] == list(TABLE.feature_names)
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_no_drift_keeps_every_check_green(tmp_path, online_server) -> None:
    checks = served_and_judged(tmp_path, online_server.endpoint, drift=None)
    assert set(checks) == {drift_check_name(f) for f in TABLE.feature_names}
    assert all(check.passed for check in checks.values()), {
        name: check.description for name, check in checks.items() if not check.passed
    }


@pytest.mark.parametrize("feature", ["amount", "segment", "visits"])
def test_drift_injected_into_one_feature_warns_on_exactly_that_feature(
    tmp_path, online_server, feature
) -> None:
    checks = served_and_judged(tmp_path, online_server.endpoint, drift=feature)
    failed = {name for name, check in checks.items() if not check.passed}
    assert failed == {drift_check_name(feature)}
    warning = checks[drift_check_name(feature)]
    assert warning.severity == dg.AssetCheckSeverity.WARN
    assert f"{SERVICE.name}.{feature}" in warning.description


def test_refresh_runs_leave_parity_to_the_monitoring_job(tmp_path) -> None:
    defs = build_definitions(make_settings(tmp_path, "http://127.0.0.1:9"))
    sync = dg.AssetKey(online_asset_path("user_daily_transactions_7d"))
    # The whole pipeline, and a refresh of one table's sync as a backfill or sensor asks it.
    for job in (pipeline_job(defs), pipeline_job(defs, [sync])):
        assert not [n.name for n in job.graph.nodes if n.name.endswith(PARITY_CHECK)]
    monitoring = defs.resolve_job_def(MONITORING_JOB).graph.nodes
    assert len([n for n in monitoring if n.name.endswith(PARITY_CHECK)]) == 3
