"""The embedded online store never adopts a foreign server, and its port is the endpoint's."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from dataclasses import replace

import pytest

from feature_assets.cli.commands import embedded_port
from feature_assets.kernel.errors import CallerError, LocalServerError
from resources.local_dynamodb import running_server, start_server, stop_server
from resources.settings import Settings
from tests.builders import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def foreign_server():
    """Something else answering HTTP on a port, as another developer's server would."""
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_busy_port_is_an_error_naming_it_not_a_server_to_adopt(tmp_path, foreign_server):
    with pytest.raises(LocalServerError, match=f"127.0.0.1:{foreign_server} is in use"):
        start_server(tmp_path, foreign_server, "moto")
    assert running_server(tmp_path) is None
    assert not (tmp_path / "online_store.pid").exists()


def test_the_cli_starts_the_store_on_the_endpoint_port_and_reports_it(tmp_path) -> None:
    port = free_port()
    env = {
        "FEATURE_STORE_HOME": str(tmp_path),
        "FEATURE_STORE_DYNAMODB_ENDPOINT": f"http://127.0.0.1:{port}",
        "PATH": "/usr/bin:/bin",
    }

    def cli(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "feature_assets.cli", "online-store", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)

    try:
        started = cli("start")
        assert started.returncode == 0, started.stderr
        assert f"127.0.0.1:{port}" in started.stdout
        status = cli("status")
        assert status.returncode == 0 and f"127.0.0.1:{port}" in status.stdout
        server = running_server(tmp_path)
        assert server is not None and server.port == port
    finally:
        stop_server(tmp_path)
    assert cli("status").returncode == 1


def test_an_endpoint_off_this_machine_has_no_embedded_store() -> None:
    settings = replace(Settings.from_env(), dynamodb_endpoint=None)
    with pytest.raises(CallerError, match="no embedded online store"):
        embedded_port(settings)
    remote = replace(settings, dynamodb_endpoint="https://dynamodb.eu-west-1.amazonaws.com")
    assert remote.local_port is None
    local = replace(settings, dynamodb_endpoint="http://localhost:9001")
    assert embedded_port(local) == 9001
