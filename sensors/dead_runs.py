"""Runs whose process died: found by the host and pid every in-process run carries, failed,
and their pool slots freed, so nothing waits for them (later runs of the table, the sync sensor)."""

import os
import socket

import dagster as dg

from feature_assets.kernel.names import RUN_HOST_TAG, RUN_PID_STARTED_TAG, RUN_PID_TAG
from resources.processes import process_alive, process_started


def owner_tags() -> dict[str, str]:
    """Which process runs a run: a run whose process is gone can be told from a live one."""
    pid = os.getpid()
    tags = {RUN_HOST_TAG: socket.gethostname(), RUN_PID_TAG: str(pid)}
    started = process_started(pid)
    return tags if started is None else {**tags, RUN_PID_STARTED_TAG: started}


def reap_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Fail the runs whose process died (kill -9, a lost machine) and free their pool slots.

    An in-process run killed outright stays STARTED and keeps its `publish_<table>` or
    `online_sync_<table>` slot, so every later run of that table would wait for it forever.
    Runs started by this machine's processes carry their pid and its start time; one whose
    pid is gone, or now names a later process, is dead.
    (Under `dagster dev`, runs the daemon launches are watched by Dagster's run monitoring.)
    """
    reaped = []
    records = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING],
            tags={RUN_HOST_TAG: socket.gethostname()},
        )
    )
    for record in records:
        run = record.dagster_run
        pid = int(run.tags.get(RUN_PID_TAG, "0"))
        if pid and not process_alive(pid, run.tags.get(RUN_PID_STARTED_TAG)):
            instance.report_run_failed(run, f"its process {pid} is gone (killed or crashed)")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            reaped.append(run.run_id)
    return reaped
