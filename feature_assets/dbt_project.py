"""The dbt project as Dagster sees it (alone, so `dagster-dbt project prepare-and-package` can load it)."""

from __future__ import annotations

import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

# What a manifest is built from; an edit to any of them makes it stale.
PROJECT_SOURCES = ("dbt_project.yml", "models", "macros")


def dbt_executable() -> str:
    """dbt from this interpreter's environment, so an unactivated virtualenv works too."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else "dbt"


def manifest_is_stale(project_dir: Path, manifest_path: Path) -> bool:
    if not manifest_path.exists():
        return True
    built = manifest_path.stat().st_mtime
    for name in PROJECT_SOURCES:
        path = project_dir / name
        files = [path] if path.is_file() else path.rglob("*")
        if any(f.is_file() and f.stat().st_mtime > built for f in files):
            return True
    return False


def feature_dbt_project(project_dir: Path) -> DbtProject:
    """The project with a manifest ready: parsed when missing or older than a model or YAML."""
    project = DbtProject(project_dir=project_dir, profiles_dir=project_dir)
    if manifest_is_stale(Path(project_dir), project.manifest_path):
        dbt = DbtCliResource(project_dir=project, dbt_executable=dbt_executable())
        dbt.cli(["parse", "--quiet"], target_path=project.target_path).wait()
    project.prepare_if_dev()
    return project
