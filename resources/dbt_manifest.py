"""The dbt project's manifest: built when stale, read once into the contract.

Plain `dbt` subprocesses, so the SDK and the CLI reach the contract without importing
Dagster; the Dagster wiring builds its `DbtProject` on the same manifest.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml
from filelock import FileLock

from feature_assets.kernel.contract import Contract
from feature_assets.kernel.errors import FeatureDefinitionError
from feature_assets.kernel.manifest import load_contract
from resources.dbt_child import dbt_executable
from resources.on_demand import check_functions

# What a manifest is built from; an edit to any of them makes it stale.
PROJECT_SOURCES = ("dbt_project.yml", "models", "macros")
TARGET = "target"
# dbt's saved parse, written by `dbt parse` beside the manifest; runs start from it.
PARTIAL_PARSE_FILE = "partial_parse.msgpack"


def manifest_path(project_dir: Path) -> Path:
    return Path(project_dir) / TARGET / "manifest.json"


def manifest_is_stale(project_dir: Path) -> bool:
    path = manifest_path(project_dir)
    if not path.exists():
        return True
    built = path.stat().st_mtime
    for name in PROJECT_SOURCES:
        source = Path(project_dir) / name
        files = [source] if source.is_file() else source.rglob("*")
        if any(f.is_file() and f.stat().st_mtime > built for f in files):
            return True
    return False


def run_dbt(project_dir: Path, args: list[str], target_path: Path | None = None) -> None:
    """Run one dbt command in the project; its log goes to the error when it fails."""
    command = [dbt_executable(), *args, "--project-dir", str(project_dir)]
    command += ["--profiles-dir", str(project_dir)]
    if target_path is not None:
        command += ["--target-path", str(target_path)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=project_dir)
    if done.returncode != 0:
        raise FeatureDefinitionError(
            f"dbt project {project_dir}: `dbt {' '.join(args)}` failed:\n"
            f"{(done.stdout + done.stderr).strip()[-4000:]}"
        )


def parse_lock(project_dir: Path) -> FileLock:
    """One process parses (or reads what a parse writes) at a time: two `dbt parse` writing
    target/manifest.json at once left it corrupt (two test workers in a fresh clone)."""
    target = Path(project_dir) / TARGET
    target.mkdir(parents=True, exist_ok=True)
    return FileLock(target / ".parse.lock")


def ensure_manifest(project_dir: Path) -> Path:
    """The manifest, parsed first when missing or older than a model, macro or YAML."""
    with parse_lock(project_dir):
        if manifest_is_stale(project_dir):
            run_dbt(project_dir, ["parse", "--quiet"])
    return manifest_path(project_dir)


def read_manifest(project_dir: Path) -> dict:
    path = ensure_manifest(project_dir)
    with parse_lock(project_dir):
        return json.loads(path.read_text())


def load_project_contract(project_dir: Path) -> Contract:
    """Tables, services and sources of the dbt project, every load-time rule applied."""
    check_duplicate_columns(project_dir)
    contract = load_contract(read_manifest(project_dir))
    check_functions(contract.on_demand)
    return contract


def check_duplicate_columns(project_dir: Path) -> None:
    """A column declared twice in a YAML file: dbt keeps the last entry silently, so the type
    or checks a reader sees first may not be the ones that apply. Refuse it by name."""
    for path in sorted((Path(project_dir) / "models").rglob("*.yml")):
        document = yaml.safe_load(path.read_text()) or {}
        where = path.relative_to(project_dir)
        for model in document.get("models") or []:
            is_table = "feature_table" in ((model.get("config") or {}).get("meta") or {})
            kind = "feature table" if is_table else "model"
            _refuse_duplicates(f"{kind} {model.get('name')!r} ({where})", model)
        for source in document.get("sources") or []:
            for table in source.get("tables") or []:
                name = f"{source.get('name')}.{table.get('name')}"
                _refuse_duplicates(f"raw source {name!r} ({where})", table)


def _refuse_duplicates(what: str, node: dict) -> None:
    names = [column.get("name") for column in node.get("columns") or []]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise FeatureDefinitionError(
            f"{what}, field 'columns': {', '.join(map(repr, repeated))} declared more than once"
        )
