"""Small helpers for SQL built in Python: every identifier quoted, every literal escaped."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa

ARROW_TYPES = {
    "int": pa.int64(),
    "float": pa.float64(),
    "str": pa.string(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
}
DUCKDB_TYPES = {
    "int": "BIGINT",
    "float": "DOUBLE",
    "str": "VARCHAR",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
}


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sident(name: str) -> str:
    """A Spark SQL identifier (Spark reads double quotes as a string)."""
    return "`" + name.replace("`", "``") + "`"


def literal(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def column_list(names: Iterable[str], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{ident(name)}" for name in names)


def file_list(paths: Iterable[Path]) -> str:
    return "[" + ", ".join(literal(path) for path in paths) + "]"
