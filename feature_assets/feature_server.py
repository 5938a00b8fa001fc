"""An HTTP feature server over the SDK: the same online reads for services in any language.

    POST /get-online-features   {"features": ["table:feature", ...] | "feature_service": "name",
                                 "entities": [{"user_id": 42}, ...], "full_feature_names": false}
    GET  /health

With a token configured, every request but /health needs `Authorization: Bearer <token>`.
Bodies over `max_body_bytes` or with more than `max_entities` rows are refused (413).

Errors map by class: a `FeatureStoreError` answers with its own `http_status` (4xx when the
caller can fix the request, 503 when a store is unavailable); anything else is a bug and
answers 500 with a request id, its traceback going to the server's log.
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from feature_assets.kernel.errors import CallerError, FeatureStoreError
from feature_assets.sdk import FeatureStore

log = logging.getLogger(__name__)


class RequestError(CallerError):
    """The HTTP request itself is wrong (auth, path, body); carries its own status."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.http_status = int(status)


def make_server(
    store: FeatureStore,
    host: str = "127.0.0.1",
    port: int = 6566,
    *,
    token: str | None = None,
    max_body_bytes: int = 1 << 20,
    max_entities: int = 1_000,
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "feature-store"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/health":
                self._send(HTTPStatus.OK, {"status": "ok", "tables": sorted(store.tables)})
            else:
                self._send(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path!r}"})

        def do_POST(self) -> None:  # noqa: N802
            request_id = uuid.uuid4().hex[:12]
            try:
                self._authorize()
                if self.path != "/get-online-features":
                    raise RequestError(HTTPStatus.NOT_FOUND, f"no such path {self.path!r}")
                self._send(HTTPStatus.OK, self._online_features(self._body()))
            except FeatureStoreError as error:
                self._send(error.http_status, {"error": str(error), "request_id": request_id})
            except Exception:
                log.exception("request %s failed", request_id)
                self._send(
                    HTTPStatus.INTERNAL_SERVER_ERROR,
                    {"error": "internal error; see the server log", "request_id": request_id},
                )

        def _authorize(self) -> None:
            if token is None:
                return
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
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
                body = json.loads(self.rfile.read(length) or b"{}")
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise RequestError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {error}") from None
            except RecursionError:
                raise RequestError(HTTPStatus.BAD_REQUEST, "body is nested too deeply") from None
            if not isinstance(body, dict):
                raise RequestError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
            return body

        def _online_features(self, body: dict[str, Any]) -> dict[str, Any]:
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
            result = store.get_online_features(
                features, entities, full_feature_names=bool(body.get("full_feature_names"))
            )
            return {"results": result.rows, "statuses": result.statuses}

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
            return

    return ThreadingHTTPServer((host, port), Handler)
