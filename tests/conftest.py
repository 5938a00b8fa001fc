"""Shared fixtures: a real DynamoDB-compatible server over loopback, the demo contract.

Any test that uses the server (directly or through another fixture) or Spark is marked
`integration`; `make test-unit` runs the rest.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from feature_assets.kernel.contract import FeatureTable
from resources.dbt_manifest import load_project_contract
from resources.local_dynamodb import LocalServer, start_server, stop_server
from resources.settings import PROJECT_ROOT
from tests.builders import free_port


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # A Spark session is a real process too (a JVM).
        if "online_server" in getattr(item, "fixturenames", ()) or item.get_closest_marker("spark"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def online_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One moto server for the session, started and stopped (by pid) like the embedded store."""
    home = tmp_path_factory.mktemp("online_server")
    server = start_server(home, free_port(), "moto")
    yield server
    stop_server(home)


@pytest.fixture(scope="session")
def demo_tables() -> dict[str, FeatureTable]:
    return dict(load_project_contract(PROJECT_ROOT / "dbt_project").tables)
