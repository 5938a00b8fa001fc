"""The HTTP feature server: token, clear 4xx errors, bounded requests, values equal to the SDK's."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime

import pytest

from feature_assets.feature_server import make_server
from feature_assets.kernel.contract import FeatureService
from feature_assets.sdk import FeatureStore
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from tests.builders import BUDGET_FACTOR, free_port, publish_rows, synthetic_table
from tests.throttling_proxy import throttling_proxy

TOKEN = "s3cret"
TABLE = synthetic_table(name="user_daily_clicks_7d", ttl=None, features=("clicks",))


@pytest.fixture
def server_url(tmp_path, online_server) -> Iterator[str]:
    offline = OfflineStore(root=str(tmp_path / "offline"), staging_root=str(tmp_path / "staging"))
    online = OnlineStore(
        endpoint_url=online_server.endpoint, table_prefix=f"t{uuid.uuid4().hex[:8]}_"
    )
    publish_rows(
        offline,
        TABLE,
        [
            {
                "user_id": u,
                "feature_date": date(2026, 1, 1),
                "event_timestamp": datetime(2026, 1, 2),
                "created_at": datetime(2026, 1, 2),
                "clicks": u * 3,
            }
            for u in (1, 2)
        ],
    )
    online.write_rows(TABLE, offline.latest_rows(TABLE))
    store = FeatureStore(
        {TABLE.name: TABLE},
        offline,
        online,
        {"churn_v1": FeatureService("churn_v1", (f"{TABLE.name}:clicks",))},
    )
    with serving(store) as url:
        yield url


@contextmanager
def serving(store: FeatureStore) -> Iterator[str]:
    """The server's URL on a free port of 127.0.0.1 for the duration of the block."""
    server = make_server(store, "127.0.0.1", 0, token=TOKEN, max_body_bytes=2_000, max_entities=10)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def call(
    url: str, path: str, body: object | None = None, token: str | None = TOKEN
) -> tuple[int, dict]:
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    request = urllib.request.Request(
        url + path, data=data, method="POST" if data is not None else "GET"
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_online_features_over_http(server_url) -> None:
    status, body = call(
        server_url,
        "/get-online-features",
        {"features": [f"{TABLE.name}:clicks"], "entities": [{"user_id": 2}, {"user_id": 9}]},
    )
    assert status == 200
    assert body["results"] == [{"user_id": 2, "clicks": 6}, {"user_id": 9, "clicks": None}]
    assert body["statuses"] == [{TABLE.name: "present"}, {TABLE.name: "not_found"}]
    status, body = call(
        server_url,
        "/get-online-features",
        {"feature_service": "churn_v1", "entities": [{"user_id": 1}]},
    )
    assert status == 200 and body["results"] == [{"user_id": 1, "clicks": 3}]


def test_request_without_or_with_wrong_token_is_refused(server_url) -> None:
    request = {"features": [f"{TABLE.name}:clicks"], "entities": [{"user_id": 1}]}
    assert call(server_url, "/get-online-features", request, token=None)[0] == 401
    assert call(server_url, "/get-online-features", request, token="guess")[0] == 401
    assert call(server_url, "/health", token=None)[0] == 200


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"features": [f"{TABLE.name}:nope"], "entities": [{"user_id": 1}]},
            400,
            "has no feature 'nope'",
        ),
        (
            {"features": ["unknown_daily_x_1d:a"], "entities": [{"user_id": 1}]},
            400,
            "unknown feature table",
        ),
        (
            {"features": [f"{TABLE.name}:clicks"], "entities": [{"user_id": "1"}]},
            400,
            "must be an integer",
        ),
        (
            {"features": [f"{TABLE.name}:clicks"], "entities": [{"account": 1}]},
            400,
            "has no key 'user_id'",
        ),
        (
            {"features": [f"{TABLE.name}:clicks"], "entities": "user 1"},
            400,
            "must be a list of objects",
        ),
        ({"entities": [{"user_id": 1}]}, 400, "give 'features'"),
        (b"{not json", 400, "not JSON"),
        (
            {"features": [f"{TABLE.name}:clicks"], "entities": [{"user_id": i} for i in range(11)]},
            413,
            "at most 10",
        ),
        (
            {"features": [f"{TABLE.name}:clicks"], "entities": [{"user_id": 1, "pad": "x" * 3000}]},
            413,
            "over 2000 bytes",
        ),
    ],
)
def test_bad_requests_get_clear_4xx(server_url, body, status, message) -> None:
    got, payload = call(server_url, "/get-online-features", body)
    assert got == status
    assert message in payload["error"]


@contextmanager
def store_behind(how: str, upstream: str) -> Iterator[str]:
    """An endpoint in front of the real store that throttles every request, or one where
    nothing listens."""
    if how == "throttled":
        with throttling_proxy(upstream, throttle=1.0, unprocessed=0.0) as (endpoint, _):
            yield endpoint
    else:
        yield f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize("how", ["throttled", "unreachable"])
def test_a_throttled_or_unreachable_store_is_a_json_503(server_url, online_server, how) -> None:
    """Before, the connection dropped without an answer (the traceback went to stderr)."""
    with store_behind(how, online_server.endpoint) as endpoint:
        store = FeatureStore(
            {TABLE.name: TABLE},
            OfflineStore(root="/nonexistent", staging_root="/nonexistent"),
            OnlineStore(endpoint_url=endpoint, table_prefix="t_", max_attempts=3),
        )
        with serving(store) as url:
            started = time.monotonic()
            request = {"features": [f"{TABLE.name}:clicks"], "entities": [{"user_id": 1}]}
            status, body = call(url, "/get-online-features", request)
            took = time.monotonic() - started
            health, _ = call(url, "/health", token=None)
    assert status == 503, body
    assert ("throttling" if how == "throttled" else "unreachable") in body["error"]
    assert body["request_id"]
    assert health == 503
    # Inside the server's 10 s request deadline, whatever the retries.
    assert took < 10.0 * BUDGET_FACTOR
