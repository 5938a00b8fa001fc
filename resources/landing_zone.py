"""The landing zone: raw Parquet files as upstream systems write them, read for the gate.

Layout: `<landing>/<source>/<landing_partition>=<day>/*.parquet` for a daily source, and
`<landing>/<source>/*.parquet` for a dimension replaced whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from feature_assets.kernel.contract import RawSource
from feature_assets.kernel.names import EMPTY_DAY_MARKER
from resources.settings import Settings
from resources.sql import file_list


@dataclass(frozen=True)
class LandedData:
    """The rows of one landing day (or a whole dimension) and the column types they landed with."""

    files: list[Path]
    types: dict[str, str]  # column -> DuckDB type, as the files declare it
    rows: pd.DataFrame


class LandingZone:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    def from_settings(cls, settings: Settings) -> LandingZone:
        return cls(settings.landing_dir)

    def folder(self, source: RawSource, day: date | None = None) -> Path:
        if day is None or source.landing_partition is None:
            return self.root / source.name
        return self.root / source.name / f"{source.landing_partition}={day.isoformat()}"

    def files(self, source: RawSource, day: date | None = None) -> list[Path]:
        return sorted(self.folder(source, day).glob("*.parquet"))

    def landed(self, source: RawSource, day: date) -> bool:
        """The day's folder exists (with files, or declared empty)."""
        return self.folder(source, day).is_dir()

    def marked_empty(self, source: RawSource, day: date) -> bool:
        return (self.folder(source, day) / EMPTY_DAY_MARKER).exists()

    def read(self, source: RawSource, day: date | None = None) -> LandedData:
        """Every file of the day (or of the dimension), as written: no hive column added."""
        files = self.files(source, day)
        if not files:
            return LandedData(files, {}, pd.DataFrame())
        relation = duckdb.connect().sql(
            f"SELECT * FROM read_parquet({file_list(files)}, union_by_name = true, hive_partitioning = false)"
        )
        return LandedData(
            files, dict(zip(relation.columns, map(str, relation.types), strict=True)), relation.df()
        )
