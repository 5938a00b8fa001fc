"""The landing zone: raw Parquet files as upstream systems write them, read for the gate.

Layout: `<landing>/<source>/<landing_partition>=<day>/*.parquet` for a daily source, and
`<landing>/<source>/*.parquet` for a dimension replaced whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from feature_assets.kernel.contract import RawSource
from feature_assets.kernel.names import EMPTY_DAY_MARKER
from resources.settings import Settings


@dataclass(frozen=True)
class LandedData:
    """The rows of one landing day (or a whole dimension) and the column types they landed with."""

    files: list[Path]
    types: dict[str, pa.DataType]  # column -> Arrow type, as the files declare it
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
        # pyarrow reads a day several times faster than a DuckDB scan converted to pandas.
        table = pa.concat_tables(
            [pq.read_table(path) for path in files], promote_options="permissive"
        )
        return LandedData(
            files, dict(zip(table.column_names, table.schema.types, strict=True)), table.to_pandas()
        )


def logical_type(arrow_type: pa.DataType) -> str | None:
    """The contract's logical type of a landed column; None when it has none (a zoned or
    nanosecond timestamp is not `timestamp`: the models read naive UTC microseconds)."""
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "str"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_date32(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type) and arrow_type.unit == "us" and arrow_type.tz is None:
        return "timestamp"
    return None
