"""Feature statistics of a published day, as Dagster metadata: over a table's days they form
its statistics view (the asset's plots)."""

from __future__ import annotations

import math

import pandas as pd

from feature_assets.kernel.contract import FeatureTable

NUMERIC = frozenset({"int", "float"})


def day_statistics(table: FeatureTable, rows: pd.DataFrame) -> dict[str, float | int]:
    """Rows, then per feature: null rate and distinct count, and min / max / mean when numeric.
    Keys read `<feature>.<statistic>`; an empty day has rows = 0 and nothing else."""
    stats: dict[str, float | int] = {"rows": len(rows)}
    if rows.empty:
        return stats
    for feature in table.features:
        values = rows[feature.name]
        stats[f"{feature.name}.null_rate"] = float(values.isna().mean())
        stats[f"{feature.name}.distinct"] = int(values.nunique(dropna=True))
        present = values.dropna()
        if feature.logical_type in NUMERIC and not present.empty:
            numbers = present.astype("float64")
            for name, value in (
                ("min", numbers.min()),
                ("max", numbers.max()),
                ("mean", numbers.mean()),
            ):
                if math.isfinite(value):
                    stats[f"{feature.name}.{name}"] = float(value)
    return stats
