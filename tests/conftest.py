"""Shared fixtures: a real DynamoDB-compatible server over loopback, settings per test."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_assets.contract import FeatureColumn, FeatureTable, load_feature_tables
from feature_assets.dbt_project import feature_dbt_project
from resources.local_dynamodb import LocalServer, start_server, stop_server
from resources.offline_store import OfflineStore
from resources.settings import PROJECT_ROOT, Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def online_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One moto server for the session, started and stopped (by pid) like the embedded store."""
    home = tmp_path_factory.mktemp("online_server")
    server = start_server(home, free_port(), "moto")
    yield server
    stop_server(home)


@pytest.fixture(scope="session")
def demo_tables() -> dict[str, FeatureTable]:
    project = feature_dbt_project(PROJECT_ROOT / "dbt_project")
    return load_feature_tables(json.loads(project.manifest_path.read_text()))


def make_settings(home: Path, server: LocalServer, dbt_project_dir: Path | None = None) -> Settings:
    """Settings for one isolated environment: its own folders and its own table prefix."""
    return Settings(
        home=home,
        dbt_project_dir=dbt_project_dir or PROJECT_ROOT / "dbt_project",
        dynamodb_endpoint=server.endpoint,
        region="us-east-1",
        table_prefix=f"t{uuid.uuid4().hex[:8]}_",
        partition_start_date="2025-12-01",
    )


def synthetic_table(
    name: str = "user_hourly_clicks_1d",
    keys: tuple[str, ...] = ("user_id",),
    ttl: timedelta | None = timedelta(hours=30),
    features: tuple[str, ...] = ("value",),
    key_types: dict[str, str] | None = None,
) -> FeatureTable:
    """A feature table defined in code, for tests that need shapes the demo table lacks."""
    return FeatureTable(
        name=name,
        description="synthetic",
        entity=name.split("_")[0],
        keys=keys,
        key_types=key_types or dict.fromkeys(keys, "int"),
        timestamp="event_timestamp",
        created_timestamp="created_at",
        partition_column="feature_date",
        ttl=ttl,
        freshness=None,
        owner="team:tests",
        online=True,
        tags=(),
        features=tuple(FeatureColumn(name=f, logical_type="int") for f in features),
    )


def publish_rows(store: OfflineStore, table: FeatureTable, rows: list[dict]) -> list[date]:
    """Stage rows as one run and publish every day they touch, through the store's own path."""
    run_id = uuid.uuid4().hex
    staged = store.staged_path(table, run_id)
    staged.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema(
        [(key, pa.int64() if table.key_types[key] == "int" else pa.string()) for key in table.keys]
        + [
            ("feature_date", pa.date32()),
            ("event_timestamp", pa.timestamp("us")),
            ("created_at", pa.timestamp("us")),
        ]
        + [(f, pa.int64()) for f in table.feature_names]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), staged)
    days = sorted({row["feature_date"] for row in rows})
    store.publish(table, run_id, days)
    store.discard_staged(table, run_id)
    return days
