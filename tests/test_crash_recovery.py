"""A run killed with kill -9 in any step never blocks later runs: the README's command run
again recovers the exact state (whole days offline, newest rows online)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from feature_assets.assets.build import build_definitions
from feature_assets.demo_data import DemoDataSpec, generate_landing_data
from feature_assets.kernel.dates import days_between
from feature_assets.kernel.names import (
    ONLINE_SYNC_SENSOR,
    PUBLISH_CHECK,
    RANGE_END_TAG,
    RANGE_START_TAG,
    RUN_HOST_TAG,
    RUN_PID_STARTED_TAG,
    RUN_PID_TAG,
    online_asset_path,
    online_sync_step,
)
from feature_assets.sdk import FeatureStore
from resources.offline_store import RUN_ID
from resources.processes import process_alive
from sensors.dead_runs import owner_tags, reap_dead_runs
from tests.builders import (
    BUDGET_FACTOR,
    backfill_process,
    make_settings,
    run_within,
    timed,
)
from tests.throttling_proxy import throttling_proxy

TABLE = "user_daily_transactions_7d"
SPEC = DemoDataSpec(users=300, merchants=40, transactions_per_day=2_000, seed=5)
FIRST, LAST = date(2026, 1, 8), date(2026, 1, 12)
STEPS = {
    "dbt build": "feature_tables",
    "publish check": f"{TABLE}_{PUBLISH_CHECK}",
    "online sync": online_sync_step(TABLE),
}


def backfill(settings, first: date = FIRST, last: date = LAST) -> subprocess.Popen:
    # In its own session, so whatever survives the kill can still be stopped by its group.
    return backfill_process(settings, first, last, TABLE, own_session=True)


def stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (state, parent, ...), or None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(pid: int) -> set[int]:
    """Processes below `pid` now (Linux /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = stat_fields(int(stat.parent.name))
        if fields is not None:  # else gone meanwhile
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def in_step(pid: int, step: str) -> bool:
    """In the dbt step, once `dbt build` runs (the step first asks `dbt --version`)."""
    if step != STEPS["dbt build"]:
        return True
    return any(is_dbt_build(child) for child in descendants(pid))


def is_dbt_build(pid: int) -> bool:
    """dbt itself, building: past the `feature-store-dbt` wrapper, which asks the kernel to kill
    dbt with its parent and then becomes dbt. (Stopped inside the wrapper, before it asked, a
    process would outlive its run; running on, it would not.)"""
    argv = cmdline(pid).split(b"\0")
    return any(arg.endswith(b"/dbt") for arg in argv[:2]) and b"build" in argv


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def state(pid: int) -> str:
    """State, parent and start time from /proc/<pid>/stat, for a failure message."""
    fields = stat_fields(pid)
    if fields is None:
        return "gone"
    return f"state {fields[0]}, parent {fields[1]}, started {fields[19]}"


def wait_gone(pids: set[int], budget: float) -> set[int]:
    """The pids still alive once the budget is spent (none, as soon as all have gone)."""
    deadline = time.monotonic() + budget
    while (alive := {p for p in pids if process_alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def run_ids(settings) -> set[str]:
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    with dg.DagsterInstance.get() as instance:
        return {record.dagster_run.run_id for record in instance.get_run_records()}


def started_step(settings, step: str, earlier_runs: set[str]) -> bool:
    """The step started in a run other than `earlier_runs`."""
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    with dg.DagsterInstance.get() as instance:
        return any(
            record.event_log_entry.step_key == step
            for run in instance.get_run_records()
            if run.dagster_run.run_id not in earlier_runs
            for record in instance.get_records_for_run(
                run.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_START
            ).records
        )


@pytest.fixture(scope="module")
def home(tmp_path_factory, online_server) -> tuple:
    """One environment for the three kills (each rerun must recover whatever the last left),
    and the duration of a one-day backfill: the unit of every budget here."""
    settings = make_settings(tmp_path_factory.mktemp("crash"), online_server.endpoint)
    generate_landing_data(settings.landing_dir, date(2026, 1, 1), date(2026, 1, 13), SPEC)
    (calibration,), unit = timed(
        lambda: run_within([backfill(settings, FIRST, FIRST)], 3_600, "one-day backfill")
    )
    assert "succeeded" in calibration[0], calibration[0]
    return settings, unit


@pytest.mark.parametrize("step", STEPS.values(), ids=STEPS)
def test_a_run_killed_in_any_step_is_recovered_by_running_the_command_again(home, step) -> None:
    settings, unit = home

    earlier = run_ids(settings)
    victim = backfill(settings)
    deadline = time.monotonic() + BUDGET_FACTOR * unit
    while not (started_step(settings, step, earlier) and in_step(victim.pid, step)):
        assert victim.poll() is None, victim.communicate()[0]
        assert time.monotonic() < deadline, f"step {step} never started"
        time.sleep(0.2)
    children = descendants(victim.pid)
    for dbt in filter(is_dbt_build, children):
        os.kill(dbt, signal.SIGSTOP)  # busy in a long query: silent, so no broken pipe stops it
    os.kill(victim.pid, signal.SIGKILL)  # the run's process only, as the OOM killer would
    victim.wait()
    survivors = wait_gone(children, unit)
    described = {pid: (cmdline(pid)[:200], state(pid)) for pid in survivors}
    with contextlib.suppress(ProcessLookupError):  # whatever survived: the next test starts clean
        os.killpg(victim.pid, signal.SIGKILL)
    assert not survivors, f"still running after the run was killed: {described}"
    killed = run_ids(settings) - earlier

    (again,) = run_within([backfill(settings)], BUDGET_FACTOR * 2 * unit, "the backfill again")
    assert "succeeded" in again[0], again[0]

    store = FeatureStore.from_settings(settings)
    table = store.tables[TABLE]
    assert store.offline.published_days(table) == days_between(FIRST, LAST)
    for day in days_between(FIRST, LAST):  # whole days: every transaction counted once
        rows = store.offline.read_partition(table, day)
        assert rows["transaction_count_7d"].sum() == 7 * SPEC.transactions_per_day
    winners = store.offline.latest_rows(table).to_pandas()
    items = store.online.client.scan(TableName=store.online.table_name(table))["Items"]
    online = {int(i["user_id"]["N"]): int(i["transaction_count_7d"]["N"]) for i in items}
    assert online == dict(zip(winners["user_id"], winners["transaction_count_7d"], strict=True))
    assert list(settings.offline_dir.rglob("*.tmp-*")) == []
    # The killed run's staging folder is gone; the rerun removed its own after publishing.
    assert [p for p in settings.staging_dir.iterdir() if RUN_ID.fullmatch(p.name)] == []
    # Nor does dbt's target folder of the killed run stay in the project (dagster-dbt names
    # them <op>-<run id[:7]>-<uuid>).
    target = settings.dbt_project_dir / "target"
    assert [
        p.name for p in target.glob("*-*-*") if p.name.split("-")[-2] in {run[:7] for run in killed}
    ] == []


def test_leftovers_of_runs_no_longer_going_are_removed_and_others_kept(tmp_path) -> None:
    from resources.offline_store import OfflineStore

    store = OfflineStore(tmp_path / "offline", tmp_path / "staging")
    dead, alive = "0" * 8 + "-0000-0000-0000-" + "0" * 12, "1" * 32
    for run in (dead, alive):
        (tmp_path / "staging" / run).mkdir(parents=True)
    (tmp_path / "staging" / ".duckdb_spill").mkdir()
    day = tmp_path / "offline" / "t" / "feature_date=2026-01-01"
    day.mkdir(parents=True)
    stale = day / "data.parquet.tmp-aaaa"
    stale.write_bytes(b"half")
    os.utime(stale, (1_000, 1_000))
    fresh = day / "data.parquet.tmp-bbbb"
    fresh.write_bytes(b"being written")
    assert store.remove_leftovers({alive}, oldest_active_start=2_000.0) == 2
    assert sorted(p.name for p in (tmp_path / "staging").iterdir()) == [".duckdb_spill", alive]
    assert sorted(p.name for p in day.iterdir()) == [fresh.name]


def test_the_sync_sensor_does_not_wait_on_a_dead_run(home) -> None:
    """A run killed in its sync step published days it never synced: the sensor syncs them."""
    settings, unit = home
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def(ONLINE_SYNC_SENSOR)
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    with dg.DagsterInstance.get() as instance:

        def tick(cursor: str | None):
            data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))
            return list(data.run_requests or []), data.cursor

        _, cursor = tick(None)  # what is published now is handled
        earlier = run_ids(settings)
        # Every write throttled: the victim's sync keeps retrying until it is killed.
        with throttling_proxy(settings.dynamodb_endpoint, 1.0, 0.0) as (endpoint, _):
            slowed = replace(settings, dynamodb_endpoint=endpoint)
            victim = backfill_process(slowed, LAST, LAST, TABLE, own_session=True)
            deadline = time.monotonic() + BUDGET_FACTOR * unit
            while not started_step(settings, online_sync_step(TABLE), earlier):
                assert victim.poll() is None, victim.communicate()[0]
                assert time.monotonic() < deadline, "the sync step never started"
                time.sleep(0.2)
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
        requests, _ = tick(cursor)
    assert [
        (r.asset_selection, r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in requests
    ] == [([dg.AssetKey(online_asset_path(TABLE))], str(LAST), str(LAST))]


@pytest.mark.parametrize(
    ("tags", "reaped"),
    [
        pytest.param(owner_tags(), False, id="its process runs"),
        pytest.param({**owner_tags(), RUN_PID_STARTED_TAG: "1"}, True, id="its pid was reused"),
        pytest.param({**owner_tags(), RUN_PID_TAG: str(2**22 + 1)}, True, id="its pid is gone"),
        pytest.param({**owner_tags(), RUN_HOST_TAG: "elsewhere"}, False, id="another machine"),
    ],
)
def test_a_run_is_reaped_only_when_its_own_process_is_gone(tags, reaped) -> None:
    from dagster._core.storage.dagster_run import DagsterRun

    with dg.instance_for_test() as instance:
        run = instance.add_run(
            DagsterRun(job_name="pipeline", status=dg.DagsterRunStatus.STARTED, tags=tags)
        )
        assert reap_dead_runs(instance) == ([run.run_id] if reaped else [])
        status = instance.get_run_by_id(run.run_id).status
    assert status == (dg.DagsterRunStatus.FAILURE if reaped else dg.DagsterRunStatus.STARTED)
