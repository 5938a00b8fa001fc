"""One error tree: every error we raise on purpose is a FeatureStoreError that knows its
HTTP status, and the feature server maps by class (caller 4xx, store 503, bug 500)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from feature_assets.feature_server import make_server
from feature_assets.kernel import errors
from feature_assets.kernel.errors import FeatureStoreError
from feature_assets.sdk import FeatureStore
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from tests.builders import free_port, synthetic_table

ERROR_CLASSES = sorted(
    {
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, FeatureStoreError)
    },
    key=lambda cls: cls.__name__,
)


class RaisingStore:
    """Stands in for the SDK: raises whatever the test puts in `error`."""

    tables: dict = {}
    error: BaseException = RuntimeError("unset")

    def get_online_features(self, *args, **kwargs):
        raise self.error


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, RaisingStore]]:
    store = RaisingStore()
    http = make_server(store, "127.0.0.1", 0, allow_anonymous=True)  # type: ignore[arg-type]
    threading.Thread(target=http.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{http.server_address[1]}", store
    http.shutdown()
    http.server_close()


def post(url: str) -> tuple[int, dict]:
    body = json.dumps({"features": ["t:f"], "entities": [{"k": 1}]}).encode()
    request = urllib.request.Request(url + "/get-online-features", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_every_error_class_has_a_status_that_matches_whose_fault_it_is() -> None:
    for cls in ERROR_CLASSES:
        if cls.caller_fault and cls is not errors.FeatureDefinitionError:
            assert 400 <= cls.http_status < 500, cls
    assert errors.StoreUnavailableError.http_status == 503
    assert not errors.StoreUnavailableError.caller_fault
    assert FeatureStoreError.http_status == 500


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_the_server_answers_each_error_class_with_its_own_status(server, cls) -> None:
    url, store = server
    store.error = cls("feature table 'x': something precise")
    status, body = post(url)
    assert status == cls.http_status
    assert body["error"] == "feature table 'x': something precise"
    assert body["request_id"]


@pytest.mark.parametrize(
    "bug", [KeyError("k"), TypeError("t"), ValueError("v"), ZeroDivisionError()]
)
def test_a_bug_is_a_500_with_a_request_id_never_a_client_error(server, bug) -> None:
    url, store = server
    store.error = bug
    status, body = post(url)
    assert status == 500
    assert body["error"] == "internal error; see the server log" and body["request_id"]


def test_an_unreachable_online_store_is_a_503_naming_the_table(tmp_path) -> None:
    table = synthetic_table(name="user_daily_clicks_7d", features=("clicks",))
    store = FeatureStore(
        {table.name: table},
        OfflineStore(tmp_path / "offline", tmp_path / "staging"),
        # Nothing listens there; one attempt, so the test does not wait out botocore's retries.
        OnlineStore(endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1),
    )
    http = make_server(store, "127.0.0.1", 0, allow_anonymous=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        body = json.dumps(
            {"features": [f"{table.name}:clicks"], "entities": [{"user_id": 1}]}
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{http.server_address[1]}/get-online-features", data=body
        )
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=60)
        assert answer.value.code == 503
        assert "online store unreachable" in json.loads(answer.value.read())["error"]
    finally:
        http.shutdown()
        http.server_close()
