"""The online item layout built a column at a time equals the layout's per-row rules."""

import contextlib
import hashlib
import json
import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_assets.kernel.errors import EntityInputError
from resources.item_sync import digest
from resources.online_items import items_of
from resources.sql import ARROW_TYPES
from tests.builders import synthetic_table

FEATURE_TYPES = ("int", "float", "str", "bool", "timestamp", "date")


def reference_item(table, row: dict) -> dict:
    """The layout of one row, value by value (module docstring of `resources.online_items`),
    written independently of the column-wise code."""

    def iso(value: datetime) -> str:
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(timespec="microseconds") + "Z"

    def attribute(value):
        if value is None:
            return {"NULL": True}
        if isinstance(value, bool):
            return {"BOOL": value}
        if isinstance(value, int):
            return {"N": str(value)}
        if isinstance(value, float):
            return {"NULL": True} if math.isnan(value) or math.isinf(value) else {"N": repr(value)}
        if isinstance(value, datetime):
            return {"S": iso(value)}
        return {"S": str(value)}

    keys = [row[k] for k in table.keys]
    if len(keys) > 2:
        item = {"entity_key": {"S": "#".join(str(k) for k in keys)}}
        item.update({k: attribute(row[k]) for k in table.keys})
    else:
        item = {
            k: {"N": str(row[k])} if table.key_types[k] == "int" else {"S": row[k]}
            for k in table.keys
        }
    for feature in table.features:
        item[feature.name] = attribute(row.get(feature.name))
    event = row[table.timestamp]
    item["event_timestamp"] = {"S": iso(event)}
    if row.get(table.created_timestamp) is not None:
        item["created_timestamp"] = {"S": iso(row[table.created_timestamp])}
    if table.ttl is not None:
        # In UTC: a zoned time plus a TTL would move by wall clock across a DST change.
        aware = event.replace(tzinfo=UTC) if event.tzinfo is None else event.astimezone(UTC)
        item["expires_at"] = {"N": str(math.ceil((aware + table.ttl).timestamp()))}
    return item


times = st.datetimes(
    min_value=datetime(1960, 1, 1), max_value=datetime(2100, 1, 1)
) | st.sampled_from([datetime(2026, 3, 1), datetime(2026, 3, 1, 0, 0, 0, 1)])
VALUES = {
    "int": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e20, 100.0, -0.0, 0.1]),
    "str": st.text(max_size=8),
    "bool": st.booleans(),
    "timestamp": times,
    "date": st.dates(min_value=date(1970, 1, 1), max_value=date(2100, 1, 1)),
}


@st.composite
def tables_and_rows(draw):
    key_count = draw(st.integers(1, 3))
    keys = tuple(f"k{i}" for i in range(key_count))
    key_types = {k: draw(st.sampled_from(["int", "str"])) for k in keys}
    kinds = draw(st.lists(st.sampled_from(FEATURE_TYPES), min_size=1, max_size=4))
    features = {f"f{i}": kind for i, kind in enumerate(kinds)}
    ttl = draw(st.none() | st.sampled_from([timedelta(days=30), timedelta(seconds=1)]))
    table = synthetic_table(
        name="user_daily_items_7d",
        keys=keys,
        ttl=ttl,
        features=tuple(features),
        key_types=key_types,
        feature_types=features,
    )
    unit = draw(st.sampled_from(["s", "us", "ns"]))
    zone = draw(st.sampled_from([None, "UTC", "Europe/Paris"]))
    count = draw(st.integers(0, 6))
    key_values = {
        "int": st.integers(-(10**12), 10**12),
        "str": st.text(alphabet="ab#1é", min_size=1, max_size=4),
    }
    columns = {
        k: draw(st.lists(key_values[key_types[k]], min_size=count, max_size=count)) for k in keys
    }
    for name, kind in features.items():
        columns[name] = draw(st.lists(st.none() | VALUES[kind], min_size=count, max_size=count))
    whole_seconds = times.map(lambda t: t.replace(microsecond=0) if unit == "s" else t)
    columns["event_timestamp"] = draw(st.lists(whole_seconds, min_size=count, max_size=count))
    columns["created_at"] = draw(
        st.lists(st.none() | whole_seconds, min_size=count, max_size=count)
    )
    types = {k: ARROW_TYPES[key_types[k]] for k in keys}
    types |= {name: ARROW_TYPES[kind] for name, kind in features.items()}
    for name in ("event_timestamp", "created_at"):
        types[name] = pa.timestamp(unit, tz=zone)
    arrays = {name: pa.array(values, types[name]) for name, values in columns.items()}
    return table, pa.table(arrays)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables_and_rows())
def test_items_built_by_column_equal_the_per_row_layout(case) -> None:
    table, rows = case
    records = rows.to_pylist()
    if len(table.keys) > 2 and any("#" in str(r[k]) for r in records for k in table.keys):
        with pytest.raises(EntityInputError, match="contain '#'"):
            items_of(table, rows)
        return
    expected = [reference_item(table, r) for r in records]
    built = items_of(table, rows)
    assert built == expected
    # The digests the syncs compare agree too (a changed layout would rewrite every item).
    features = table.feature_names
    assert [digest(i, features) for i in built] == [digest(i, features) for i in expected]
    # Batches of a table convert alike.
    assert [i for b in rows.to_batches(max_chunksize=2) for i in items_of(table, b)] == expected


def reference_digest(item: dict, features) -> str:
    """The digest's definition, with the standard library's JSON encoder."""
    parts = []
    for feature in features:
        ((kind, value),) = (item.get(feature) or {"NULL": True}).items()
        if kind == "N":
            with contextlib.suppress(InvalidOperation):
                value = str(Decimal(value).normalize())
        parts.append([feature, kind, value])
    return hashlib.blake2b(json.dumps(parts).encode(), digest_size=16).hexdigest()


attributes = st.one_of(
    st.just({"NULL": True}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.text().map(lambda t: {"S": t}),
    st.integers(-(10**40), 10**40).map(lambda n: {"N": str(n)}),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: {"N": repr(f)}),
    st.sampled_from(["1e+20", "100000000000000000000", "-0", "0.10", "x"]).map(lambda n: {"N": n}),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=5), attributes, max_size=5), st.lists(st.text(max_size=5)))
def test_the_digest_is_its_json_definition(item, extra) -> None:
    features = [*item, *extra]  # a feature the item lacks digests as NULL
    assert digest(item, features) == reference_digest(item, features)
