"""The serving log: what the SDK and the HTTP server answered, sampled, in daily Parquet;
nothing lost on a clean stop, bounded memory and no blocked read when the disk is slow."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from feature_assets.kernel.contract import FeatureService
from feature_assets.kernel.errors import CallerError
from feature_assets.sdk import FeatureStore
from resources import serving_log
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from resources.serving_log import ServedColumn, ServingLog, read_served
from tests.builders import (
    BUDGET_FACTOR,
    free_port,
    log_tail,
    make_settings,
    publish_rows,
    settings_env,
    synthetic_table,
    timed,
    wait_for,
)

TABLE = synthetic_table(
    name="user_daily_clicks_7d",
    ttl=None,
    features=("clicks", "country"),
    feature_types={"country": "str"},
)
COLUMNS = [ServedColumn("clicks", TABLE.name, stored=True)]
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def record(log: ServingLog, n: int, *, when: datetime = NOW) -> int:
    kept = 0
    for i in range(n):
        kept += log.record(
            f"r{i}", when, "svc", COLUMNS, ["user_id"], [{"user_id": i, "clicks": i}], [{}]
        )
    return kept


@pytest.mark.parametrize("rate", [0.0, 0.01, 0.3, 0.5, 1 / 3, 1.0])
def test_sampling_keeps_exactly_floor_of_requests_times_rate(tmp_path, rate) -> None:
    log = ServingLog(tmp_path, sample_rate=rate)
    kept = record(log, 1000)
    log.close()
    assert kept == int(1000 * rate + 1e-9)
    assert len(read_served(tmp_path, [NOW.date()])) == kept
    assert log.stats().written_rows == kept


def test_a_bad_rate_is_refused_naming_it(tmp_path) -> None:
    with pytest.raises(CallerError, match="sample rate 1.5"):
        ServingLog(tmp_path, sample_rate=1.5)


def test_a_slow_disk_drops_and_counts_and_never_blocks_a_read(tmp_path, monkeypatch) -> None:
    disk = threading.Event()  # the disk answers only when set
    write_file = ServingLog._write_file

    def slow(self, day, rows):
        disk.wait()
        write_file(self, day, rows)

    monkeypatch.setattr(ServingLog, "_write_file", slow)
    log = ServingLog(tmp_path, sample_rate=1.0, flush_rows=10, max_pending_rows=100)
    reads = threading.Thread(target=record, args=(log, 1000))
    reads.start()
    # 1,000 reads against a stalled disk: if a read waited for the disk this would not end.
    _, alone = timed(lambda: record(ServingLog(tmp_path / "x", sample_rate=0.0), 1000))
    reads.join(timeout=max(30.0, BUDGET_FACTOR * 10 * alone))
    assert not reads.is_alive(), "reads blocked on the serving log's disk"
    stats = log.stats()
    assert stats.dropped_rows > 0
    assert stats.pending_rows <= 100  # memory stays bounded
    disk.set()
    log.close()
    stats = log.stats()
    # Every sampled row is either in a file or counted as dropped.
    assert stats.written_rows + stats.dropped_rows == 1000
    assert len(read_served(tmp_path, [NOW.date()])) == stats.written_rows


def test_a_failing_disk_counts_errors_and_reads_go_on(tmp_path) -> None:
    blocked = tmp_path / "offline"
    blocked.mkdir()
    (blocked / serving_log.FOLDER).write_text("a file where the log's folder should be")
    log = ServingLog(blocked, sample_rate=1.0)
    record(log, 5)
    log.flush()
    record(log, 5)
    log.close()
    stats = log.stats()
    assert stats.write_errors >= 1
    assert stats.dropped_rows == 10 and stats.written_rows == 0


def test_requests_land_in_the_day_they_were_served(tmp_path) -> None:
    log = ServingLog(tmp_path, sample_rate=1.0)
    record(log, 3, when=datetime(2026, 3, 1, 23, 59, tzinfo=UTC))
    record(log, 2, when=datetime(2026, 3, 2, 0, 0, tzinfo=UTC))
    log.close()
    assert serving_log.served_days(tmp_path) == [date(2026, 3, 1), date(2026, 3, 2)]
    assert len(read_served(tmp_path, [date(2026, 3, 2)])) == 2


@pytest.fixture
def store(tmp_path, online_server) -> FeatureStore:
    offline = OfflineStore(root=str(tmp_path / "offline"), staging_root=str(tmp_path / "staging"))
    online = OnlineStore(
        endpoint_url=online_server.endpoint, table_prefix=f"t{uuid.uuid4().hex[:8]}_"
    )
    publish_rows(offline, TABLE, rows_of(date(2026, 2, 28), users=(1, 2)))
    online.write_rows(TABLE, offline.latest_rows(TABLE))
    service = FeatureService("clicks_v1", (f"{TABLE.name}:clicks", f"{TABLE.name}:country"))
    return FeatureStore(
        {TABLE.name: TABLE},
        offline,
        online,
        {service.name: service},
        serving_log=ServingLog(offline.root, sample_rate=1.0),
    )


def rows_of(day: date, users: tuple[int, ...]) -> list[dict]:
    stamp = datetime(day.year, day.month, day.day) + (datetime(2026, 1, 2) - datetime(2026, 1, 1))
    return [
        {
            "user_id": u,
            "feature_date": day,
            "event_timestamp": stamp,
            "created_at": stamp,
            "clicks": u * 3,
            "country": f"c{u}",
        }
        for u in users
    ]


def test_sdk_logs_service_reads_with_keys_values_and_statuses(store) -> None:
    read = store.get_online_features(
        "clicks_v1", [{"user_id": 1}, {"user_id": 9}], now=NOW, request_id="req-1"
    )
    read.rows[0]["clicks"] = -1  # the caller's copy: the log keeps what was served
    store.get_online_features([f"{TABLE.name}:clicks"], [{"user_id": 2}], now=NOW)
    store.close()
    logged = (
        read_served(store.offline.state_root, [NOW.date()])
        .to_pandas()
        .sort_values(["request_id", "feature"])
    )
    service = logged[logged.feature_service == "clicks_v1"]
    assert set(service.request_id) == {"req-1"}
    by = {(json.loads(r.entity_key)["user_id"], r.feature): r for r in service.itertuples()}
    assert by[(1, "clicks")].value_number == 3.0 and by[(1, "clicks")].status == "present"
    assert by[(1, "country")].value_text == "c1"
    assert by[(9, "clicks")].status == "not_found" and pd.isna(by[(9, "clicks")].value_number)
    listed = logged[logged.feature_service.isna()]
    assert list(listed.feature) == ["clicks"] and list(listed.value_number) == [6.0]


def test_http_server_stopped_mid_traffic_logs_every_sampled_answer(
    tmp_path, online_server, demo_tables
) -> None:
    """SIGTERM while clients are reading: every answered request is in the log, sampled
    exactly, under the request id the client got."""
    settings = make_settings(tmp_path / "home", online_server.endpoint)
    table = demo_tables["user_daily_transactions_7d"]
    offline = OfflineStore.from_settings(settings)
    day = date(2026, 2, 28)
    stamp = datetime(2026, 3, 1)
    publish_rows(
        offline,
        table,
        [
            {
                "user_id": u,
                "feature_date": day,
                "event_timestamp": stamp,
                "created_at": stamp,
                **{f: 1 for f in table.feature_names},
            }
            for u in range(1, 21)
        ],
    )
    OnlineStore.from_settings(settings).write_rows(table, offline.latest_rows(table))
    port = free_port()
    server_log = tmp_path / "server.log"
    command = [sys.executable, "-m", "feature_assets.cli", "serve", "--port", str(port)]
    with server_log.open("w") as out:
        server = subprocess.Popen(
            [*command, "--no-auth", "--log-rate", "0.5"],
            env=settings_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    answered: list[str] = []
    stop = threading.Event()

    def client(worker: int) -> None:
        body = json.dumps(
            {"feature_service": "fraud_detection_v1", "entities": [{"user_id": worker + 1}]}
        ).encode()
        while not stop.is_set():
            request = urllib.request.Request(url + "/get-online-features", data=body)
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    answered.append(json.loads(response.read())["request_id"])
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if server.poll() is not None:
                    return

    def up() -> bool:
        try:
            with urllib.request.urlopen(url + "/health", timeout=5):
                return True
        except (urllib.error.URLError, ConnectionError):
            return False

    try:
        wait_for(up, 120, "feature server start", server_log)
        clients = [threading.Thread(target=client, args=(w,)) for w in range(4)]
        for thread in clients:
            thread.start()
        wait_for(lambda: len(answered) >= 40, 120, "40 answered reads", server_log)
        server.send_signal(signal.SIGTERM)  # mid-traffic: four clients are reading
        server.wait(timeout=120)
    finally:
        stop.set()
        if server.poll() is None:
            server.kill()
    for thread in clients:
        thread.join(timeout=60)
    assert server.returncode == 0, log_tail(server_log)
    logged = read_served(offline.root, serving_log.served_days(offline.root)).to_pandas()
    ids = set(logged.request_id)
    assert len(ids) == len(answered) // 2, log_tail(server_log)
    assert ids <= set(answered)
    # Each logged request is whole: the service's five features for its one entity.
    assert (logged.groupby("request_id").size() == 5).all()
    assert "dropped" in server_log.read_text()
