"""The dbt project as Dagster sees it (kept alone so `dagster-dbt project prepare-and-package` can load it)."""

from __future__ import annotations

from pathlib import Path

from dagster_dbt import DbtProject


def feature_dbt_project(project_dir: Path) -> DbtProject:
    """The project with a manifest ready: built by `dbt parse` when missing, refreshed under `dagster dev`."""
    project = DbtProject(project_dir=project_dir, profiles_dir=project_dir)
    if not project.manifest_path.exists():
        project.preparer.prepare(project)
    project.prepare_if_dev()
    return project
