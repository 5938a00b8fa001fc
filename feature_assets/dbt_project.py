"""The dbt project as Dagster sees it (alone, so `dagster-dbt project prepare-and-package` can load it)."""

from __future__ import annotations

import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject


def dbt_executable() -> str:
    """dbt from this interpreter's environment, so an unactivated virtualenv works too."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else "dbt"


def feature_dbt_project(project_dir: Path) -> DbtProject:
    """The project with a manifest ready: parsed when missing, refreshed under `dagster dev`."""
    project = DbtProject(project_dir=project_dir, profiles_dir=project_dir)
    if not project.manifest_path.exists():
        dbt = DbtCliResource(project_dir=project, dbt_executable=dbt_executable())
        dbt.cli(["parse", "--quiet"], target_path=project.target_path).wait()
    project.prepare_if_dev()
    return project
