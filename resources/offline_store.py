"""The offline store: published feature partitions as Parquet, queried with in-process DuckDB.

Layout: `<root>/<table>/<partition_column>=<day>/data.parquet`, one file per daily
partition. A file is written beside its final name and renamed into place, so a reader sees
the old day or the new day, never a mix or a gap, and no reader ever takes a lock a writer
needs. On S3 (no rename) a day's folder holds `data-<run>-<id>.parquet` files and a
`_manifest.json` naming the one that is the day: a publish uploads the new file, then
replaces the manifest (one PUT, whole or not at all); a superseded file stays for readers
that resolved the old manifest until `remove_leftovers` finds it older than READER_GRACE.
Staged (not yet validated) output lives under `<staging_root>/<run_id>/` and is never
read by training sets or the online sync; a Spark build stages a folder of part files where
DuckDB's stages one file.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from feature_assets.kernel.contract import (
    FeatureRequest,
    FeatureTable,
    OnDemandRequest,
    ResolvedFeatures,
)
from feature_assets.kernel.errors import EntityInputError, PartitionNotPublishedError
from feature_assets.kernel.names import PUBLISHED_BY_RUN
from resources.entity_source import (
    ADDED_COLUMNS,
    ENTITY_VIEW,
    check_entity_rows,
    entity_columns,
    entity_time_range,
    register_entity_rows,
)
from resources.point_in_time import (
    JoinPlan,
    point_in_time_query,
    winner_columns,
    winner_order,
)
from resources.push_log import PUSH_FOLDER, PushLog
from resources.settings import Settings
from resources.spark_point_in_time import (
    AT,
    AT_CEIL,
    SPARK_RESULT,
    entity_keys,
    spark_features,
    spark_join_query,
)
from resources.spark_session import spark_session
from resources.sql import ARROW_TYPES, DUCKDB_TYPES, column_list, file_list, ident, literal
from resources.storage import Storage
from resources.training_set import OnDemandStep, TrainingSet

DATA_FILE = "data.parquet"
# A Dagster run id: a run's staging folder is named after it.
RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}")
# Where a run's dbt build writes each table: `{table}` is replaced by the table's name, by
# the `external_location` macro (the template reaches dbt as FEATURE_STORE_STAGED_PATH).
STAGED_FILE_TEMPLATE = "{table}.parquet"
# The publish check's DuckDB memory (past it, aggregates spill to disk) and batch size (in
# DuckDB vectors of 2,048 rows: ~33k rows per pandera pass); both keep peak RSS flat
# from 1 to 60 staged days (benchmarks/refresh.py --rss).
AUDIT_MEMORY_LIMIT = "40MB"
AUDIT_BATCH_VECTORS = 16
PARTITION_FLUSH_ROWS = 2_048
# A publish writes every day's file into `<table>/.publish-<run>-<id>/` before renaming each.
PUBLISH_FOLDER_PREFIX = ".publish-"
SPARK_FOLDER = ".spark"
# S3 only: the object naming a day's file, and how long a superseded file stays readable.
MANIFEST = "_manifest.json"
READER_GRACE_NS = 3600 * 10**9
MANIFEST_READERS = 16


T = TypeVar("T")


def partition_day(path: str | Path) -> date:
    """The day of a published file, from its `<partition_column>=<day>` folder."""
    return date.fromisoformat(str(path).rsplit("/", 2)[-2].split("=", 1)[1])


@dataclass(frozen=True)
class PublishedDay:
    file: str
    # Changes when the day is republished (rebuilt and validated again), and only then.
    version: int


class OfflineStore:
    """Published feature partitions as Parquet files; DuckDB in-process for every query, but
    the training-set join runs on Spark when the engine is "spark"."""

    def __init__(
        self,
        root: str | Path,
        staging_root: str | Path,
        memory_limit: str = "4GB",
        engine: str = "duckdb",
        *,
        storage: Storage | None = None,
        state_root: str | Path | None = None,
    ) -> None:
        """`engine`: what runs the training-set join, "duckdb" (in process) or "spark".
        `storage`: how to reach `root` when it is an `s3://` URI; `state_root`: the local
        folder of the syncs' state, the serving log and saved training sets' references
        (the root itself when it is local)."""
        self.storage = storage or Storage(root)
        self.root = self.storage.root
        if self.storage.remote and state_root is None:
            raise ValueError(f"offline root {self.root}: give a local state_root beside it")
        self.state_root = Path(state_root if state_root is not None else root)
        self.staging_root = str(staging_root)
        self.memory_limit = memory_limit
        self.engine = engine
        self.push_log = PushLog(self.storage)

    @classmethod
    def from_settings(cls, settings: Settings) -> OfflineStore:
        root = settings.offline_uri
        return cls(
            root=root,
            staging_root=settings.staging_dir,
            engine=settings.engine,
            storage=Storage(root, s3_endpoint=settings.s3_endpoint, region=settings.region),
            state_root=settings.offline_dir,
        )

    # --- layout -------------------------------------------------------------------------

    def day_folder(self, table: FeatureTable, day: date) -> str:
        return self.storage.uri(table.name, f"{table.partition_column}={day.isoformat()}")

    def partition_path(self, table: FeatureTable, day: date) -> Path:
        """Where a local root keeps the day's file (S3 roots: `published`)."""
        return Path(self.day_folder(table, day)) / DATA_FILE

    def published(self, table: FeatureTable) -> dict[date, PublishedDay]:
        """Every published day and the file that is the day now, oldest day first."""
        prefix = f"{table.partition_column}="
        if not self.storage.remote:
            # The day folders only: not the push files and sync states beside them.
            found = Path(self.root, table.name).glob(f"{prefix}*/{DATA_FILE}")
            days = {partition_day(p): PublishedDay(str(p), p.stat().st_mtime_ns) for p in found}
            return dict(sorted(days.items()))
        table_folder = self.storage.uri(table.name) + "/"
        folders = [
            f.uri.rsplit("/", 1)[0]
            for f in self.storage.files(table_folder)
            if f.name == MANIFEST and f.uri.removeprefix(table_folder).startswith(prefix)
        ]
        # One GET each: in parallel, since a tick of the sync sensor reads every table's.
        with ThreadPoolExecutor(MANIFEST_READERS) as pool:
            entries = list(pool.map(self._manifest, folders))
        days = {}
        for folder, entry in zip(folders, entries, strict=True):
            if entry is None:
                continue  # manifests are replaced, never deleted: a day removed by hand
            file = f"{folder}/{entry['file']}"
            days[partition_day(file)] = PublishedDay(file, int(entry["version"]))
        return dict(sorted(days.items()))

    def _manifest(self, folder: str) -> dict[str, Any] | None:
        """The manifest of an S3 day folder, or None when it has none."""
        text = self.storage.read_text(f"{folder}/{MANIFEST}")
        return json.loads(text) if text else None

    def day_file(self, table: FeatureTable, day: date) -> str | None:
        """The file that is the day now, or None when the day is not published."""
        if not self.storage.remote:
            path = self.partition_path(table, day)
            return str(path) if path.exists() else None
        folder = self.day_folder(table, day)
        entry = self._manifest(folder)
        return f"{folder}/{entry['file']}" if entry else None

    def is_published(self, table: FeatureTable, day: date) -> bool:
        return self.day_file(table, day) is not None

    def published_days(self, table: FeatureTable) -> list[date]:
        return list(self.published(table))

    def published_files(self, table: FeatureTable) -> list[str]:
        return [p.file for p in self.published(table).values()]

    def published_versions(self, table: FeatureTable) -> dict[date, int]:
        """Each published day's version (locally its file's modification time, ns; on S3 the
        manifest's): a day republished gets a new one; nothing else changes it."""
        return {day: p.version for day, p in self.published(table).items()}

    def published_by(self, table: FeatureTable, day: date) -> str | None:
        """The run that published the day, from the file's own metadata."""
        file = self._published_file(table, day)
        with self.storage.fs.open_input_file(self.storage.path(file)) as source:
            metadata = pq.read_metadata(source).metadata or {}
        run_id = metadata.get(PUBLISHED_BY_RUN.encode())
        return run_id.decode() if run_id else None

    def _published_file(self, table: FeatureTable, day: date) -> str:
        file = self.day_file(table, day)
        if file is None:
            raise PartitionNotPublishedError(
                f"feature table {table.name!r}: partition {day.isoformat()} is not published"
            )
        return file

    def staged_path(self, table: FeatureTable, run_id: str) -> Path:
        return Path(self.staged_path_template(run_id).replace("{table}", table.name))

    def staged_path_template(self, run_id: str) -> str:
        """Where a run's build writes its tables, `{table}` standing for each table's name."""
        return str(self.run_staging_dir(run_id) / STAGED_FILE_TEMPLATE)

    def run_staging_dir(self, run_id: str) -> Path:
        return Path(self.staging_root) / run_id

    @property
    def spark_work_dir(self) -> Path:
        """Where Spark sessions (the join's, dbt's) keep their warehouse and metastore."""
        return Path(self.staging_root) / SPARK_FOLDER

    # --- write, audit, publish ------------------------------------------------------------

    def _staged(self, table: FeatureTable, run_id: str, *, row_numbers: bool = False) -> str:
        path = self.staged_path(table, run_id)
        if not path.exists():
            raise FileNotFoundError(
                f"feature table {table.name!r}: nothing staged by run {run_id} at {path}; "
                "build the table and its check in the same run"
            )
        return f"read_parquet({_staged_files(path)}{', file_row_number = true' if row_numbers else ''})"

    def audit_connection(self, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
        """A connection whose memory stays flat: past its limit, aggregates spill to disk."""
        con = self.connect(memory_limit=memory_limit or AUDIT_MEMORY_LIMIT)
        con.execute("SET threads = 1")  # one pass at a time keeps the buffers small too
        # A split by day buffers up to this many rows per day before writing them: at the
        # default (524,288) the 60-day demo's largest table ran out of the budget, and its
        # publish ran again under the store's limit at ~950 MB.
        con.execute(f"SET partitioned_write_flush_threshold = {PARTITION_FLUSH_ROWS}")
        return con

    def _within_audit_memory(self, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """`work` on a flat-memory connection; rows wider than its budget fits (DuckDB out of
        memory) are worked again under the store's own limit, which spills to disk too."""
        try:
            return work(self.audit_connection())
        except duckdb.OutOfMemoryException:
            return work(self.audit_connection(self.memory_limit))

    def staged_batches(self, table: FeatureTable, run_id: str) -> Iterator[pd.DataFrame]:
        """The staged rows in file order, a batch at a time, indexed by row number in the
        file (the first batch always, empty or not, so a schema can see the columns)."""
        staged = self._staged(table, run_id)
        memory_limit = None
        start = 0
        while True:
            try:
                con = self.audit_connection(memory_limit)
                cursor = con.execute(f"SELECT * FROM {staged} OFFSET {start}")
                while True:
                    batch = cursor.fetch_df_chunk(AUDIT_BATCH_VECTORS)
                    if start and batch.empty:
                        return
                    batch.index = pd.RangeIndex(start, start + len(batch))
                    yield batch
                    if batch.empty:
                        return
                    start += len(batch)
            except duckdb.OutOfMemoryException:
                if memory_limit is not None:
                    raise
                memory_limit = self.memory_limit  # rows wider than the budget: go on from here

    def staged_duplicates(self, table: FeatureTable, run_id: str) -> pd.DataFrame:
        """Staged rows sharing keys and event time with another row: their keys and event
        time, row number (`__row`) and partition day (`__day`)."""
        names = [*table.keys, table.timestamp]
        if {*names, table.partition_column} - set(self.staged_types(table, run_id)):
            return pd.DataFrame()  # the schema reports the missing column
        unique = ", ".join(ident(c) for c in names)
        staged = self._staged(table, run_id, row_numbers=True)
        # Grouped by a 64-bit hash, not the columns: the hash table stays small whatever the
        # key types (string keys ran out of memory under the limit); the few candidates are
        # then compared by their columns, so a hash collision is no duplicate.
        query = f"""
            WITH shared AS (
                SELECT hash({unique}) AS h FROM {staged} GROUP BY h HAVING count(*) > 1
            ),
            candidates AS (
                SELECT {unique}, file_row_number AS __row,
                    CAST({ident(table.partition_column)} AS DATE) AS __day
                FROM {staged} WHERE hash({unique}) IN (SELECT h FROM shared)
            )
            SELECT * FROM candidates
            QUALIFY count(*) OVER (PARTITION BY {unique}) > 1
            ORDER BY __row
        """

        def find(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
            con.execute("SET preserve_insertion_order = false")  # the query orders its result
            return con.sql(query).df()

        return self._within_audit_memory(find)

    def staged_aggregate(self, table: FeatureTable, run_id: str, expressions: list[str]) -> tuple:
        """One aggregate pass over the staged rows: the values of `expressions` (SQL
        aggregates over the staged columns), under the flat memory budget."""
        staged = self._staged(table, run_id)
        query = f"SELECT {', '.join(expressions)} FROM {staged}"
        return self._within_audit_memory(lambda con: con.execute(query).fetchone())

    def staged_statistics(self, table: FeatureTable, run_id: str) -> dict[date, dict]:
        """Per staged day: rows, then per feature null rate and distinct count, and min / max
        / mean when numeric (keys `<feature>.<statistic>`): one aggregate pass of fixed-size
        states, then one DISTINCT per feature (a grouped DISTINCT spills to disk where a
        `count(DISTINCT ...)` beside other aggregates ran out of memory under the limit)."""
        staged = self._staged(table, run_id)
        day = f"CAST({ident(table.partition_column)} AS DATE)"

        def summarize(con: duckdb.DuckDBPyConnection) -> dict[date, dict]:
            distinct = {}
            for feature in table.features:
                name = ident(feature.name)
                distinct[feature.name] = dict(
                    con.execute(
                        f"SELECT d, count(*) FROM (SELECT DISTINCT {day} AS d, {name} FROM {staged} "
                        f"WHERE {name} IS NOT NULL) GROUP BY d"
                    ).fetchall()
                )
            columns = ["count(*)"]
            for feature in table.features:
                name = ident(feature.name)
                columns += [f"count({name})"]
                if feature.logical_type in ("int", "float"):
                    number = f"CASE WHEN isfinite({name}::DOUBLE) THEN {name}::DOUBLE END"
                    columns += [f"min({number})", f"max({number})", f"avg({number})"]
            query = f"SELECT {day}, {', '.join(columns)} FROM {staged} GROUP BY 1"
            stats = {}
            for values in con.execute(query).fetchall():
                rows, rest = values[1], list(values[2:])
                day_stats: dict[str, float | int] = {"rows": rows}
                for feature in table.features:
                    present = rest.pop(0)
                    day_stats[f"{feature.name}.null_rate"] = 1 - present / rows
                    day_stats[f"{feature.name}.distinct"] = distinct[feature.name].get(values[0], 0)
                    if feature.logical_type in ("int", "float"):
                        for statistic in ("min", "max", "mean"):
                            value = rest.pop(0)
                            if value is not None:
                                day_stats[f"{feature.name}.{statistic}"] = float(value)
                stats[values[0]] = day_stats
            return stats

        return self._within_audit_memory(summarize)

    def staged_types(self, table: FeatureTable, run_id: str) -> dict[str, str]:
        """Each staged column's type as the Parquet file declares it (DuckDB's names)."""
        relation = duckdb.connect().sql(
            f"SELECT * FROM read_parquet({_staged_files(self.staged_path(table, run_id))})"
        )
        return dict(zip(relation.columns, map(str, relation.types), strict=True))

    def publish(self, table: FeatureTable, run_id: str, days: list[date]) -> None:
        """Replace each day's published file with the staged rows of that day (possibly none),
        from one pass over the staged file: DuckDB splits it by day beside the table, then
        each day's rows are sorted (a day's worth of memory, whatever the window) into a file
        renamed into place."""
        staged = self._staged(table, run_id)
        order = ", ".join(ident(key) for key in (*table.keys, table.timestamp))
        partition = ident(table.partition_column)
        published_by = f"{{{literal(PUBLISHED_BY_RUN)}: {literal(run_id)}}}"
        wanted = ", ".join(f"DATE {literal(day.isoformat())}" for day in days)

        def write(con: duckdb.DuckDBPyConnection) -> None:
            folder = f"{PUBLISH_FOLDER_PREFIX}{run_id}-{uuid.uuid4().hex[:8]}"
            # Beside the table, so the rename stays on one disk; on S3, in the run's staging.
            beside = (
                self.run_staging_dir(run_id) / f"{table.name}{folder}"
                if self.storage.remote
                else Path(self.root) / table.name / folder
            )
            beside.parent.mkdir(parents=True, exist_ok=True)
            try:
                con.execute(
                    f"COPY (SELECT * FROM {staged} WHERE {partition} IN ({wanted})) "
                    f"TO {literal(beside)} (FORMAT parquet, PARTITION_BY ({partition}), "
                    "WRITE_PARTITION_COLUMNS true)"
                )
                # A day's sort holds one day whatever the window, so it may use every core:
                # the 60-day demo's largest table sorted its days in 2.4 s, not 4.5 s.
                con.execute("RESET threads")
                for day in days:
                    final = self.partition_path(table, day)
                    split = list((beside / final.parent.name).glob("*.parquet"))
                    rows = (
                        f"SELECT * FROM read_parquet({file_list(split)}) ORDER BY {order}"
                        if split
                        else f"SELECT * FROM {staged} LIMIT 0"  # no rows that day: an empty file
                    )
                    if self.storage.remote:
                        tmp = beside / f"{final.parent.name}.parquet"
                    else:
                        final.parent.mkdir(parents=True, exist_ok=True)
                        tmp = final.with_name(f"{DATA_FILE}.tmp-{uuid.uuid4().hex}")
                    con.execute(
                        f"COPY ({rows}) TO {literal(tmp)} "
                        f"(FORMAT parquet, KV_METADATA {published_by})"
                    )
                    self._switch(table, day, tmp, run_id)
            finally:
                shutil.rmtree(beside, ignore_errors=True)

        self._within_audit_memory(write)

    def _switch(self, table: FeatureTable, day: date, written: Path, run_id: str) -> None:
        """Make the finished file `written` the day: a rename on disk; on S3 an upload under
        a name of its own, then the day's manifest replaced to name it."""
        if not self.storage.remote:
            written.replace(self.partition_path(table, day))
            return
        folder = self.day_folder(table, day)
        name = f"data-{run_id}-{uuid.uuid4().hex[:8]}.parquet"
        self.storage.put(written, f"{folder}/{name}")
        manifest = {"file": name, "published_by": run_id, "version": time.time_ns()}
        self.storage.write_text(f"{folder}/{MANIFEST}", json.dumps(manifest))

    def discard_staged(self, table: FeatureTable, run_id: str) -> None:
        """Drop one table's staged file (or folder of parts); the run's folder goes with its
        last one.

        Other tables of the same run may still be waiting for their own check."""
        staged = self.staged_path(table, run_id)
        if staged.is_dir():  # Spark's part files
            shutil.rmtree(staged, ignore_errors=True)
        staged.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty yet
            self.run_staging_dir(run_id).rmdir()

    def remove_leftovers(self, active_runs: set[str], oldest_active_start: float | None) -> int:
        """Delete what runs that are no longer going left behind: their staging folders, and
        half-written `.tmp-*` files in day folders older than every run still going.
        Returns how many paths were removed."""
        removed = 0
        staging = Path(self.staging_root)
        for folder in staging.glob("*") if staging.exists() else []:
            if folder.is_dir() and RUN_ID.fullmatch(folder.name) and folder.name not in active_runs:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        if self.storage.remote:
            return removed + self._remove_unnamed_files(active_runs)
        for folder in Path(self.root).glob(f"*/{PUBLISH_FOLDER_PREFIX}*"):
            run_id = folder.name.removeprefix(PUBLISH_FOLDER_PREFIX).rsplit("-", 1)[0]
            if run_id not in active_runs:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        for tmp in Path(self.root).glob(f"*/*/{DATA_FILE}.tmp-*"):
            with contextlib.suppress(FileNotFoundError):
                if oldest_active_start is None or tmp.stat().st_mtime < oldest_active_start:
                    tmp.unlink()
                    removed += 1
        return removed

    def _remove_unnamed_files(self, active_runs: set[str]) -> int:
        """S3: delete day files no manifest names: those uploaded by a publish that died
        before switching the manifest (once their run is no longer going), and those a
        newer publish superseded over READER_GRACE_NS ago (a reader that resolved the old
        manifest may still be reading one)."""
        removed = 0
        by_folder: dict[str, list] = {}
        for file in self.storage.files(self.root):
            if file.name.startswith("data-") or file.name == MANIFEST:
                by_folder.setdefault(file.uri.rsplit("/", 1)[0], []).append(file)
        now = time.time_ns()
        for folder, files in by_folder.items():
            names = {f.name for f in files}
            if MANIFEST in names and len(names) == 2:
                continue  # a manifest and the one file it names (it never names a missing one)
            manifest = self._manifest(folder)
            for file in files:
                if file.name == MANIFEST or (manifest and file.name == manifest["file"]):
                    continue
                run_id = file.name.removeprefix("data-").rsplit("-", 1)[0]
                superseded = manifest is not None and file.modified_ns <= manifest["version"]
                if superseded:
                    gone = now - manifest["version"] > READER_GRACE_NS
                else:
                    gone = run_id not in active_runs
                if gone:
                    self.storage.delete(file.uri)
                    removed += 1
        return removed

    # --- reads ------------------------------------------------------------------------------

    def read_partition(self, table: FeatureTable, day: date) -> pd.DataFrame:
        file = self._published_file(table, day)
        con = duckdb.connect()
        return con.sql(f"SELECT * FROM {self._source(con, [file])}").df()

    def rows_to_serve(
        self, table: FeatureTable, days: list[date], *, force: bool = False
    ) -> pa.Table:
        """The rows of `days` that the online store should hold, newer-wins.

        Without `force`, an entity's row is kept only if it is that entity's winner across
        every published partition (latest event time, then created time, then partition), so
        syncing an old partition never moves an online value back in time. With `force`, the
        latest row per entity within `days` is kept whatever newer partitions say.
        """
        published = self.published(table)
        missing = [day for day in days if day not in published]
        if missing:
            raise PartitionNotPublishedError(
                f"feature table {table.name!r}: partition(s) {', '.join(d.isoformat() for d in missing)} "
                "are not published (never built, or failed validation)"
            )
        con = duckdb.connect()
        window = self._source(con, [published[day].file for day in days])
        keys = ", ".join(ident(key) for key in table.keys)
        order = ", ".join(winner_order(table))
        if force:
            query = (
                f"SELECT * FROM {window} "
                f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {order}) = 1"
            )
        else:
            rank_columns = [*table.keys, *winner_columns(table)]
            # Pushed rows compete too: a published row that a newer push beats is not served.
            everything = self._source(
                con, [p.file for p in published.values()] + self.push_log.files(table)
            )
            match = " AND ".join(
                f"w.{ident(c)} IS NOT DISTINCT FROM x.{ident(c)}" for c in rank_columns
            )
            query = f"""
                WITH window_rows AS (SELECT * FROM {window}),
                winners AS (
                    SELECT {", ".join(ident(c) for c in rank_columns)}
                    FROM {everything}
                    QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {order}) = 1
                )
                SELECT w.* FROM window_rows AS w SEMI JOIN winners AS x ON {match}
            """
        return con.sql(query).to_arrow_table()

    def latest_rows(self, table: FeatureTable, keys: Sequence[tuple] | None = None) -> pa.Table:
        """Each entity's winning row across every published partition and push (for a full
        resync), or only those of `keys`."""
        files = self.published_files(table) + self.push_log.files(table)
        if not files:
            return pa.table({})
        con = duckdb.connect()
        partition = ", ".join(ident(key) for key in table.keys)
        order = ", ".join(winner_order(table))
        source = self._source(con, files)
        if keys is not None:
            wanted = pa.table(
                {
                    k: pa.array([key[i] for key in keys], ARROW_TYPES[table.key_types[k]])
                    for i, k in enumerate(table.keys)
                }
            )
            con.register("wanted_keys", wanted)
            source = f"(SELECT r.* FROM {source} AS r SEMI JOIN wanted_keys USING ({partition}))"
        query = (
            f"SELECT * FROM {source} "
            f"QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {order}) = 1"
        )
        return con.sql(query).to_arrow_table()

    def get_historical_features(
        self,
        entity: Any,
        requests: list[FeatureRequest],
        *,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
        created_timestamp_cutoff: bool = False,
        on_demand: Sequence[OnDemandRequest] = (),
    ) -> TrainingSet:
        """Point-in-time join of the entity rows with the published partitions of each table,
        then the on-demand features over the joined rows (request fields are entity columns).

        The result converts to pandas, Arrow, polars or a Parquet file (streamed; DuckDB
        spills to disk past its memory limit)."""
        con = self.connect()
        register_entity_rows(con, entity, timestamp_column)
        resolved = ResolvedFeatures(tuple(requests), tuple(on_demand))
        outputs = [name for r in requests for name in r.all_output_names(full_feature_names)]
        outputs += [name for r in on_demand for name in r.output_names(full_feature_names)]
        check_entity_rows(con, [r.table for r in requests], timestamp_column, outputs)
        columns = entity_columns(con)
        steps = []
        for request in on_demand:
            feature = request.feature
            for item in feature.request_inputs:
                if item.name not in columns:
                    raise EntityInputError(
                        f"on-demand feature {feature.name!r}: entity rows lack request field "
                        f"column {item.name!r}"
                    )
            inputs = {
                item.name: item.name
                if item.is_request
                else resolved.input_column(item, full_feature_names)
                for item in feature.inputs
            }
            names = request.output_names(full_feature_names)
            steps.append(
                OnDemandStep(feature, inputs, dict(zip(request.outputs, names, strict=True)))
            )
        first, last = entity_time_range(con)
        hidden = [
            name
            for r in requests
            for name in r.all_output_names(full_feature_names)[len(r.features) :]
        ]
        if self.engine == "spark":
            query = self._join_on_spark(
                con, requests, first, last, created_timestamp_cutoff, full_feature_names
            )
            return TrainingSet(con, query, steps, hidden)
        sources: dict[str, str] = {}
        plans: dict[str, JoinPlan] = {}
        for request in requests:
            table = request.table
            files = self.files_for_window(table, first, last)
            pushed = self.pushed_files_for_window(table, first, last)
            # On S3 one dataset serves the tie check and the join: footers are read once.
            remote = self.storage.remote and (files or pushed)
            dataset = self.storage.dataset(files + pushed) if remote else None
            sources[table.name] = self._relation(con, table, files + pushed, dataset)
            if created_timestamp_cutoff and table.created_timestamp:
                plans[table.name] = JoinPlan.RANGE_CUTOFF
            elif pushed or self._boundary_ties_possible(con, table, files, dataset):
                # A pushed row may share keys and event time with any other row.
                plans[table.name] = JoinPlan.ASOF_SETTLE_TIES
            else:
                plans[table.name] = JoinPlan.ASOF
        query = point_in_time_query(
            ENTITY_VIEW, requests, sources, plans, full_feature_names=full_feature_names
        )
        return TrainingSet(con, query, steps, hidden)

    def _join_on_spark(
        self,
        con: duckdb.DuckDBPyConnection,
        requests: list[FeatureRequest],
        first: datetime | None,
        last: datetime | None,
        cutoff: bool,
        full_feature_names: bool = False,
    ) -> str:
        """Run the join's plan on Spark (the entity rows' keys and times go there, the
        features per row id come back); returns the DuckDB query that puts them beside the
        input columns."""
        keys = entity_keys(requests)
        entity = con.sql(
            f"SELECT {column_list(keys)}, __entity_row, epoch_us(__entity_ts) AS {AT}, "
            f"epoch_us(__entity_ts_ceil) AS {AT_CEIL} FROM {ENTITY_VIEW}"
        ).to_arrow_table()
        files = {
            r.table.name: self.files_for_window(r.table, first, last)
            + self.pushed_files_for_window(r.table, first, last)
            for r in requests
        }
        spark = spark_session(self.spark_work_dir)
        cutoffs = {r.table.name: cutoff and r.table.created_timestamp is not None for r in requests}
        features = spark_features(spark, entity, requests, files, cutoffs, self.spark_work_dir)
        con.register(SPARK_RESULT, features)
        return spark_join_query(ENTITY_VIEW, requests, full_feature_names=full_feature_names)

    def write_entity_rows(
        self, entity: Any, path: Path, timestamp_column: str
    ) -> tuple[datetime | None, datetime | None]:
        """Copy entity rows, in input order, to Parquet; returns their entity-time range (UTC)."""
        con = self.connect()
        register_entity_rows(con, entity, timestamp_column)
        rows = f"SELECT * EXCLUDE ({ADDED_COLUMNS}) FROM {ENTITY_VIEW} ORDER BY __entity_row"
        con.execute(f"COPY ({rows}) TO {literal(path)} (FORMAT parquet)").fetchall()
        return entity_time_range(con)

    def entity_time_range(
        self, entity: Any, timestamp_column: str
    ) -> tuple[datetime | None, datetime | None]:
        con = self.connect()
        register_entity_rows(con, entity, timestamp_column)
        return entity_time_range(con)

    def query(self, sql: str, tables: list[FeatureTable]) -> pa.Table:
        """Run one read-only SELECT in which each feature table is a view of its published days.

        The SDK is trusted code, but entity SQL often comes from elsewhere (a notebook, a job
        config): it may read the published tables and nothing else. One statement, a SELECT,
        on a connection that can open files under the offline root only and cannot change
        that setting."""
        con = self.connect()
        try:
            statements = con.extract_statements(sql)
        except duckdb.Error as error:
            raise EntityInputError(f"entity SQL does not parse: {error}") from None
        if len(statements) != 1:
            raise EntityInputError(f"entity SQL must be one statement, not {len(statements)}")
        if statements[0].type != duckdb.StatementType.SELECT:
            raise EntityInputError(
                f"entity SQL must be a SELECT over the feature tables, not {statements[0].type.name}"
            )
        for table in tables:
            relation = self._relation(con, table, self.published_files(table))
            con.execute(f"CREATE TEMP VIEW {ident(table.name)} AS SELECT * FROM {relation}")
        root = self.root if self.storage.remote else Path(self.root).resolve()
        con.execute(f"SET allowed_directories = [{literal(root)}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        try:
            return con.sql(sql).to_arrow_table()
        except duckdb.PermissionException:
            raise EntityInputError(
                "entity SQL may read the feature tables only (files, extensions and other "
                "databases are off limits)"
            ) from None

    def connect(self, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
        """An in-process DuckDB connection that spills to the store's temp folder past its limit."""
        con = duckdb.connect(config={"memory_limit": memory_limit or self.memory_limit})
        spill = Path(self.staging_root) / ".duckdb_spill"
        spill.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = {literal(spill)}")
        return con

    def files_for_window(
        self, table: FeatureTable, first: datetime | None, last: datetime | None
    ) -> list[str]:
        """Published files that can hold a candidate for entity times in [first, last].

        A row of partition d has its event time within [d, d + 1 day] (the publish check
        guarantees it), so older partitions than first - ttl - 1 day and newer ones than
        last cannot match.
        """
        published = self.published(table)
        return [published[day].file for day in _days_in_window(table, list(published), first, last)]

    def pushed_files_for_window(
        self, table: FeatureTable, first: datetime | None, last: datetime | None
    ) -> list[str]:
        """Push files that can hold a candidate (the same day rule as published files)."""
        days = _days_in_window(table, self.push_log.days(table), first, last)
        return self.push_log.files(table, days) if days else []

    def _boundary_ties_possible(
        self,
        con: duckdb.DuckDBPyConnection,
        table: FeatureTable,
        files: list[str],
        dataset: ds.Dataset | None = None,
    ) -> bool:
        """`dataset`: S3 only, the files' dataset (whose footers the join then reuses)."""
        if dataset is None:
            return _boundary_ties_possible(con, table, files)
        if len(files) < 2:
            return False
        bounds = self.storage.column_bounds(dataset, table.timestamp)
        if any(b is None or b[0].tzinfo or b[1].tzinfo for b in bounds.values()):
            return True  # statistics we cannot read exactly: settling ties is always correct
        return _bounds_meet(files, bounds)

    def _source(
        self, con: duckdb.DuckDBPyConnection, files: list[str], dataset: ds.Dataset | None = None
    ) -> str:
        """One relation over Parquet files, in `con`. On S3, an Arrow dataset: pyarrow reads
        a file's footer and columns in a few coalesced requests, where DuckDB reading
        through fsspec made ~10 (a join over 50 days on moto took 12x local then;
        benchmarks/README.md). DuckDB itself then never opens an S3 URI: entity SQL cannot
        name one."""
        if not self.storage.remote:
            return _read(files)
        name = f"__files_{uuid.uuid4().hex[:12]}"
        con.register(name, dataset if dataset is not None else self.storage.dataset(files))
        return name

    def _relation(
        self,
        con: duckdb.DuckDBPyConnection,
        table: FeatureTable,
        files: list[str],
        dataset: ds.Dataset | None = None,
    ) -> str:
        if files:
            return self._source(con, files, dataset)
        # No published partition in the window: an empty relation of the right shape joins to NULLs.
        typed = [
            f"CAST(NULL AS {DUCKDB_TYPES[t]}) AS {ident(c)}" for c, t in table.column_types.items()
        ]
        return f"(SELECT {', '.join(typed)} WHERE false)"


def _days_in_window(
    table: FeatureTable, days: list[date], first: datetime | None, last: datetime | None
) -> list[date]:
    if first is None or last is None:
        return []
    days = [day for day in days if day <= last.date()]
    if table.ttl is not None:
        try:
            earliest = (first - table.ttl - timedelta(days=1)).date()
        except OverflowError:  # entity times near year 1: every older day can match
            earliest = date.min
        days = [day for day in days if day >= earliest]
    return days


def _staged_files(path: Path) -> str:
    """A staged table: one Parquet file (dbt-duckdb) or a folder of part files (dbt-spark; its
    row numbers then count within each part)."""
    return literal(path / "*.parquet") if path.is_dir() else literal(path)


def _read(files: list[str]) -> str:
    """One relation over Parquet files; pushed files may order their columns differently."""
    pushed = any(f"/{PUSH_FOLDER}/" in str(path) for path in files)
    by_name = ", union_by_name = true" if pushed else ""
    return f"read_parquet({file_list(files)}{by_name})"


def _boundary_ties_possible(
    con: duckdb.DuckDBPyConnection, table: FeatureTable, files: list[str]
) -> bool:
    """True if two partitions may hold the same (keys, event time): only a row at midnight
    that ends one day and a row at the same midnight that starts the next day can."""
    if len(files) < 2:
        return False
    stats = con.execute(
        "SELECT file_name, min(stats_min_value), max(stats_max_value) "
        f"FROM parquet_metadata({file_list(files)}) WHERE path_in_schema = ? GROUP BY file_name",
        [table.timestamp],
    ).fetchall()
    try:
        bounds = {str(name): (_naive(lo), _naive(hi)) for name, lo, hi in stats}
    except ValueError:
        return True  # statistics we cannot read exactly: settling ties is always correct
    return _bounds_meet(files, bounds)


def _bounds_meet(files: list[str], bounds: dict[str, tuple[datetime, datetime]]) -> bool:
    """Whether a day's latest event time and the next day's earliest are the same midnight."""
    for earlier, later in zip(map(str, files), map(str, files[1:]), strict=False):
        if earlier not in bounds or later not in bounds:
            continue  # an empty partition has no rows to tie with
        start_of_later = datetime.combine(partition_day(later), datetime.min.time())
        if bounds[earlier][1] == start_of_later and bounds[later][0] == start_of_later:
            return True
    return False


def _naive(statistic: str) -> datetime:
    value = datetime.fromisoformat(statistic)
    if value.tzinfo is not None:
        raise ValueError(f"zoned timestamp statistic {statistic!r}")
    return value
