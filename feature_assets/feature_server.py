"""An HTTP feature server over the SDK: the same online reads for services in any language.

    POST /get-online-features   {"features": ["table:feature", ...] | "feature_service": "name",
                                 "entities": [{"user_id": 42}, ...], "full_feature_names": false}
    POST /push                  {"table": "name", "rows": [{"user_id": 42, "event_timestamp":
                                 "2026-01-02T10:00:00Z", "<feature>": 1.5, ...}]}: fresh values
                                 online (newer-wins) and in the push log; 400 names the row
                                 and column of a bad row, and then nothing is written
    GET  /health                200 {"status": "ok"} or 503 when the online store does not answer

Every request but /health needs `Authorization: Bearer <token>`; the server refuses to start
without a token unless told `allow_anonymous`, and never without one off loopback. Anonymous
/health shows the status only; with the token it also lists the tables.

Every request gets an answer with a JSON body and a request id (also in the access log):
a `FeatureStoreError` answers with its own `http_status` (4xx when the caller can fix the
request, 503 when a store is unavailable, throttling or slower than the request deadline);
anything else is a bug and answers 500, its traceback going to the server's log. The body
must come with a valid Content-Length within `max_body_bytes`; a connection that stays idle
or slow past `socket_timeout` is closed (408 when a body was promised); at most `workers`
requests run at once and `workers * 4` wait, beyond which the answer is 503 at once.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from socket import socket
from typing import Any

from feature_assets.kernel.errors import CallerError, FeatureStoreError, StoreUnavailableError
from feature_assets.sdk import FeatureStore

log = logging.getLogger(__name__)
access_log = logging.getLogger(f"{__name__}.access")

ONLINE_FEATURES = "/get-online-features"
HEALTH = "/health"
PUSH = "/push"
ALLOWED = {ONLINE_FEATURES: "POST", HEALTH: "GET", PUSH: "POST"}


class RequestError(CallerError):
    """The HTTP request itself is wrong (auth, path, method, body); carries its own status."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.http_status = int(status)


class FeatureServer(HTTPServer):
    """A bounded pool of workers instead of a thread per connection, and a real backlog."""

    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        workers: int,
    ) -> None:
        super().__init__(address, handler)
        self.workers = ThreadPoolExecutor(workers, thread_name_prefix="feature-server")
        # Store calls run apart, so a request can answer 503 at its deadline even when the
        # store never answers; the late call finishes on its own.
        self.store_calls = ThreadPoolExecutor(workers, thread_name_prefix="store-call")
        self.slots = threading.BoundedSemaphore(workers * 5)

    def process_request(self, request: socket, client_address: Any) -> None:  # type: ignore[override]
        if not self.slots.acquire(blocking=False):
            _refuse_busy(request)
            self.shutdown_request(request)
            return
        self.workers.submit(self._serve, request, client_address)

    def _serve(self, request: socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self.slots.release()

    def server_close(self) -> None:
        super().server_close()
        self.workers.shutdown(wait=False, cancel_futures=True)
        self.store_calls.shutdown(wait=False, cancel_futures=True)

    def drain(self) -> None:
        """Wait for the requests under way (each bounded by its deadline and the socket
        timeout), so every answer sent is in the serving log before it is closed."""
        self.workers.shutdown(wait=True, cancel_futures=True)
        self.store_calls.shutdown(wait=True, cancel_futures=True)


def _refuse_busy(request: socket) -> None:
    body = json.dumps({"error": "server busy; retry", "request_id": None}).encode()
    head = (
        "HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Retry-After: 1\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with contextlib.suppress(OSError):  # the client went away; nothing to answer
        request.sendall(head + body)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def make_server(
    store: FeatureStore,
    host: str = "127.0.0.1",
    port: int = 6566,
    *,
    token: str | None = None,
    allow_anonymous: bool = False,
    max_body_bytes: int = 1 << 20,
    max_entities: int = 1_000,
    socket_timeout: float = 10.0,
    request_deadline: float = 10.0,
    workers: int = 16,
) -> FeatureServer:
    if token is None and not is_loopback(host):
        raise CallerError(
            f"feature server on {host}: a non-loopback address needs a token "
            "(FEATURE_STORE_SERVER_TOKEN)"
        )
    if token is None and not allow_anonymous:
        raise CallerError(
            "feature server: set FEATURE_STORE_SERVER_TOKEN, or pass --no-auth to serve "
            "127.0.0.1 without one"
        )

    class Handler(BaseHTTPRequestHandler):
        server_version = "feature-store"
        timeout = socket_timeout  # idle and slow connections do not pin a worker

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._handle("PUT")

        def do_DELETE(self) -> None:  # noqa: N802
            self._handle("DELETE")

        def do_PATCH(self) -> None:  # noqa: N802
            self._handle("PATCH")

        def _handle(self, method: str) -> None:
            request_id = self.request_id = uuid.uuid4().hex[:12]
            started = time.monotonic()
            deadline = started + request_deadline
            status: int = HTTPStatus.INTERNAL_SERVER_ERROR
            try:
                status, payload = self._route(method, deadline)
            except FeatureStoreError as error:
                status, payload = error.http_status, {"error": str(error)}
            except Exception:
                log.exception("request %s failed", request_id)
                payload = {"error": "internal error; see the server log"}
            finally:
                access_log.info(
                    "%s %s %s %s %.1fms id=%s",
                    self.client_address[0],
                    method,
                    self.path,
                    status,
                    (time.monotonic() - started) * 1000,
                    request_id,
                )
            self._send(status, {**payload, "request_id": request_id})

        def _route(self, method: str, deadline: float) -> tuple[int, dict[str, Any]]:
            if self.path not in ALLOWED:
                raise RequestError(HTTPStatus.NOT_FOUND, f"no such path {self.path!r}")
            if method != ALLOWED[self.path]:
                raise RequestError(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    f"{self.path} takes {ALLOWED[self.path]}, not {method}",
                )
            if self.path == HEALTH:
                return self._health(deadline)
            self._authorize()
            if self.path == PUSH:
                return HTTPStatus.OK, self._push(self._body(), deadline)
            return HTTPStatus.OK, self._online_features(self._body(), deadline)

        def _health(self, deadline: float) -> tuple[int, dict[str, Any]]:
            try:
                _within(deadline, store.ping)
            except StoreUnavailableError:
                return HTTPStatus.SERVICE_UNAVAILABLE, {"status": "online store unavailable"}
            payload: dict[str, Any] = {"status": "ok"}
            if self._authorized():
                payload["tables"] = sorted(store.tables)
            return HTTPStatus.OK, payload

        def _authorized(self) -> bool:
            if token is None:
                return True
            given = self.headers.get("Authorization", "")
            return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

        def _authorize(self) -> None:
            if not self._authorized():
                raise RequestError(HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token")

        def _body(self) -> dict[str, Any]:
            raw_length = self.headers.get("Content-Length")
            if raw_length is None or not raw_length.isdigit():
                raise RequestError(
                    HTTPStatus.BAD_REQUEST,
                    f"Content-Length must be a whole number of bytes, not {raw_length!r}",
                )
            length = int(raw_length)
            if length > max_body_bytes:
                raise RequestError(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {max_body_bytes} bytes"
                )
            try:
                raw = self.rfile.read(length)
            except TimeoutError:
                raise RequestError(
                    HTTPStatus.REQUEST_TIMEOUT, f"body not sent within {socket_timeout:g}s"
                ) from None
            if len(raw) < length:
                raise RequestError(
                    HTTPStatus.BAD_REQUEST, f"body ended after {len(raw)} of {length} bytes"
                )
            try:
                body = json.loads(raw or b"{}")
            except RecursionError:
                raise RequestError(HTTPStatus.BAD_REQUEST, "body is nested too deeply") from None
            except ValueError as error:  # bad JSON, bad UTF-8, an integer of 4,300+ digits
                raise RequestError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {error}") from None
            if not isinstance(body, dict):
                raise RequestError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
            return body

        def _online_features(self, body: dict[str, Any], deadline: float) -> dict[str, Any]:
            features = body.get("feature_service") or body.get("features")
            entities = body.get("entities")
            if not features:
                raise RequestError(
                    HTTPStatus.BAD_REQUEST, "give 'features' (a list) or 'feature_service'"
                )
            if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
                raise RequestError(HTTPStatus.BAD_REQUEST, "'entities' must be a list of objects")
            if len(entities) > max_entities:
                raise RequestError(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"{len(entities)} entities; at most {max_entities}",
                )
            full_names = bool(body.get("full_feature_names"))
            result = _within(
                deadline,
                lambda: store.get_online_features(
                    features, entities, full_feature_names=full_names, request_id=self.request_id
                ),
            )
            return {"results": result.rows, "statuses": result.statuses}

        def _push(self, body: dict[str, Any], deadline: float) -> dict[str, Any]:
            table, rows = body.get("table"), body.get("rows")
            if not isinstance(table, str):
                raise RequestError(HTTPStatus.BAD_REQUEST, "'table' must be a feature table name")
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise RequestError(HTTPStatus.BAD_REQUEST, "'rows' must be a list of objects")
            if len(rows) > max_entities:
                raise RequestError(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"{len(rows)} rows; at most {max_entities}"
                )
            result = _within(deadline, lambda: store.push(table, rows))
            return {
                "rows": result.rows,
                "written": result.written,
                "kept_newer": result.kept_newer,
            }

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload, default=str).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == HTTPStatus.METHOD_NOT_ALLOWED and self.path in ALLOWED:
                    self.send_header("Allow", ALLOWED[self.path])
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                self.close_connection = True  # the client went away before its answer

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return  # one access-log line per request instead (above)

    server = FeatureServer((host, port), Handler, workers)

    def _within(deadline: float, call: Any) -> Any:
        future = server.store_calls.submit(call)
        try:
            return future.result(timeout=max(deadline - time.monotonic(), 0.0))
        except FutureTimeout:
            raise StoreUnavailableError(
                f"online store did not answer within the {request_deadline:g}s request deadline"
            ) from None

    return server
