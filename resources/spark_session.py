"""The Spark engine's session: one per process, started on first use.

`FEATURE_STORE_ENGINE=spark` selects it; `FEATURE_STORE_SPARK_MASTER` says where it runs
(`local[2]` by default: this machine's cores; `spark://host:7077` or `yarn` for a cluster).
pyspark is the `spark` extra, and Spark needs a Java 17+ runtime (`java` on the PATH or
`JAVA_HOME`)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from feature_assets.kernel.errors import CallerError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[2]"
# A local session's defaults; a cluster's own settings come from spark-defaults.conf or
# FEATURE_STORE_SPARK_CONF ("key=value,key=value").
LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # Point-in-time results are compared as instants: every timestamp is read as UTC.
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "4",
    # The driver collects a training set's features (Arrow) for DuckDB: 1 GB, Spark's
    # default, ran out with a 1M-row set. A heap limit, not memory taken up front.
    "spark.driver.memory": "4g",
    "spark.sql.adaptive.enabled": "true",
}

_lock = threading.Lock()
_session: list[SparkSession] = []


def spark_session(work_dir: str | Path) -> SparkSession:
    """The process's Spark session (created once); `work_dir` holds its warehouse and
    metastore folders, which Spark otherwise puts in the working directory."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise CallerError(
            "FEATURE_STORE_ENGINE=spark needs pyspark: install the project with its `spark` "
            "extra (pip install -e '.[spark]')"
        ) from None
    with _lock:
        # A stopped session's context has let go of its JVM side.
        if _session and _session[0].sparkContext._jsc is not None:
            return _session[0]
        work = Path(work_dir).resolve()
        work.mkdir(parents=True, exist_ok=True)
        master = os.environ.get("FEATURE_STORE_SPARK_MASTER", DEFAULT_MASTER)
        builder = SparkSession.builder.master(master).appName("feature-store")
        if master.startswith("local"):
            # Local Python workers run this interpreter (its packages), not the first python3
            # on the PATH (pyspark reads only the variable); a cluster's run its image's.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            # A local driver listens on loopback only, not on the machine's first interface.
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        conf = {
            **LOCAL_CONF,
            "spark.sql.warehouse.dir": str(work / "warehouse"),
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={work / 'derby'}",
            **_conf_from_env(),
        }
        for key, value in conf.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
        _session[:] = [session]
        return session


def _conf_from_env() -> dict[str, str]:
    raw = os.environ.get("FEATURE_STORE_SPARK_CONF", "").strip()
    conf = {}
    for pair in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CallerError(
                f"FEATURE_STORE_SPARK_CONF: {pair!r} is not key=value (pairs separated by commas)"
            )
        conf[key.strip()] = value.strip()
    return conf
