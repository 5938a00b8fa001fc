"""An HTTP feature server over the SDK: the same online reads for services in any language.

    POST /get-online-features   {"features": ["table:feature", ...] | "feature_service": "name",
                                 "entities": [{"user_id": 42}, ...], "full_feature_names": false}
    GET  /health

With a token configured, every request but /health needs `Authorization: Bearer <token>`.
Bodies over `max_body_bytes` or with more than `max_entities` rows are refused (413).
"""

from __future__ import annotations

import hmac
import json
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from feature_assets.sdk import FeatureReferenceError, FeatureStore
from resources.online_store import OnlineStoreError


class RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


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
            try:
                self._authorize()
                if self.path != "/get-online-features":
                    raise RequestError(HTTPStatus.NOT_FOUND, f"no such path {self.path!r}")
                self._send(HTTPStatus.OK, self._online_features(self._body()))
            except RequestError as error:
                self._send(error.status, {"error": str(error)})
            except OnlineStoreError as error:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(error)})

        def _authorize(self) -> None:
            if token is None:
                return
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                raise RequestError(HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token")

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            if length > max_body_bytes:
                raise RequestError(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {max_body_bytes} bytes"
                )
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError as error:
                raise RequestError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {error}") from None
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
            try:
                result = store.get_online_features(
                    features, entities, full_feature_names=bool(body.get("full_feature_names"))
                )
            except (FeatureReferenceError, KeyError, TypeError, ValueError) as error:
                message = (
                    error.args[0] if isinstance(error, KeyError) and error.args else str(error)
                )
                raise RequestError(HTTPStatus.BAD_REQUEST, str(message)) from None
            return {"results": result.rows, "statuses": result.statuses}

        def _send(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
            return

    return ThreadingHTTPServer((host, port), Handler)
