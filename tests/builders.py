"""Builders the tests (and benchmarks) share: settings, synthetic tables, published rows,
the YAML as written, and waits bounded by budgets derived from the work."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from feature_assets.assets.build import build_definitions
from feature_assets.assets.runs import QUIET_RUN_CONFIG
from feature_assets.demo_data import DemoDataSpec, generate_landing_data
from feature_assets.kernel.contract import FeatureColumn, FeatureTable
from feature_assets.kernel.names import PIPELINE_JOB
from feature_assets.sdk import FeatureStore
from feature_assets.validation.partition import check_time_types
from resources.offline_store import OfflineStore
from resources.settings import PROJECT_ROOT, Settings
from resources.sql import ARROW_TYPES
from resources.storage import Storage

MODELS_DIR = PROJECT_ROOT / "dbt_project" / "models"
# The training-set join's engines: its oracle tests run on both. Spark is its own tier
# (`pytest -m spark`; a local JVM), which `make test` runs too.
JOIN_ENGINES = ["duckdb", pytest.param("spark", marks=pytest.mark.spark)]
# The factor a budget allows over the measured or expected duration of the work: generous,
# because the machine may be shared, and never a fixed deadline.
BUDGET_FACTOR = 10
# dbt's own console lines: they belong in a run's log file, never on the terminal.
DBT_LOG_LINES = re.compile(r"Running with dbt|Registered adapter|Concurrency:|Unable to do partial")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_settings(home: Path, endpoint: str, dbt_project_dir: Path | None = None) -> Settings:
    """Settings for one isolated environment: its own folders and its own table prefix."""
    return Settings(
        home=home,
        dbt_project_dir=dbt_project_dir or PROJECT_ROOT / "dbt_project",
        dynamodb_endpoint=endpoint,
        region="us-east-1",
        table_prefix=f"t{uuid.uuid4().hex[:8]}_",
        partition_start_date="2025-12-01",
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a CLI subprocess use `settings`."""
    return {
        **os.environ,
        "FEATURE_STORE_HOME": str(settings.home),
        "FEATURE_STORE_DBT_PROJECT_DIR": str(settings.dbt_project_dir),
        "FEATURE_STORE_DYNAMODB_ENDPOINT": settings.dynamodb_endpoint or "",
        "FEATURE_STORE_TABLE_PREFIX": settings.table_prefix,
        "FEATURE_STORE_START_DATE": settings.partition_start_date,
        "FEATURE_STORE_OFFLINE_ROOT": settings.offline_uri,
        "FEATURE_STORE_S3_ENDPOINT": settings.s3_endpoint or "",
    }


def synthetic_table(
    name: str = "user_hourly_clicks_1d",
    keys: tuple[str, ...] = ("user_id",),
    ttl: timedelta | None = timedelta(hours=30),
    features: tuple[str, ...] = ("value",),
    key_types: dict[str, str] | None = None,
    feature_types: dict[str, str] | None = None,
) -> FeatureTable:
    """A feature table defined in code, for tests that need shapes the demo table lacks
    (features are integers unless `feature_types` says otherwise)."""
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
        features=tuple(
            FeatureColumn(name=f, logical_type=(feature_types or {}).get(f, "int"))
            for f in features
        ),
    )


def feature_table_node(
    name: str, keys: list[str], features: dict[str, str], patch_path: str | None = None
) -> dict[str, Any]:
    """A dbt manifest node of a feature table: integer keys, a date partition, an event time
    and `features` (name -> data_type), for tests of load-time rules without dbt."""
    columns = {k: "bigint" for k in keys} | {"feature_date": "date", "event_timestamp": "timestamp"}
    meta = {
        "entity": name.split("_")[0],
        "keys": keys,
        "timestamp": "event_timestamp",
        "owner": "team:x",
    }
    node: dict[str, Any] = {
        "resource_type": "model",
        "name": name,
        "config": {"meta": {"feature_table": meta}},
        "columns": {c: {"name": c, "data_type": t} for c, t in (columns | features).items()},
    }
    if patch_path:
        node["patch_path"] = patch_path
    return node


def s3_bucket(endpoint: str) -> str:
    """A new, empty bucket on the S3 server at `endpoint` (moto serves S3 on the same port
    as DynamoDB); returns its `s3://` root."""
    import boto3  # only the S3 tests need a client of their own

    bucket = f"fs-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    ).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/offline"


def s3_offline_store(tmp: Path, endpoint: str, engine: str = "duckdb") -> OfflineStore:
    """An offline store whose root is a new bucket; staging and state stay under `tmp`."""
    root = s3_bucket(endpoint)
    return OfflineStore(
        root,
        staging_root=tmp / "staging",
        engine=engine,
        storage=Storage(root, s3_endpoint=endpoint, region="us-east-1"),
        state_root=tmp / "state",
    )


def end_of(day: date) -> datetime:
    """Midnight after `day`: the event time of a daily row that covers the whole day."""
    return datetime.combine(day, datetime.min.time()) + timedelta(days=1)


MICROSECONDS = pa.timestamp("us")  # the type the dbt macro writes


def publish_rows(
    store: OfflineStore,
    table: FeatureTable,
    rows: list[dict],
    time_type: pa.DataType = MICROSECONDS,
) -> list[date]:
    """Stage rows as one run, written by pyarrow (not dbt), and publish every day they touch.

    The publish check's type rule applies (a zone or nanoseconds are refused); its pandera
    schema does not, so rows may tie across days as two runs can make them."""
    run_id = uuid.uuid4().hex
    staged = store.staged_path(table, run_id)
    staged.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema(
        [(key, pa.int64() if table.key_types[key] == "int" else pa.string()) for key in table.keys]
        + [
            ("feature_date", pa.date32()),
            ("event_timestamp", time_type),
            ("created_at", time_type),
        ]
        + [(f.name, ARROW_TYPES[f.logical_type]) for f in table.features]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), staged)
    days = sorted({row["feature_date"] for row in rows})
    try:
        check_time_types(table, store.staged_types(table, run_id), days)
        store.publish(table, run_id, days)
    finally:
        store.discard_staged(table, run_id)
    return days


def yaml_feature_tables() -> dict[str, dict[str, Any]]:
    """The feature tables as written in the YAML files, read without dbt or the contract code."""
    tables = {}
    for path in sorted((MODELS_DIR / "features").glob("*.yml")):
        for model in yaml.safe_load(path.read_text()).get("models", []):
            meta = model.get("config", {}).get("meta", {}).get("feature_table")
            if meta:
                tables[model["name"]] = {**model, "feature_table": meta}
    return tables


def timed(work: Callable[[], Any]) -> tuple[Any, float]:
    """The work's result and how long it took: the unit a budget is derived from."""
    started = time.monotonic()
    result = work()
    return result, time.monotonic() - started


def log_tail(path: Path, lines: int = 60) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_for(
    condition: Callable[[], bool], budget: float, what: str, log: Path | None = None
) -> None:
    """Poll until `condition` holds; past the budget, fail naming `what`, with the log's tail."""
    deadline = time.monotonic() + budget
    while not condition():
        if time.monotonic() > deadline:
            detail = f"\n--- {log} ---\n{log_tail(log)}" if log else ""
            pytest.fail(f"{what}: not done within its budget of {budget:.0f}s{detail}")
        time.sleep(0.5)


def run_within(
    processes: Sequence[subprocess.Popen], budget: float, what: str
) -> list[tuple[str, str]]:
    """Wait for every process (text pipes) within one shared budget; on overrun kill them all
    and fail with each one's output."""
    deadline = time.monotonic() + budget
    outputs = []
    for process in processes:
        try:
            outputs.append(process.communicate(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            logs = "\n".join(
                f"--- pid {p.pid} ---\n{(p.communicate()[0] or '')[-3000:]}" for p in processes
            )
            pytest.fail(f"{what}: not done within its budget of {budget:.0f}s\n{logs}")
    return outputs


def item_values(items: Mapping[str, Any]) -> dict[str, Any]:
    return {name: next(iter(value.values())) for name, value in items.items()}


def backfill_process(
    settings: Settings, first: date, last: date, table: str, *, own_session: bool = False
) -> subprocess.Popen:
    """`feature-store backfill first last --table table` as the README runs it (text output).
    In its own session, kill -9 of the group takes the run and its dbt child together."""
    command = [sys.executable, "-m", "feature_assets.cli", "backfill", str(first), str(last)]
    return subprocess.Popen(
        [*command, "--table", table],
        env=settings_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=own_session,
    )


@dataclass
class PipelineEnv:
    """One isolated environment with landed demo data: its definitions, a test instance and
    the SDK, plus what the daemon would do with its sensors."""

    settings: Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance
    store: FeatureStore

    def tick(self, sensor: str, cursor: str | None) -> tuple[list[dg.RunRequest], str | None]:
        data = self.defs.resolve_sensor_def(sensor).evaluate_tick(
            dg.build_sensor_context(instance=self.instance, cursor=cursor)
        )
        return list(data.run_requests or []), data.cursor

    def launch(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        """What the daemon does with a sensor's run request, in process."""
        return self.defs.resolve_job_def(PIPELINE_JOB).execute_in_process(
            instance=self.instance,
            asset_selection=request.asset_selection,
            tags=request.tags,
            run_config=QUIET_RUN_CONFIG,
            raise_on_error=False,
        )


@contextmanager
def pipeline_env(
    home: Path, endpoint: str, landed: tuple[date, date], spec: DemoDataSpec
) -> Iterator[PipelineEnv]:
    """Demo data landed for the days [first, end) of `landed`, in its own home and instance."""
    settings = make_settings(home, endpoint)
    generate_landing_data(settings.landing_dir, *landed, spec)
    with dg.instance_for_test() as instance:
        yield PipelineEnv(
            settings, build_definitions(settings), instance, FeatureStore.from_settings(settings)
        )
