"""`feature-store ui` serves the code location: assets, owners, groups and the publish check."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from feature_assets.kernel.contract import parse_duration
from feature_assets.kernel.names import MONITORING_JOB, online_asset_path
from tests.builders import BUDGET_FACTOR, free_port, timed, wait_for, yaml_feature_tables

QUERY = """{ assetNodes { assetKey { path } groupName
  owners { ... on UserAssetOwner { email } ... on TeamAssetOwner { team } }
  tags { key value }
  internalFreshnessPolicy { ... on TimeWindowFreshnessPolicy { failWindowSeconds } }
  metadataEntries { label ... on TextMetadataEntry { text } }
  assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } }"""

YAML_TABLES = yaml_feature_tables()
pytestmark = pytest.mark.integration


INSTIGATORS = """{ repositoriesOrError { ... on RepositoryConnection { nodes {
  schedules { name cronSchedule scheduleState { status } }
  sensors { name sensorState { status } } } } } }"""


def owner_strings(node: dict) -> list[str]:
    return [o.get("email") or f"team:{o['team']}" for o in node["owners"]]


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"content-type": "application/json"},
    )
    return json.loads(urllib.request.urlopen(request, timeout=30).read())["data"]


def test_dagster_graphql_shows_owners_group_tags_freshness_and_check_of_every_table(
    tmp_path,
) -> None:
    port = free_port()
    env = {**os.environ, "FEATURE_STORE_HOME": str(tmp_path)}
    # `dagster dev` starts a webserver, a daemon and a code server that loads the definitions:
    # a few loads of the code location, whose cost on this machine right now is the unit.
    _, load = timed(
        lambda: subprocess.run(
            [sys.executable, "-c", "from feature_assets.definitions import defs; defs()"],
            env=env,
            check=True,
            capture_output=True,
        )
    )
    log = tmp_path / "dagster_dev.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "feature_assets.cli", "ui", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        nodes: list = []

        def all_tables_served() -> bool:
            nonlocal nodes
            try:
                nodes = graphql(port, QUERY)["assetNodes"]
            except (OSError, KeyError, TypeError):
                return False
            return len(nodes) >= len(YAML_TABLES)

        wait_for(all_tables_served, BUDGET_FACTOR * 4 * load, "dagster dev serving the tables", log)
        by_key = {"/".join(node["assetKey"]["path"]): node for node in nodes}
        for name, model in YAML_TABLES.items():
            meta = model["feature_table"]
            table = by_key[name]
            assert table["groupName"] == meta["entity"]
            assert owner_strings(table) == [meta["owner"]]
            assert {t["key"] for t in table["tags"]} >= {"feature_table", *meta["tags"]}
            fail_window = table["internalFreshnessPolicy"]["failWindowSeconds"]
            assert fail_window == parse_duration(meta["freshness"]).total_seconds()
            entries = {e["label"]: e.get("text") for e in table["metadataEntries"]}
            assert entries["entity"] == meta["entity"] and entries["owner"] == meta["owner"]
            assert {"name": "validated_and_published", "blocking": True} in table[
                "assetChecksOrError"
            ]["checks"]
            if meta.get("online", True):
                assert by_key["/".join(online_asset_path(name))]["groupName"] == meta["entity"]
            else:
                assert "/".join(online_asset_path(name)) not in by_key
        assert "raw/card_transactions" in by_key

        # `dagster dev` on the demo starts with every schedule and sensor running.
        [repository] = graphql(port, INSTIGATORS)["repositoriesOrError"]["nodes"]
        schedules = {s["name"]: s for s in repository["schedules"]}
        assert {name.rsplit("_every_", 1)[0] for name in schedules} == {
            *(f"refresh_{name}" for name in YAML_TABLES),
            f"{MONITORING_JOB}_daily",
        }
        assert {s["scheduleState"]["status"] for s in schedules.values()} == {"RUNNING"}
        sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
        assert sensors == {"raw_landing_sensor": "RUNNING", "online_sync_sensor": "RUNNING"}
    finally:
        process.send_signal(signal.SIGTERM)  # by pid: `feature-store ui` became `dagster dev`
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
