"""The four models built on DuckDB and on Spark (local) from the same landing data, next to
their floor (the compiled SQL run directly in DuckDB), in the same run.

    .venv/bin/python -m benchmarks.engines [--home .feature_store] [--days 60] [--repeats 2]

It uses the landing data of a store: `feature-store demo` lands 60 days of 20,000 users,
from which the four models build 10.8M feature rows. Each build is `dbt build --target
<engine>` over the last `--days` landed days, in a new process as a run starts it, staging to
a temporary folder. Spark's time includes its driver's start (a JVM, measured apart too).
Prints median and p99 per engine, the rows built (equal on both, or it fails), and the
ratios to the floor and to DuckDB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

from benchmarks.historical_join import p99
from benchmarks.refresh import BIN, MODELS, ROOT, model_floor


def landed_days(home: Path) -> list[date]:
    folders = (home / "landing" / "card_transactions").glob("transaction_date=*")
    return sorted(date.fromisoformat(f.name.split("=", 1)[1]) for f in folders)


def build(home: Path, engine: str, first: date, end: date) -> tuple[float, int]:
    """One `dbt build` of the four models for [first, end); (seconds, rows staged)."""
    staged = Path(tempfile.mkdtemp(prefix=f"engines-{engine}-"))
    env = {
        **os.environ,
        "FEATURE_STORE_BUILD_START": first.isoformat(),
        "FEATURE_STORE_BUILD_END": end.isoformat(),
        "FEATURE_STORE_LANDING_DIR": str(home / "landing"),
        "FEATURE_STORE_STAGED_PATH": str(staged / "{table}.parquet"),
        "FEATURE_STORE_SPARK_WORK": str(staged / ".spark"),
        "DBT_PROFILES_DIR": str(ROOT / "dbt_project"),
    }
    command = [str(BIN / "dbt"), "build", "--quiet", "--target-path", str(staged / "target")]
    command += ["--select", *MODELS]
    if engine == "spark":
        command += ["--target", "spark"]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT / "dbt_project", env=env, check=True)
    seconds = time.perf_counter() - started
    con = duckdb.connect()
    rows = 0
    for model in MODELS:
        path = staged / f"{model}.parquet"
        files = f"'{path}/*.parquet'" if path.is_dir() else f"'{path}'"
        rows += con.execute(f"SELECT count(*) FROM read_parquet({files})").fetchall()[0][0]
    shutil.rmtree(staged, ignore_errors=True)
    return seconds, rows


def spark_start() -> float:
    """A local Spark session's start alone, in a new process (what every Spark build pays)."""
    code = (
        "import time; t = time.perf_counter(); from pyspark.sql import SparkSession; "
        "s = SparkSession.builder.master('local[2]').config('spark.ui.enabled', 'false')"
        ".getOrCreate(); print(time.perf_counter() - t); s.stop()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, default=ROOT / ".feature_store")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    days = landed_days(args.home)[-args.days :]
    first, end = days[0], days[-1] + timedelta(days=1)
    times: dict[str, list[float]] = {"floor": [], "duckdb": [], "spark": []}
    rows: dict[str, set[int]] = {"duckdb": set(), "spark": set()}
    starts = []
    for _ in range(args.repeats):
        times["floor"].append(model_floor(args.home, first, end))
        for engine in ("duckdb", "spark"):
            seconds, built = build(args.home, engine, first, end)
            times[engine].append(seconds)
            rows[engine].add(built)
        starts.append(spark_start())
    assert rows["duckdb"] == rows["spark"] and len(rows["duckdb"]) == 1, rows
    print(f"\nfour models, {len(days)} days ({first} to {days[-1]}), {rows['duckdb'].pop():,} rows")
    print(f"{'':22} {'median s':>9} {'p99 s':>8}")
    labels = {
        "floor": "floor (SQL in DuckDB)",
        "duckdb": "dbt build, DuckDB",
        "spark": "dbt build, Spark",
    }
    for kind, label in labels.items():
        print(f"{label:22} {statistics.median(times[kind]):9.1f} {p99(times[kind]):8.1f}")
    median = {kind: statistics.median(values) for kind, values in times.items()}
    print(f"ratio DuckDB build / floor: {median['duckdb'] / median['floor']:.2f}x")
    print(f"ratio Spark build / floor: {median['spark'] / median['floor']:.2f}x")
    print(f"ratio Spark / DuckDB build: {median['spark'] / median['duckdb']:.2f}x")
    print(f"Spark session start alone (median): {statistics.median(starts):.1f} s")


if __name__ == "__main__":
    main()
