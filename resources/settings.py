"""Where things live and how to reach the stores, from the environment (with embedded defaults).

The same variables point the code at AWS DynamoDB and an `s3://`-style offline root in
production; unset, everything runs on this machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

from feature_assets.kernel.errors import CallerError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 8766
# botocore attempts per DynamoDB call, before the sync step's own (Dagster) retry.
DEFAULT_DYNAMODB_MAX_ATTEMPTS = 8
DEFAULT_START_DATE = "2025-01-01"
ENGINES = ("duckdb", "spark")
# The first day built in this home (the demo records its own), so Dagster's partition set
# starts where the data does instead of offering hundreds of empty days.
START_DATE_FILE = "start_date"


def recorded_start_date(home: Path) -> str | None:
    path = home / START_DATE_FILE
    return path.read_text().strip() or None if path.exists() else None


def record_start_date(home: Path, first_day: date) -> str:
    """Keep the earliest first day built here (a later demo run must not hide earlier days);
    returns it."""
    recorded = recorded_start_date(home)
    earliest = min(first_day.isoformat(), recorded or first_day.isoformat())
    home.mkdir(parents=True, exist_ok=True)
    (home / START_DATE_FILE).write_text(earliest + "\n")
    return earliest


@dataclass(frozen=True)
class Settings:
    home: Path
    dbt_project_dir: Path
    dynamodb_endpoint: str | None
    region: str
    table_prefix: str
    partition_start_date: str
    dynamodb_max_attempts: int = DEFAULT_DYNAMODB_MAX_ATTEMPTS
    # Share of online reads whose answers are logged for monitoring (0: none).
    serving_log_rate: float = 0.0
    # What builds and joins: "duckdb" (embedded) or "spark" (resources/spark_session.py).
    engine: str = "duckdb"
    # Where published days and pushes live, when not `<home>/offline` (`offline_uri`): a
    # local folder or `s3://bucket/prefix`; and the S3 endpoint (unset: AWS's own).
    offline_root: str | None = None
    s3_endpoint: str | None = None

    def __post_init__(self) -> None:
        root = self.offline_uri
        if root.startswith("s3://") and not root.removeprefix("s3://").split("/")[0]:
            raise CallerError(
                f"FEATURE_STORE_OFFLINE_ROOT={root!r}: name a bucket, as s3://bucket/prefix"
            )
        if "://" in root and not root.startswith("s3://"):
            raise CallerError(
                f"FEATURE_STORE_OFFLINE_ROOT={root!r}: give a local folder or an s3:// URI"
            )
        if self.offline_root_remote and self.engine == "spark":
            # Spark reads s3a:// through hadoop-aws, which this build does not install or test.
            raise CallerError(
                f"FEATURE_STORE_OFFLINE_ROOT={root!r} with FEATURE_STORE_ENGINE=spark: the "
                "Spark engine reads a local offline root only; use the duckdb engine with S3"
            )

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("FEATURE_STORE_HOME", PROJECT_ROOT / ".feature_store")).resolve()
        endpoint = os.environ.get(
            "FEATURE_STORE_DYNAMODB_ENDPOINT", f"http://127.0.0.1:{DEFAULT_PORT}"
        )
        return cls(
            home=home,
            dbt_project_dir=Path(
                os.environ.get("FEATURE_STORE_DBT_PROJECT_DIR", PROJECT_ROOT / "dbt_project")
            ).resolve(),
            # An empty value means "the AWS default endpoint" (production).
            dynamodb_endpoint=endpoint or None,
            region=os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")),
            table_prefix=os.environ.get("FEATURE_STORE_TABLE_PREFIX", "featurestore_"),
            partition_start_date=os.environ.get("FEATURE_STORE_START_DATE")
            or recorded_start_date(home)
            or DEFAULT_START_DATE,
            dynamodb_max_attempts=int(
                os.environ.get("FEATURE_STORE_DYNAMODB_MAX_ATTEMPTS", DEFAULT_DYNAMODB_MAX_ATTEMPTS)
            ),
            serving_log_rate=_rate("FEATURE_STORE_SERVING_LOG_RATE"),
            engine=_engine(),
            offline_root=os.environ.get("FEATURE_STORE_OFFLINE_ROOT", "").strip() or None,
            s3_endpoint=os.environ.get("FEATURE_STORE_S3_ENDPOINT", "").strip() or None,
        )

    @property
    def local_port(self) -> int | None:
        """The port of the embedded online store: the endpoint's, when the endpoint is on this
        machine. One setting, so the CLI, the demo and every client agree on it."""
        if not self.dynamodb_endpoint:
            return None
        url = urlparse(self.dynamodb_endpoint)
        if url.hostname not in ("127.0.0.1", "localhost") or url.port is None:
            return None
        return url.port

    @property
    def landing_dir(self) -> Path:
        return self.home / "landing"

    @property
    def offline_dir(self) -> Path:
        """The local offline root (published days and pushes), or, with an S3 root, the
        local folder of what stays on this machine: the syncs' state, the serving log and
        saved training sets' references."""
        return self.home / "offline" if self.offline_root_remote else Path(self.offline_uri)

    @property
    def offline_uri(self) -> str:
        """The offline root: the setting, else `<home>/offline` (derived, so a copy of the
        settings with another home moves it too)."""
        return self.offline_root or str(self.home / "offline")

    @property
    def offline_root_remote(self) -> bool:
        return self.offline_uri.startswith("s3://")

    @property
    def staging_dir(self) -> Path:
        return self.home / "staging"

    @property
    def catalog_dir(self) -> Path:
        """Where `feature-store catalog` writes the annotated dbt docs site."""
        return self.home / "catalog"

    @property
    def monitoring_dir(self) -> Path:
        """Where the drift reports go, one folder per day."""
        return self.home / "monitoring"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def dbt_parse_file(self) -> Path:
        """The dbt parse the last successful build of this home left (per engine: each builds
        with its own dbt target), which the next build starts from."""
        return self.home / "dbt_parse" / f"{self.engine}.msgpack"


def _engine() -> str:
    engine = os.environ.get("FEATURE_STORE_ENGINE", "").strip() or "duckdb"
    if engine not in ENGINES:
        raise CallerError(f"FEATURE_STORE_ENGINE={engine!r}: choose one of {', '.join(ENGINES)}")
    return engine


def _rate(variable: str) -> float:
    raw = os.environ.get(variable, "").strip()
    try:
        rate = float(raw) if raw else 0.0
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        raise CallerError(f"{variable}={raw!r}: give a share of requests between 0 and 1")
    return rate
