"""The dbt project as dagster-dbt sees it, on the manifest `resources.dbt_manifest` keeps fresh."""

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject
from dbt import version as dbt_version
from packaging import version

from resources.dbt_manifest import ensure_manifest


def feature_dbt_project(project_dir: Path) -> DbtProject:
    """The project with a manifest ready: parsed when missing or older than a model or YAML."""
    ensure_manifest(project_dir)
    project = DbtProject(project_dir=project_dir, profiles_dir=project_dir)
    project.prepare_if_dev()
    return project


class FeatureDbtCliResource(DbtCliResource):
    """dagster-dbt's dbt resource without two fixed costs of every dbt step (~3-4 s measured):
    it runs `dbt --version` in a subprocess to learn the version of the dbt it installed with
    itself, and opens a dbt adapter in the run's process that serves only
    `fetch_row_counts` / `fetch_column_metadata`, which no asset here calls. Both override
    private members of dagster-dbt 0.29 (pinned); tests/test_architecture.py checks they still
    exist."""

    @cached_property
    def _cli_version(self) -> version.Version:
        # The wrapper execs the dbt of this environment, whose version this is.
        return version.parse(dbt_version.__version__)

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:  # type: ignore[override]
        return None
