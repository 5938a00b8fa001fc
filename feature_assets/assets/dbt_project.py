"""The dbt project as dagster-dbt sees it, on the manifest `resources.dbt_manifest` keeps fresh."""

from pathlib import Path

from dagster_dbt import DbtProject

from resources.dbt_manifest import ensure_manifest


def feature_dbt_project(project_dir: Path) -> DbtProject:
    """The project with a manifest ready: parsed when missing or older than a model or YAML."""
    ensure_manifest(project_dir)
    project = DbtProject(project_dir=project_dir, profiles_dir=project_dir)
    project.prepare_if_dev()
    return project
