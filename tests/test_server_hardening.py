"""The feature server always answers: hostile lengths and bodies, slow and idle clients, a
hung store, wrong methods, many clients at once; and it never starts open by accident."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from feature_assets.feature_server import FeatureServer, make_server
from feature_assets.kernel.errors import CallerError, StoreUnavailableError
from feature_assets.sdk import OnlineFeatures
from tests.builders import BUDGET_FACTOR, synthetic_table

TOKEN = "s3cret"
TABLE = synthetic_table(name="user_daily_clicks_7d", features=("clicks",))
FEATURES = [f"{TABLE.name}:clicks"]


@dataclass
class StubStore:
    """The SDK's surface the server uses, with a store that can hang or be down."""

    tables: dict = field(default_factory=lambda: {TABLE.name: TABLE})
    delay: float = 0.0
    down: bool = False

    def ping(self) -> None:
        if self.down:
            raise StoreUnavailableError("online store: unreachable")

    def get_online_features(
        self, features, entities, full_feature_names=False, request_id=None
    ) -> OnlineFeatures:
        time.sleep(self.delay)
        if self.down:
            raise StoreUnavailableError("online store: unreachable")
        if not all(isinstance(f, str) for f in features):
            from feature_assets.kernel.errors import FeatureReferenceError

            raise FeatureReferenceError(f"feature reference {features[0]!r} is not a string")
        return OnlineFeatures([{**e, "clicks": 1} for e in entities], [{} for _ in entities])


@dataclass
class Running:
    server: FeatureServer
    store: StubStore

    @property
    def port(self) -> int:
        return self.server.server_address[1]


def start(store: StubStore, **limits) -> Running:
    server = make_server(store, "127.0.0.1", 0, token=TOKEN, **limits)  # type: ignore[arg-type]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Running(server, store)


@pytest.fixture
def running() -> Iterator[Running]:
    running = start(StubStore(), socket_timeout=1.0, request_deadline=1.0, workers=4)
    yield running
    running.server.shutdown()
    running.server.server_close()


def exchange(port: int, raw: bytes, budget: float = 30.0) -> tuple[int, dict]:
    """Send raw bytes, read the whole answer; (status, JSON body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=budget) as conn:
        conn.sendall(raw)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def sized(body: bytes) -> bytes:
    return post(body, str(len(body)))


def post(body: bytes, length: str | None = None, path: str = "/get-online-features") -> bytes:
    headers = f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
    if length is not None:
        headers += f"Content-Length: {length}\r\n"
    return headers.encode() + b"\r\n" + body


GOOD = json.dumps({"features": FEATURES, "entities": [{"user_id": 1}]}).encode()
HOSTILE = {
    "Content-Length abc": (post(GOOD, "abc"), 400, "Content-Length"),
    "Content-Length -1": (post(GOOD, "-1"), 400, "Content-Length"),
    "no Content-Length": (post(GOOD, None), 400, "Content-Length"),
    "Content-Length 50 MiB": (post(GOOD, str(50 << 20)), 413, "body over"),
    "features not strings": (
        sized(b'{"features": [1, 2], "entities": [{"user_id": 1}]}'),
        400,
        "not a string",
    ),
    "deeply nested JSON": (sized(b"[" * 100_000), 400, "nested too deeply"),
    "4,400-digit integer key": (
        sized(b'{"features": ["a:b"], "entities": [{"user_id": ' + b"9" * 4400 + b"}]}"),
        400,
        "not JSON",
    ),
    "GET on a POST path": (b"GET /get-online-features HTTP/1.1\r\n\r\n", 405, "takes POST"),
    "PUT": (b"PUT /health HTTP/1.1\r\n\r\n", 405, "takes GET"),
    "unknown path": (post(GOOD, str(len(GOOD)), "/admin"), 404, "no such path"),
}


@pytest.mark.parametrize(("raw", "status", "message"), HOSTILE.values(), ids=HOSTILE)
def test_every_hostile_request_gets_a_json_status(running, raw, status, message) -> None:
    got, body = exchange(running.port, raw)
    assert got == status
    assert message in body["error"]
    assert body["request_id"]


def test_a_wrong_method_names_the_allowed_one(running) -> None:
    with socket.create_connection(("127.0.0.1", running.port), timeout=30) as conn:
        conn.sendall(b"DELETE /get-online-features HTTP/1.1\r\n\r\n")
        assert b"Allow: POST" in conn.recv(65536)


def test_a_slow_body_gets_408_after_the_socket_timeout(running) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", running.port), timeout=30) as conn:
        conn.sendall(post(GOOD[:10], str(len(GOOD))))  # promises more than it sends
        answer = conn.recv(65536)
    assert answer.split()[1] == b"408"
    assert time.monotonic() - started < 1.0 * BUDGET_FACTOR


def test_idle_connections_do_not_pin_the_workers(running) -> None:
    idle = [socket.create_connection(("127.0.0.1", running.port)) for _ in range(8)]
    try:
        status, body = exchange(running.port, sized(GOOD))
        assert status == 200 and body["results"] == [{"user_id": 1, "clicks": 1}]
    finally:
        for conn in idle:
            conn.close()


def test_a_hung_store_is_a_503_at_the_request_deadline(running) -> None:
    running.store.delay = 20.0
    started = time.monotonic()
    status, body = exchange(running.port, sized(GOOD))
    assert status == 503 and "request deadline" in body["error"]
    assert time.monotonic() - started < 1.0 * BUDGET_FACTOR


def test_health_reflects_the_store_and_lists_tables_only_with_the_token(running) -> None:
    status, body = exchange(running.port, b"GET /health HTTP/1.1\r\n\r\n")
    assert status == 200 and body["status"] == "ok" and "tables" not in body
    with_token = f"GET /health HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
    assert exchange(running.port, with_token)[1]["tables"] == [TABLE.name]
    running.store.down = True
    status, body = exchange(running.port, b"GET /health HTTP/1.1\r\n\r\n")
    assert status == 503 and "unavailable" in body["status"]


def test_each_request_leaves_one_access_log_line_with_its_id(running, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="feature_assets.feature_server.access"):
        _, body = exchange(running.port, post(GOOD, "abc"))
        deadline = time.monotonic() + 10
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.05)
    lines = [r.getMessage() for r in caplog.records]
    assert any(f"id={body['request_id']}" in line and " 400 " in line for line in lines)


def test_fifty_clients_at_once_are_all_answered_and_the_server_lives() -> None:
    running = start(StubStore(delay=0.01))  # default limits: 16 workers, 64 waiting
    stop = time.monotonic() + 3.0

    def client(_: int) -> list[int]:
        statuses = []
        while time.monotonic() < stop:
            statuses.append(exchange(running.port, sized(GOOD))[0])
        return statuses

    try:
        with ThreadPoolExecutor(50) as pool:
            answered = [s for statuses in pool.map(client, range(50)) for s in statuses]
        assert len(answered) >= 50 and set(answered) == {200}, sorted(set(answered))
        assert exchange(running.port, sized(GOOD))[0] == 200
    finally:
        running.server.shutdown()
        running.server.server_close()


def test_beyond_its_queue_the_server_answers_busy_at_once(running) -> None:
    running.store.delay = 0.5  # 4 workers, 20 slots: 40 clients overflow them
    with ThreadPoolExecutor(40) as pool:
        answered = list(pool.map(lambda _: exchange(running.port, sized(GOOD))[0], range(40)))
    assert set(answered) == {200, 503}


def test_the_server_never_starts_open_by_accident() -> None:
    with pytest.raises(CallerError, match="--no-auth"):
        make_server(StubStore(), "127.0.0.1", 0)  # type: ignore[arg-type]
    with pytest.raises(CallerError, match="non-loopback address needs a token"):
        make_server(StubStore(), "0.0.0.0", 0, allow_anonymous=True)  # type: ignore[arg-type]
    server = make_server(StubStore(), "127.0.0.1", 0, allow_anonymous=True)  # type: ignore[arg-type]
    server.server_close()
