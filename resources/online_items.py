"""The online item layout: how a feature row becomes a DynamoDB item and back.

- Keys: one entity key is the hash key, two are hash + range. More than two are joined into
  one string hash key `entity_key` = the values joined with "#" in key order (for example
  "42#7#EUR"); the individual keys are kept as plain attributes too.
- Every feature is a native attribute: N (int, float), S, BOOL or NULL.
- `event_timestamp` and `created_timestamp` are ISO-8601 UTC strings ("...Z").
- `expires_at` (epoch seconds, rounded up) is the table's DynamoDB TTL attribute.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from feature_assets.kernel.contract import (
    CREATED_TIMESTAMP_ATTRIBUTE,
    EVENT_TIMESTAMP_ATTRIBUTE,
    EXPIRY_ATTRIBUTE,
    FeatureTable,
)
from feature_assets.kernel.errors import EntityInputError

COMPOSITE_KEY_ATTRIBUTE = "entity_key"
COMPOSITE_KEY_SEPARATOR = "#"
KEY_ATTRIBUTE_TYPES = {"int": "N", "str": "S"}
# DynamoDB numbers hold 38 significant digits; a longer key could never match an item.
DYNAMODB_MAX_INT = 10**38 - 1
DYNAMODB_MIN_INT = -DYNAMODB_MAX_INT


class OnlineStatus(StrEnum):
    PRESENT = "present"
    NOT_FOUND = "not_found"
    EXPIRED = "expired"


def uses_composite_key(table: FeatureTable) -> bool:
    """The one rule of the layout: more than two entity keys share one string hash key."""
    return len(table.keys) > 2


def key_names(table: FeatureTable) -> list[str]:
    """The attribute names of the item key."""
    return [COMPOSITE_KEY_ATTRIBUTE] if uses_composite_key(table) else list(table.keys)


def key_schema(table: FeatureTable) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(KeySchema, AttributeDefinitions) of the table's DynamoDB table."""
    if uses_composite_key(table):
        return (
            [{"AttributeName": COMPOSITE_KEY_ATTRIBUTE, "KeyType": "HASH"}],
            [{"AttributeName": COMPOSITE_KEY_ATTRIBUTE, "AttributeType": "S"}],
        )
    schema = [{"AttributeName": table.keys[0], "KeyType": "HASH"}]
    if len(table.keys) == 2:
        schema.append({"AttributeName": table.keys[1], "KeyType": "RANGE"})
    definitions = [
        {"AttributeName": key, "AttributeType": KEY_ATTRIBUTE_TYPES[table.key_types[key]]}
        for key in table.keys
    ]
    return schema, definitions


def typed_key(table: FeatureTable, entity: Mapping[str, Any]) -> tuple:
    """The entity's key values, checked against the table's key types."""
    if not isinstance(entity, Mapping):
        raise EntityInputError(
            f"feature table {table.name!r}: entity row {entity!r} is not an object of keys"
        )
    values = []
    for key in table.keys:
        if key not in entity:
            raise EntityInputError(
                f"feature table {table.name!r}: entity row {dict(entity)!r} has no key {key!r}"
            )
        value = entity[key]
        if table.key_types[key] == "int":
            if isinstance(value, bool) or not (
                isinstance(value, int) or (hasattr(value, "dtype") and value.dtype.kind in "iu")
            ):
                raise EntityInputError(
                    f"feature table {table.name!r}: key {key!r} must be an integer, got {value!r}"
                )
            value = int(value)
            if not DYNAMODB_MIN_INT <= value <= DYNAMODB_MAX_INT:
                raise EntityInputError(
                    f"feature table {table.name!r}: key {key!r} is outside DynamoDB's number "
                    "range (38 digits)"
                )
        elif not isinstance(value, str):
            raise EntityInputError(
                f"feature table {table.name!r}: key {key!r} must be a string, got {value!r}"
            )
        values.append(value)
    return tuple(values)


def key_attributes(table: FeatureTable, key: tuple) -> dict[str, dict[str, str]]:
    """The DynamoDB key (low-level client form) of an entity."""
    if uses_composite_key(table):
        return {COMPOSITE_KEY_ATTRIBUTE: {"S": composite_key(table, key)}}
    return {
        name: {"N": str(value)} if table.key_types[name] == "int" else {"S": value}
        for name, value in zip(table.keys, key, strict=True)
    }


def composite_key(table: FeatureTable, key: tuple) -> str:
    parts = [str(value) for value in key]
    if any(COMPOSITE_KEY_SEPARATOR in part for part in parts):
        raise EntityInputError(
            f"feature table {table.name!r}: key values {key!r} contain {COMPOSITE_KEY_SEPARATOR!r}, "
            "which separates the parts of the composite online key"
        )
    return COMPOSITE_KEY_SEPARATOR.join(parts)


def items_of(table: FeatureTable, rows: pa.Table | pa.RecordBatch) -> list[dict[str, Any]]:
    """Feature rows as DynamoDB items (low-level client form, native types), in row order.

    Built a column at a time (a sync converts every row it writes; per row, this was the
    largest part of a sync's own CPU): timestamps formatted by Arrow, the expiry from the event
    time's epoch microseconds, other values by the rules of `_attribute`."""
    columns: dict[str, list[Any]] = {}
    keys = [rows.column(k).to_pylist() for k in table.keys]
    if uses_composite_key(table):
        columns[COMPOSITE_KEY_ATTRIBUTE] = [
            {"S": composite_key(table, key)} for key in zip(*keys, strict=True)
        ]
        for name, values in zip(table.keys, keys, strict=True):
            columns[name] = [_attribute(v) for v in values]
    else:
        for name, values in zip(table.keys, keys, strict=True):
            kind = KEY_ATTRIBUTE_TYPES[table.key_types[name]]
            columns[name] = [{kind: str(v)} for v in values]
    for feature in table.features:
        if feature.name in rows.column_names:
            columns[feature.name] = _attributes(rows.column(feature.name))
        else:
            columns[feature.name] = [{"NULL": True}] * rows.num_rows
    event = rows.column(table.timestamp)
    columns[EVENT_TIMESTAMP_ATTRIBUTE] = [{"S": text} for text in _iso_texts(event)]
    if table.created_timestamp and table.created_timestamp in rows.column_names:
        columns[CREATED_TIMESTAMP_ATTRIBUTE] = [
            None if text is None else {"S": text}
            for text in _iso_texts(rows.column(table.created_timestamp))
        ]
    if table.ttl is not None:
        # Never before the logical expiry (rounded up): DynamoDB's deletion is only a clean-up.
        ttl_us = table.ttl // timedelta(microseconds=1)
        micros = _utc_micros(event).to_pylist()
        columns[EXPIRY_ATTRIBUTE] = [{"N": str(-((-m - ttl_us) // 1_000_000))} for m in micros]
    names = list(columns)
    items = [
        dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    # A row without a created time has no such attribute (not a NULL one).
    for item in items:
        if item.get(CREATED_TIMESTAMP_ATTRIBUTE, True) is None:
            del item[CREATED_TIMESTAMP_ATTRIBUTE]
    return items


def _attributes(column: pa.Array | pa.ChunkedArray) -> list[dict[str, Any] | None]:
    kind = column.type
    values = column.to_pylist()
    if pa.types.is_integer(kind):
        return [{"NULL": True} if v is None else {"N": str(v)} for v in values]
    if pa.types.is_floating(kind):
        return [
            {"NULL": True} if v is None or math.isnan(v) or math.isinf(v) else {"N": repr(v)}
            for v in values
        ]
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return [{"NULL": True} if v is None else {"S": v} for v in values]
    if pa.types.is_boolean(kind):
        return [{"NULL": True} if v is None else {"BOOL": v} for v in values]
    if pa.types.is_timestamp(kind):
        return [{"NULL": True} if t is None else {"S": t} for t in _iso_texts(column)]
    return [_attribute(v) for v in values]


def _utc_micros(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Epoch microseconds (UTC) of a timestamp column of any unit or time zone (a zoned
    timestamp holds UTC; nanoseconds are cut, as a Python datetime holds them)."""
    return column.cast(pa.timestamp("us"), safe=False).cast(pa.int64())


def _iso_texts(column: pa.Array | pa.ChunkedArray) -> list[str | None]:
    """`iso` of each value of a timestamp column (None for NULL)."""
    # Arrow's cast prints "YYYY-MM-DD HH:MM:SS.ffffff" (~20x faster than its strftime).
    texts = column.cast(pa.timestamp("us"), safe=False).cast(pa.string())
    texts = pc.replace_substring(texts, " ", "T", max_replacements=1)
    return pc.binary_join_element_wise(texts, "Z", "").to_pylist()


def _attribute(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return {"NULL": True}
        return {"N": repr(value)}  # repr round-trips: the online value equals the offline double
    if isinstance(value, datetime):
        return {"S": iso(value)}
    return {"S": str(value)}


def from_attribute(attribute: Mapping[str, Any], logical_type: str) -> Any:
    """A DynamoDB attribute as a plain Python value of the contract's type (never Decimal)."""
    ((kind, value),) = attribute.items()
    if kind == "NULL":
        return None
    if kind == "N":
        return int(value) if logical_type == "int" else float(value)
    return value


def iso(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


def status_at(table: FeatureTable, item: Mapping[str, Any] | None, now: datetime) -> OnlineStatus:
    """Same rule as the training-set join at entity time `now`: event_time >= now - ttl."""
    if item is None:
        return OnlineStatus.NOT_FOUND
    if table.ttl is None:
        return OnlineStatus.PRESENT
    event_time = datetime.fromisoformat(item[EVENT_TIMESTAMP_ATTRIBUTE]["S"].removesuffix("Z"))
    return OnlineStatus.EXPIRED if event_time < now - table.ttl else OnlineStatus.PRESENT


def newer_wins_condition(table: FeatureTable) -> str:
    """The condition of a write that must never go back in time, over the stored event time
    `#e` (then created time `#c`) and the written ones `:e` / `:c`: older or equal loses."""
    condition = "attribute_not_exists(#e) OR #e < :e"
    if table.created_timestamp:
        return condition + " OR (#e = :e AND (attribute_not_exists(#c) OR #c <= :c))"
    return condition + " OR #e = :e"
