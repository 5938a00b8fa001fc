"""The house's layers hold: kernel at the bottom, no upward imports, no private Dagster API,
and importing the SDK builds no Dagster wiring."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from functools import cached_property
from pathlib import Path

from resources.settings import PROJECT_ROOT

PACKAGES = ("feature_assets", "resources", "sensors")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
    )


def test_the_layer_contracts_are_kept() -> None:
    done = lint_imports(PROJECT_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


def test_an_upward_import_from_the_kernel_breaks_the_build(tmp_path) -> None:
    for package in PACKAGES:
        shutil.copytree(
            PROJECT_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path)
    errors = tmp_path / "feature_assets" / "kernel" / "errors.py"
    errors.write_text(errors.read_text() + "\nimport feature_assets.definitions  # noqa\n")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        # The copy, not the installed project, is what gets analysed.
        env={"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)},
    )
    assert done.returncode != 0, done.stdout
    assert "BROKEN" in done.stdout
    assert "feature_assets.kernel.errors -> feature_assets.definitions" in done.stdout


def test_importing_the_sdk_builds_no_definitions_and_imports_no_dagster() -> None:
    probe = (
        "import sys, feature_assets.sdk\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('dagster', 'dagster_dbt', 'pandera') or m == 'feature_assets.definitions'))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# Private names we use knowingly, each because Dagster exports no public one:
# a per-day check evaluation must name the materialization it judges, or Dagster's partition
# views drop its outcome (publish_check.py).
KNOWN_PRIVATE = ("asset_check_evaluation import (  # no public name",)


def test_no_private_dagster_api_outside_tests() -> None:
    private = re.compile(r"\bdagster\._")
    offenders = [
        f"{path.relative_to(PROJECT_ROOT)}:{number}"
        for package in (*PACKAGES, "benchmarks")
        for path in (PROJECT_ROOT / package).rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if private.search(line) and not line.endswith(KNOWN_PRIVATE)
    ]
    assert offenders == []


def test_the_dbt_resource_skips_dbt_version_and_the_unused_adapter(monkeypatch) -> None:
    import dagster_dbt.core.resource as dagster_dbt_resource
    from dagster_dbt import DbtCliResource

    from feature_assets.assets.dbt_project import FeatureDbtCliResource

    # The members overridden must still exist upstream, or the overrides do nothing.
    assert isinstance(vars(DbtCliResource).get("_cli_version"), cached_property)
    assert callable(vars(DbtCliResource).get("_initialize_dbt_core_adapter"))

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"dbt started a subprocess: {args}")

    monkeypatch.setattr(dagster_dbt_resource, "check_output", no_subprocess)
    from resources.dbt_child import run_dbt_executable

    resource = FeatureDbtCliResource(
        project_dir=str(PROJECT_ROOT / "dbt_project"), dbt_executable=run_dbt_executable()
    )
    import dbt.version

    assert str(resource._cli_version) == dbt.version.__version__
    assert resource._initialize_dbt_core_adapter(["build"]) is None
