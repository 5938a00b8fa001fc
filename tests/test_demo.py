"""The README's first command, on small data: from raw files to an online read and a training set."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feature_assets.sdk import FeatureStore
from resources.local_dynamodb import running_server
from resources.settings import Settings
from tests.builders import BUDGET_FACTOR, DBT_LOG_LINES, free_port, timed

pytestmark = pytest.mark.integration
# The demo's work in units of one CLI start (interpreter, imports, contract): its dbt builds,
# Dagster steps and reads on 3 small days measured about 15 of them on 2 idle cores.
DEMO_UNITS = 15


def cli(*args: str, env: dict[str, str], budget: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [sys.executable, "-m", "feature_assets.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=budget,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(
            f"feature-store {' '.join(args)} not done within its budget of {budget:.0f}s:\n"
            f"{(error.stdout or b'')[-4000:]!r}\n{(error.stderr or b'')[-4000:]!r}"
        )


def test_demo_ends_with_a_non_empty_online_read_and_training_set(tmp_path, monkeypatch) -> None:
    port = free_port()
    env = {
        **os.environ,
        "FEATURE_STORE_HOME": str(tmp_path),
        "FEATURE_STORE_DYNAMODB_ENDPOINT": f"http://127.0.0.1:{port}",
    }
    env.pop("FEATURE_STORE_TABLE_PREFIX", None)
    _, startup = timed(lambda: cli("tables", env=env, budget=3_600))
    try:
        demo = cli(
            "demo",
            "--days",
            "3",
            "--users",
            "300",
            "--transactions-per-day",
            "2000",
            env=env,
            budget=BUDGET_FACTOR * DEMO_UNITS * startup,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        output = demo.stdout
        # Piped: progress as lines on stderr; dbt's log only in the file named.
        assert re.search(r": 100%\|.*\| (\d+)/\1 ", demo.stderr), demo.stderr
        assert not DBT_LOG_LINES.search(output + demo.stderr), output + demo.stderr
        (log,) = re.findall(r"its log: (\S+)\)", output)
        assert DBT_LOG_LINES.search(Path(log).read_text())
        assert "[4/6] plain boto3 get_item" in output and "'N':" in output
        training = output.split("[5/6] training set")[1].split("\n\n")[0].splitlines()[2:]
        assert len(training) >= 2 and not any("NaN" in row or "<NA>" in row for row in training)

        server = running_server(tmp_path)
        assert server is not None and server.port == port
        settings = replace(Settings.from_env(), home=tmp_path, dynamodb_endpoint=server.endpoint)
        store = FeatureStore.from_settings(settings)
        table = store.tables["user_daily_transactions_7d"]
        users = store.offline.read_partition(table, store.offline.published_days(table)[-1])[
            "user_id"
        ].head(10)
        online = store.get_online_features(
            ["user_daily_transactions_7d:transaction_count_7d"],
            [{"user_id": int(u)} for u in users],
            now=datetime.now(UTC),
        )
        assert all(
            count is not None and count >= 0 for count in online.to_dict()["transaction_count_7d"]
        )
        # The real syncs wrote the co-located service's items: one read equals the tables'.
        churn = store.services["churn_prediction_v1"]
        assert churn.online_colocated
        customers = [{"customer_id": int(u)} for u in users]
        now = datetime.now(UTC)
        together = store.get_online_features(churn.name, customers, now=now)
        apart = store.get_online_features(list(churn.features), customers, now=now)
        assert (together.rows, together.statuses) == (apart.rows, apart.statuses)
        assert any(set(s.values()) == {"present"} for s in together.statuses)
        assert "feature service fraud_detection_v2 (on-demand" in output
        assert "push of a fresh value (1 item written)" in output
        # Monitoring: each model's training set, reads served and logged, drift and parity.
        monitoring = output.split("[6/6] monitoring")[1].split("\n\n")[0]
        for service in store.services:
            assert re.search(
                rf"^  {service} +(no drift|\d+ of \d+ features drifted)", monitoring, re.M
            )
        for name in (table.name, "customer_daily_balance_30d", "customer_daily_engagement_7d"):
            assert re.search(rf"^  {name} +ok: ", monitoring, re.M), monitoring
        (index,) = re.findall(r"^report: (\S+)$", monitoring, re.M)
        assert "fraud_detection_v2.html" in Path(index).read_text()
        # Dagster's partitions (for `make ui` too) start at the first day the demo built.
        monkeypatch.setenv("FEATURE_STORE_HOME", str(tmp_path))
        monkeypatch.delenv("FEATURE_STORE_START_DATE", raising=False)
        first_built = store.offline.published_days(table)[0]
        assert Settings.from_env().partition_start_date == first_built.isoformat()
    finally:
        stop = cli("online-store", "stop", env=env, budget=BUDGET_FACTOR * startup)
    assert stop.returncode == 0
    assert running_server(tmp_path) is None
