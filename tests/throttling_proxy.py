"""A DynamoDB proxy on 127.0.0.1 that misbehaves like a busy table: for a share of requests
it answers ProvisionedThroughputExceededException, and for a share of batch calls it
processes only half the items or keys and returns the rest as UnprocessedItems/Keys.
Seeded, so a run is repeatable; used by the fault tests and the throttling benchmark."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

THROTTLED = json.dumps(
    {
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": "The level of configured provisioned throughput for the table was exceeded.",
    }
).encode()


@dataclass
class Counts:
    requests: int = 0
    throttled: int = 0
    partial: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def throttling_proxy(
    upstream: str, throttle: float, unprocessed: float, seed: int = 7, burst: float = 0.0
) -> Iterator[tuple[str, Counts]]:
    """(endpoint, counts) of a proxy in front of `upstream` for the duration of the block.
    With `burst`, every BatchWriteItem is throttled for that many seconds after the first."""
    target = urlparse(upstream)
    rng = random.Random(seed)
    counts = Counts()
    first_write: list[float] = []

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
            with counts.lock:
                counts.requests += 1
                roll_throttle, roll_partial = rng.random(), rng.random()
                if operation == "BatchWriteItem" and not first_write:
                    first_write.append(time.monotonic())
            in_burst = bool(first_write) and time.monotonic() < first_write[0] + burst
            if roll_throttle < throttle or (in_burst and operation == "BatchWriteItem"):
                with counts.lock:
                    counts.throttled += 1
                return self._answer(400, THROTTLED)
            held_back: dict = {}
            if operation in ("BatchWriteItem", "BatchGetItem") and roll_partial < unprocessed:
                body, held_back = _split(operation, json.loads(body))
                if held_back:
                    with counts.lock:
                        counts.partial += 1
            status, answer = self._forward(body)
            if held_back and status == 200:
                reply = json.loads(answer)
                slot = "UnprocessedItems" if operation == "BatchWriteItem" else "UnprocessedKeys"
                reply[slot] = {**reply.get(slot, {}), **held_back}
                answer = json.dumps(reply).encode()
            self._answer(status, answer)

        def _forward(self, body: bytes) -> tuple[int, bytes]:
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "content-length"}
            headers["Content-Length"] = str(len(body))
            conn.request("POST", self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            conn.close()
            return response.status, data

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(body)))
            # botocore checks the body against this checksum, so it follows any rewrite.
            self.send_header("x-amz-crc32", str(zlib.crc32(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", counts
    finally:
        server.shutdown()
        server.server_close()


def _split(operation: str, request: dict) -> tuple[bytes, dict]:
    """Forward the first half of each table's items or keys; hold back the rest."""
    forwarded, held_back = {}, {}
    for table, entry in request["RequestItems"].items():
        if operation == "BatchWriteItem":
            half = (len(entry) + 1) // 2
            forwarded[table], rest = entry[:half], entry[half:]
            if rest:
                held_back[table] = rest
        else:
            keys = entry["Keys"]
            half = (len(keys) + 1) // 2
            forwarded[table] = {**entry, "Keys": keys[:half]}
            if keys[half:]:
                held_back[table] = {**entry, "Keys": keys[half:]}
    return json.dumps({**request, "RequestItems": forwarded}).encode(), held_back
