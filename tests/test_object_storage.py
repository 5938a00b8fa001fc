"""The offline root on S3 (moto's S3 server over loopback): the same reads as a local root,
a publish killed half-way leaves readers on the old day, and what it left is cleaned up.

Pushes, syncs and saved training sets on S3 run in tests/test_push.py (both roots)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest

from feature_assets.assets.build import build_definitions
from feature_assets.assets.runs import materialize_range
from feature_assets.demo_data import DemoDataSpec, generate_landing_data
from feature_assets.kernel.contract import FeatureRequest
from feature_assets.kernel.errors import CallerError, EntityInputError, StoreUnavailableError
from feature_assets.sdk import FeatureStore
from resources import offline_store as offline_module
from resources.offline_store import MANIFEST, OfflineStore
from resources.settings import PROJECT_ROOT, Settings
from resources.storage import Storage
from tests.builders import (
    BUDGET_FACTOR,
    end_of,
    free_port,
    make_settings,
    publish_rows,
    s3_bucket,
    s3_offline_store,
    synthetic_table,
    timed,
    wait_for,
)

TABLE = synthetic_table(ttl=timedelta(days=3), features=("value_0",))
DAYS = [date(2026, 1, d) for d in range(1, 7)]


def day_rows(days: list[date], users: int, value: int) -> list[dict]:
    """`users` rows a day, every value `value`: a day is all one publish or all the other."""
    return [
        {
            "user_id": user,
            "feature_date": day,
            "event_timestamp": end_of(day) - timedelta(hours=user % 24),
            "created_at": end_of(day),
            "value_0": value,
        }
        for day in days
        for user in range(users)
    ]


def objects(store: OfflineStore) -> list[str]:
    return sorted(f.uri for f in store.storage.files(store.root))


def test_an_s3_root_reads_what_a_local_root_reads(tmp_path, online_server) -> None:
    """The same publishes (one day republished) on both roots: the same days, rows,
    winners, training set and SQL answers; versions and publishing runs recorded."""
    local = OfflineStore(tmp_path / "local", staging_root=tmp_path / "local_staging")
    remote = s3_offline_store(tmp_path / "s3", online_server.endpoint)
    for store in (local, remote):
        publish_rows(store, TABLE, day_rows(DAYS, 20, 1))
    before = remote.published_versions(TABLE)
    for store in (local, remote):
        publish_rows(store, TABLE, day_rows(DAYS[2:3], 25, 2))

    assert remote.published_days(TABLE) == local.published_days(TABLE) == DAYS
    assert all(f.startswith(remote.root) for f in remote.published_files(TABLE))
    after = remote.published_versions(TABLE)
    assert [day for day in DAYS if after[day] != before[day]] == [DAYS[2]]
    assert remote.published_by(TABLE, DAYS[2]) not in (None, remote.published_by(TABLE, DAYS[0]))
    for day in DAYS:
        pd.testing.assert_frame_equal(
            remote.read_partition(TABLE, day), local.read_partition(TABLE, day)
        )
    assert remote.rows_to_serve(TABLE, DAYS[1:4]) == local.rows_to_serve(TABLE, DAYS[1:4])
    latest = [s.latest_rows(TABLE).sort_by("user_id") for s in (remote, local)]
    assert latest[0] == latest[1] and latest[0].num_rows == 25

    entity = pd.DataFrame(
        {
            "user_id": [u % 25 for u in range(60)],
            "event_timestamp": [
                datetime(2026, 1, 1, 6) + timedelta(hours=3 * u) for u in range(60)
            ],
        }
    )
    request = [FeatureRequest(TABLE, ("value_0",))]
    joined = {
        name: store.get_historical_features(entity, request).to_pandas()
        for name, store in (("local", local), ("s3", remote))
    }
    pd.testing.assert_frame_equal(joined["s3"], joined["local"])
    assert joined["s3"]["value_0"].notna().sum() > 0

    sql = f"SELECT feature_date, sum(value_0) AS total FROM {TABLE.name} GROUP BY 1 ORDER BY 1"
    assert remote.query(sql, [TABLE]) == local.query(sql, [TABLE])
    # Entity SQL still reads the feature tables only, whatever the root.
    with pytest.raises(EntityInputError, match="feature tables only"):
        remote.query(f"SELECT * FROM read_parquet('{tmp_path}/local/**/*.parquet')", [TABLE])
    # Nor another prefix of the same bucket.
    elsewhere = remote.root.rsplit("/", 1)[0] + "/private/secrets.parquet"
    remote.storage.write_table(pa.table({"secret": [1]}), elsewhere)
    with pytest.raises(EntityInputError, match="feature tables only"):
        remote.query(f"SELECT * FROM read_parquet('{elsewhere}')", [TABLE])


def test_a_publish_killed_between_upload_and_switch_leaves_readers_on_the_old_day(
    tmp_path, online_server
) -> None:
    """A process republishing six days is killed (SIGKILL) after uploading the fourth day's
    new file and before replacing that day's manifest. Readers then see three new days and
    three old ones, each whole; the file no manifest names is removed once its run is no
    longer going; running the publish again finishes the job."""
    store = s3_offline_store(tmp_path, online_server.endpoint)
    _, seconds = timed(lambda: publish_rows(store, TABLE, day_rows(DAYS, 200, 1)))
    old = {day: store.read_partition(TABLE, day) for day in DAYS}
    reached = tmp_path / "held"
    victim = subprocess.Popen(
        [
            sys.executable,
            "-c",
            VICTIM,
            store.root,
            online_server.endpoint,
            str(tmp_path),
            str(reached),
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stderr=open(tmp_path / "victim.log", "w"),  # noqa: SIM115 - the child owns it
        start_new_session=True,
    )
    try:
        # The child imports the project, stages and publishes: a few publishes' worth of work.
        wait_for(
            reached.exists,
            BUDGET_FACTOR * (seconds + 5),
            "the publish reaching the fourth day's manifest",
            tmp_path / "victim.log",
        )
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()

    readers = another_store(store, tmp_path / "reader")
    assert readers.published_days(TABLE) == DAYS
    for i, day in enumerate(DAYS):
        rows = readers.read_partition(TABLE, day)
        expected = (1, 200) if i >= 3 else (2, 300)
        assert (set(rows["value_0"]), len(rows)) == ({expected[0]}, expected[1]), day
        if i >= 3:
            pd.testing.assert_frame_equal(rows, old[day])
    # The fourth day's new file is there, named by no manifest.
    fourth = readers.day_folder(TABLE, DAYS[3])
    named = {readers.day_file(TABLE, DAYS[3]), f"{fourth}/{MANIFEST}"}
    unnamed = [u for u in objects(readers) if u.startswith(fourth) and u not in named]
    assert len(unnamed) == 1

    killed_run = unnamed[0].rsplit("/", 1)[1].removeprefix("data-").rsplit("-", 1)[0]
    assert readers.remove_leftovers({killed_run}, None) == 0  # its run still going: kept
    # Gone: the killed run's upload; kept: the three old files superseded moments ago.
    assert readers.remove_leftovers(set(), None) == 1
    leftover = [u for u in objects(readers) if not u.endswith(MANIFEST)]
    assert len(leftover) == len(DAYS) + 3

    publish_rows(readers, TABLE, day_rows(DAYS, 300, 2))
    assert all(set(readers.read_partition(TABLE, d)["value_0"]) == {2} for d in DAYS)


def another_store(writer: OfflineStore, tmp: Path) -> OfflineStore:
    """A second store on the writer's bucket, with its own staging and state (another process's)."""
    return OfflineStore(
        writer.root,
        staging_root=tmp / "staging",
        storage=writer.storage,
        state_root=tmp / "state",
    )


# The victim: republish every day with other rows, pausing for good when about to switch the
# fourth day's manifest (the file is uploaded by then): the kill lands exactly there.
VICTIM = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from resources.offline_store import MANIFEST, OfflineStore
    from resources.storage import Storage
    from tests import test_object_storage as t
    from tests.builders import publish_rows

    root, endpoint, tmp, reached = sys.argv[1:]
    victim = Path(tmp) / "victim"
    storage = Storage(root, s3_endpoint=endpoint, region="us-east-1")
    store = OfflineStore(
        root, staging_root=victim / "staging", storage=storage, state_root=victim / "state"
    )
    switch, seen = Storage.write_text, []

    def held(self, uri, text):
        if uri.endswith(MANIFEST):
            seen.append(uri)
            if len(seen) == 4:
                Path(reached).write_text(uri)
                time.sleep(3600)
        switch(self, uri, text)

    Storage.write_text = held
    publish_rows(store, t.TABLE, t.day_rows(t.DAYS, 300, 2))
    """
)


def test_superseded_files_stay_for_readers_until_the_grace_has_passed(
    tmp_path, online_server, monkeypatch
) -> None:
    store = s3_offline_store(tmp_path, online_server.endpoint)
    publish_rows(store, TABLE, day_rows(DAYS[:1], 5, 1))
    first = store.day_file(TABLE, DAYS[0])
    publish_rows(store, TABLE, day_rows(DAYS[:1], 5, 2))
    assert store.remove_leftovers(set(), None) == 0
    assert first in objects(store)  # a reader that resolved the old manifest still reads it
    monkeypatch.setattr(offline_module, "READER_GRACE_NS", 0)
    assert store.remove_leftovers(set(), None) == 1
    assert first not in objects(store)
    assert set(store.read_partition(TABLE, DAYS[0])["value_0"]) == {2}


def test_the_pipeline_on_an_s3_root_publishes_and_serves_what_a_local_root_does(
    tmp_path, online_server, demo_tables
) -> None:
    """Two days of the seeded demo through build, check, publish and sync, once per root:
    the same published rows, and the same online items (the sync read them from S3)."""
    spec = DemoDataSpec(users=300, merchants=40, transactions_per_day=1_500, seed=5)
    first, last = date(2026, 1, 8), date(2026, 1, 9)
    settings = {}
    for kind in ("local", "s3"):
        base = make_settings(tmp_path / kind, online_server.endpoint)
        if kind == "s3":
            base = replace(
                base,
                offline_root=s3_bucket(online_server.endpoint),
                s3_endpoint=online_server.endpoint,
            )
        settings[kind] = base
        generate_landing_data(base.landing_dir, date(2026, 1, 1), last + timedelta(days=2), spec)
        with dg.instance_for_test() as instance:
            result = materialize_range(build_definitions(base), instance, first, last)
        assert result.success, f"the run on the {kind} root failed"
    stores = {kind: FeatureStore.from_settings(s) for kind, s in settings.items()}
    # Nothing of the published days is on this machine for the S3 run.
    assert not list((tmp_path / "s3").rglob("*/feature_date=*"))
    for table in demo_tables.values():
        days = stores["local"].offline.published_days(table)
        assert days == stores["s3"].offline.published_days(table) and days, table.name
        for day in days:
            rows = {k: s.offline.read_partition(table, day) for k, s in stores.items()}
            pd.testing.assert_frame_equal(
                rows["s3"].drop(columns=[table.created_timestamp]),
                rows["local"].drop(columns=[table.created_timestamp]),
            )
        if table.online:
            keys = [
                dict(zip(table.keys, k, strict=True))
                for k in sorted(
                    {tuple(r) for r in rows["local"][list(table.keys)].itertuples(index=False)}
                )[:50]
            ]
            features = [f"{table.name}:{f}" for f in table.feature_names]
            read = {
                k: s.get_online_features(
                    features,
                    keys,
                    now=datetime.combine(last, datetime.min.time()) + timedelta(days=1),
                ).rows
                for k, s in stores.items()
            }
            assert read["s3"] == read["local"] and any(
                v is not None for row in read["s3"] for k, v in row.items() if k not in table.keys
            ), table.name


def test_bad_offline_roots_are_named(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FEATURE_STORE_HOME", str(tmp_path))
    monkeypatch.setenv("FEATURE_STORE_OFFLINE_ROOT", "s3:///offline")
    with pytest.raises(
        CallerError, match="FEATURE_STORE_OFFLINE_ROOT='s3:///offline': name a bucket"
    ):
        Settings.from_env()
    monkeypatch.setenv("FEATURE_STORE_OFFLINE_ROOT", "gs://bucket/offline")
    with pytest.raises(CallerError, match="a local folder or an s3:// URI"):
        Settings.from_env()
    monkeypatch.setenv("FEATURE_STORE_OFFLINE_ROOT", "s3://bucket/offline")
    monkeypatch.setenv("FEATURE_STORE_ENGINE", "spark")
    with pytest.raises(CallerError, match="Spark engine reads a local offline root only"):
        Settings.from_env()
    monkeypatch.setenv("FEATURE_STORE_ENGINE", "duckdb")
    settings = Settings.from_env()
    assert settings.offline_uri == "s3://bucket/offline"
    # What stays on this machine (sync state, serving log) has a local folder of its own.
    assert settings.offline_dir == tmp_path.resolve() / "offline"


def test_an_unreachable_s3_root_is_an_error_naming_the_root_and_table(tmp_path) -> None:
    root = "s3://nowhere/offline"
    store = OfflineStore(
        root,
        staging_root=tmp_path / "staging",
        storage=Storage(root, s3_endpoint=f"http://127.0.0.1:{free_port()}", max_attempts=1),
        state_root=tmp_path / "state",
    )
    with pytest.raises(StoreUnavailableError, match=rf"offline root {root}: .*/{TABLE.name}"):
        store.published_days(TABLE)


def test_a_root_in_a_missing_bucket_is_an_error_not_an_empty_store(tmp_path, online_server) -> None:
    root = "s3://no-such-bucket-here/offline"
    store = OfflineStore(
        root,
        staging_root=tmp_path / "staging",
        storage=Storage(root, s3_endpoint=online_server.endpoint),
        state_root=tmp_path / "state",
    )
    with pytest.raises(StoreUnavailableError, match="bucket 'no-such-bucket-here' does not exist"):
        store.published_days(TABLE)
    assert s3_offline_store(tmp_path, online_server.endpoint).published_days(TABLE) == []


def test_the_default_offline_root_follows_the_home_and_a_set_one_stays(tmp_path) -> None:
    """Settings copied with another home (as the CLI and tests do) move the default root."""
    settings = make_settings(tmp_path / "a", "http://127.0.0.1:1")
    moved = replace(settings, home=tmp_path / "b")
    assert moved.offline_uri == str(tmp_path / "b" / "offline")
    assert OfflineStore.from_settings(moved).root == str(tmp_path / "b" / "offline")
    pinned = replace(settings, offline_root="s3://bucket/offline", home=tmp_path / "c")
    assert pinned.offline_uri == "s3://bucket/offline"
    assert pinned.offline_dir == tmp_path / "c" / "offline"


@pytest.mark.parametrize("tie", [True, False])
def test_the_tie_check_reads_the_same_statistics_on_s3(tmp_path, online_server, tie) -> None:
    """A row at the midnight ending one day and one at the same midnight starting the next
    (as two runs can publish them) make the join settle ties, on either root alike."""
    first, second = DAYS[0], DAYS[1]
    rows = [
        {"user_id": 1, "feature_date": first, "event_timestamp": end_of(first),
         "created_at": end_of(first), "value_0": 1},
        {"user_id": 1, "feature_date": second,
         "event_timestamp": end_of(first) + (timedelta(0) if tie else timedelta(hours=1)),
         "created_at": end_of(second), "value_0": 2},
    ]  # fmt: skip
    local = OfflineStore(tmp_path / "local", staging_root=tmp_path / "local_staging")
    remote = s3_offline_store(tmp_path / "s3", online_server.endpoint)
    for store in (local, remote):
        for row in rows:  # one run per day, as the schedule publishes them
            publish_rows(store, TABLE, [row])
    found = {}
    for name, store in (("local", local), ("s3", remote)):
        files = store.published_files(TABLE)
        dataset = store.storage.dataset(files) if store.storage.remote else None
        found[name] = store._boundary_ties_possible(store.connect(), TABLE, files, dataset)
    assert found == {"local": tie, "s3": tie}


def test_a_training_set_over_days_not_published_on_s3_joins_to_nulls(
    tmp_path, online_server
) -> None:
    """No published day (or none in the entity window): one row per entity, NULL features."""
    store = s3_offline_store(tmp_path, online_server.endpoint)
    entity = pd.DataFrame({"user_id": [1, 2], "event_timestamp": [datetime(2026, 1, 3)] * 2})
    request = [FeatureRequest(TABLE, ("value_0",))]
    result = store.get_historical_features(entity, request).to_pandas()
    assert result["user_id"].tolist() == [1, 2] and result["value_0"].isna().all()
    publish_rows(store, TABLE, day_rows(DAYS[4:5], 3, 1))  # after every entity time
    result = store.get_historical_features(entity, request).to_pandas()
    assert result["user_id"].tolist() == [1, 2] and result["value_0"].isna().all()
