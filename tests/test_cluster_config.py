"""The cluster deployment's instance config (docs/cluster/dagster.yaml) is one Dagster accepts,
section by section, and it keeps every setting of the embedded instance."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._config import process_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config

from feature_assets.assets.runs import INSTANCE_CONFIG

CLUSTER = Path(__file__).resolve().parent.parent / "docs" / "cluster"
ENV = {
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "secret",
    "DAGSTER_PG_HOST": "postgres.feature-store.svc",
    "DAGSTER_PG_DB": "dagster",
    "FEATURE_STORE_IMAGE": "registry.example.com/feature-store:1",
}


def class_sections(config: Mapping[str, Any]) -> Iterator[tuple[str, str, str, Mapping]]:
    """(name, module, class, its config) of each pluggable part the instance names."""
    yield "storage", "dagster_postgres", "DagsterPostgresStorage", config["storage"]["postgres"]
    for name in ("run_launcher", "run_coordinator"):
        section = config[name]
        yield name, section["module"], section["class"], section.get("config") or {}


def problems(directory: Path) -> list[str]:
    """What Dagster refuses in the instance config of `directory`, section by section (the
    classes' own schemas, which loading the instance would check by starting them)."""
    try:
        config, _ = dagster_instance_config(str(directory))
    except DagsterInvalidConfigError as error:
        return [f"instance: {error}"]
    found = []
    for name, module, class_name, section in class_sections(config):
        try:
            klass = getattr(importlib.import_module(module), class_name)
        except (ImportError, AttributeError) as error:
            found.append(f"{name}: {module}.{class_name} cannot be loaded: {error}")
            continue
        result = process_config(klass.config_type(), section)
        if not result.success:
            found += [f"{name}: {error.message}" for error in result.errors]
    return found


def test_dagster_accepts_the_cluster_instance_config(monkeypatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert problems(CLUSTER) == []
    config, _ = dagster_instance_config(str(CLUSTER))
    assert config["run_launcher"]["class"] == "K8sRunLauncher"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("run_launcher", "config", "job_namespace"), 5, "job_namespace"),
        (("run_launcher", "config", "volumes"), "feature-store-data", "volumes"),
        (("run_launcher", "module"), "dagster.core.run_coordinator", "dagster.core"),
        (("storage", "postgres", "postgres_db", "port"), "five", "port"),
    ],
)
def test_a_wrong_value_in_the_cluster_config_is_refused(
    tmp_path, monkeypatch, path, value, expected
) -> None:
    for name, env_value in ENV.items():
        monkeypatch.setenv(name, env_value)
    config = yaml.safe_load((CLUSTER / "dagster.yaml").read_text())
    section = config
    for key in path[:-1]:
        section = section[key]
    section[path[-1]] = value
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    found = problems(tmp_path)
    assert found and any(expected in p for p in found), found


def test_an_unset_secret_is_refused(monkeypatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    assert any("DAGSTER_PG_PASSWORD" in p for p in problems(CLUSTER))


def leaves(config: Any, prefix: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    if isinstance(config, Mapping):
        for key, value in config.items():
            yield from leaves(value, (*prefix, key))
    else:
        yield prefix, config


def test_the_cluster_keeps_every_setting_of_the_embedded_instance() -> None:
    """Pools (one writer per table), run retries, run monitoring, freshness: what the
    embedded instance relies on holds on the cluster too."""
    cluster = yaml.safe_load((CLUSTER / "dagster.yaml").read_text())
    missing = []
    for path, value in leaves(yaml.safe_load(INSTANCE_CONFIG)):
        section = cluster
        for key in path:
            section = section.get(key) if isinstance(section, Mapping) else None
        if section != value:
            missing.append((".".join(path), value, section))
    assert missing == []
