"""`feature-store ui` serves the code location: assets, owners, groups and the publish check."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from conftest import free_port

QUERY = """{ assetNodes { assetKey { path } groupName owners { ... on UserAssetOwner { email } }
  assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } }"""


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"content-type": "application/json"},
    )
    return json.loads(urllib.request.urlopen(request, timeout=30).read())["data"]


def test_dagster_ui_shows_feature_table_online_sync_and_blocking_check(tmp_path) -> None:
    port = free_port()
    env = {**os.environ, "FEATURE_STORE_HOME": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "feature_assets.cli", "ui", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        nodes: list = []
        while time.monotonic() < deadline and len(nodes) < 3:
            time.sleep(2)
            try:
                nodes = graphql(port, QUERY)["assetNodes"]
            except OSError:
                continue
        by_key = {"/".join(node["assetKey"]["path"]): node for node in nodes}
        table = by_key["user_daily_transactions_7d"]
        assert table["groupName"] == "user"
        assert table["owners"] == [{"email": "risk-ml@example.com"}]
        assert {"name": "validated_and_published", "blocking": True} in table["assetChecksOrError"][
            "checks"
        ]
        assert by_key["online/user_daily_transactions_7d"]["groupName"] == "user"
        assert "raw/card_transactions" in by_key
    finally:
        process.send_signal(signal.SIGTERM)  # by pid: `feature-store ui` became `dagster dev`
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
