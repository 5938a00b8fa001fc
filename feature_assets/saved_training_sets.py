"""Saved training sets: the joined rows, the entity rows they came from, and a manifest of
which tables, features, partitions (with content digests) and options produced them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feature_assets.kernel.contract import FeatureRequest
from resources.offline_store import OfflineStore, partition_day

MANIFEST = "manifest.json"
# Per feature service, the saved training set its model was trained on: drift's reference.
REFERENCES = Path("_monitoring") / "references"
DATA = "data.parquet"
ENTITIES = "entities.parquet"


def describe_inputs(
    offline: OfflineStore,
    requests: list[FeatureRequest],
    first: datetime | None,
    last: datetime | None,
) -> dict[str, Any]:
    tables = {}
    for request in requests:
        files = offline.files_for_window(request.table, first, last)
        pushed = offline.pushed_files_for_window(request.table, first, last)
        digest = offline.storage.sha256
        partitions = {partition_day(uri).isoformat(): digest(uri) for uri in files}
        # A push in the window changes the rows as a republished day does.
        partitions |= {
            f"{partition_day(uri).isoformat()} push {uri.rsplit('/', 1)[1]}": digest(uri)
            for uri in pushed
        }
        tables[request.table.name] = {
            "features": list(request.features),
            "keys": list(request.table.keys),
            "ttl_seconds": request.table.ttl.total_seconds() if request.table.ttl else None,
            "partitions": partitions,
        }
    return tables


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))


def read_manifest(directory: Path) -> dict[str, Any]:
    return json.loads((directory / MANIFEST).read_text())


def new_manifest(
    features: list[str], options: dict[str, Any], rows: int, tables: dict[str, Any]
) -> dict[str, Any]:
    return {
        "created_at": datetime.now(UTC).isoformat(),
        "features": features,
        "options": options,
        "rows": rows,
        "entity_rows": ENTITIES,
        "data": DATA,
        "tables": tables,
    }


def changed_partitions(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    changes = []
    for table, entry in saved.items():
        now = current.get(table, {}).get("partitions", {})
        for day, sha in entry["partitions"].items():
            if now.get(day) != sha:
                changes.append(f"{table} {day}")
        changes += [f"{table} {day} (new)" for day in now if day not in entry["partitions"]]
    return changes


def record_reference(offline_root: str | Path, service: str, directory: Path) -> None:
    """Make a saved training set the reference that `service`'s served values are compared
    with (the latest one saved for the service, unless set again)."""
    path = Path(offline_root) / REFERENCES / f"{service}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"training_set": str(directory.resolve())}))
    tmp.replace(path)


def reference_for(offline_root: str | Path, service: str) -> Path | None:
    """The saved training set recorded for `service`, if any (and still there)."""
    path = Path(offline_root) / REFERENCES / f"{service}.json"
    if not path.exists():
        return None
    directory = Path(json.loads(path.read_text())["training_set"])
    return directory if (directory / DATA).exists() else None
