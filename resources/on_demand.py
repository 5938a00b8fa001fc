"""The one place on-demand functions run: Arrow columns in, Arrow columns out.

The training-set join and the online read both call `compute`, so a value served is the
value trained on: the same conversion of each input to NumPy, the same function, the same
checks and conversion of its outputs. Inputs arrive as NumPy arrays by logical type:

- numbers (int and float) as float64, a null as NaN;
- strings and booleans as object arrays, a null as None;
- timestamps as datetime64[us] (naive UTC), dates as datetime64[D], a null as NaT.

Outputs may be any array-like of the call's length; NaN and None become null, and each is
cast to its declared type without loss (3.0 -> 3 for an integer output, 3.5 fails).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from feature_assets.kernel.contract import OnDemandFeature
from feature_assets.kernel.errors import (
    EntityInputError,
    FeatureDefinitionError,
    OnDemandFunctionError,
)
from resources.sql import ARROW_TYPES

_functions: dict[str, Callable[..., Any]] = {}


def function_of(feature: OnDemandFeature) -> Callable[..., Any]:
    """The feature's Python function, imported once."""
    if feature.function not in _functions:
        module_name, _, attribute = feature.function.partition(":")
        where = f"on-demand feature {feature.name!r}, field 'function'"
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise FeatureDefinitionError(
                f"{where}: cannot import {module_name!r} ({error})"
            ) from None
        function = getattr(module, attribute, None)
        if not callable(function):
            raise FeatureDefinitionError(f"{where}: {feature.function!r} is not a function")
        _functions[feature.function] = function
    return _functions[feature.function]


def check_functions(features: Mapping[str, OnDemandFeature]) -> None:
    """Import every on-demand function (definitions load fails fast on a wrong path)."""
    for feature in features.values():
        function_of(feature)


def to_numpy(column: pa.Array | pa.ChunkedArray, logical_type: str) -> np.ndarray:
    """An Arrow column as the NumPy array an on-demand function receives."""
    if logical_type in ("int", "float"):
        column = column.cast(pa.float64())
    elif logical_type == "timestamp":
        column = column.cast(pa.timestamp("us"))
    return column.to_numpy(zero_copy_only=False)


def compute(
    feature: OnDemandFeature,
    inputs: Mapping[str, pa.Array | pa.ChunkedArray],
    length: int,
    describe_row: Callable[[int], str] = lambda i: f"entity row {i}",
) -> dict[str, pa.Array]:
    """Every output of `feature` over `length` rows, from one Arrow column per input.

    A function that raises, or returns a missing output, a wrong length or a value that is
    not of the declared type fails naming the function, the output and the entity row."""
    function = function_of(feature)
    arrays = {item.name: to_numpy(inputs[item.name], item.logical_type) for item in feature.inputs}
    try:
        returned = function(**arrays)
    except Exception as error:  # the user's code: find the first row it fails on
        row = _first_failing_row(function, arrays, length)
        at = f" at {describe_row(row)}" if row is not None else ""
        raise OnDemandFunctionError(
            f"on-demand feature {feature.name!r}: {feature.function} raised "
            f"{type(error).__name__}: {error}{at}"
        ) from error
    if not isinstance(returned, Mapping):
        raise OnDemandFunctionError(
            f"on-demand feature {feature.name!r}: {feature.function} returned "
            f"{type(returned).__name__}, not a mapping of {list(feature.feature_names)} to arrays"
        )
    return {
        output.name: _output(
            feature, output.name, output.logical_type, returned, length, describe_row
        )
        for output in feature.outputs
    }


def _output(
    feature: OnDemandFeature,
    name: str,
    logical_type: str,
    returned: Mapping[str, Any],
    length: int,
    describe_row: Callable[[int], str],
) -> pa.Array:
    where = f"on-demand feature {feature.name!r}, output {name!r} ({feature.function})"
    if name not in returned:
        raise OnDemandFunctionError(f"{where}: not returned (it returned {sorted(returned)})")
    values = returned[name]
    if np.ndim(values) != 1 or len(values) != length:
        shape = np.shape(values)
        raise OnDemandFunctionError(
            f"{where}: returned shape {shape} for {length} entity rows; one value per row needed"
        )
    try:
        return _as_arrow(values, logical_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError):
        row = next(
            (i for i in range(length) if not _converts(values[i : i + 1], logical_type)), None
        )
        shown = f": {values[row]!r} at {describe_row(row)}" if row is not None else ""
        raise OnDemandFunctionError(f"{where}: not a {logical_type}{shown}") from None


def _as_arrow(values: Any, logical_type: str) -> pa.Array:
    target = ARROW_TYPES[logical_type]
    array = pa.array(
        np.asarray(values) if not isinstance(values, pa.Array) else values, from_pandas=True
    )
    if pa.types.is_null(array.type) or array.type == target:
        return array.cast(target)
    if logical_type == "str" and not pa.types.is_string(array.type):
        raise ValueError("not strings")
    if logical_type == "bool" and not pa.types.is_boolean(array.type):
        raise ValueError("not booleans")
    if logical_type in ("int", "float") and not (
        pa.types.is_integer(array.type) or pa.types.is_floating(array.type)
    ):
        raise ValueError("not numbers")
    return array.cast(target, safe=True)


def _converts(values: Any, logical_type: str) -> bool:
    try:
        _as_arrow(values, logical_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError):
        return False
    return True


def _first_failing_row(
    function: Callable[..., Any], arrays: Mapping[str, np.ndarray], length: int
) -> int | None:
    """The first row on which the function alone raises (None if each row alone passes)."""
    for i in range(length):
        try:
            function(**{name: array[i : i + 1] for name, array in arrays.items()})
        except Exception:
            return i
    return None


def request_column(
    feature: OnDemandFeature, name: str, logical_type: str, values: Sequence[Any]
) -> pa.Array:
    """A request field's values from online entity rows, typed as declared (times may be ISO
    strings; zoned times are converted to UTC). A value of another type is a caller error
    naming the feature, the field and the entity row."""
    converted = []
    for i, value in enumerate(values):
        try:
            converted.append(_request_value(value, logical_type))
        except (TypeError, ValueError, OverflowError):
            raise EntityInputError(
                f"on-demand feature {feature.name!r}: request field {name!r} of entity row {i} "
                f"is {value!r}, not a {logical_type}"
            ) from None
    return pa.array(converted, type=ARROW_TYPES[logical_type])


def _request_value(value: Any, logical_type: str) -> Any:
    if value is None:
        return None
    if logical_type in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(value)
        if logical_type == "int" and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(value) if logical_type == "int" else float(value)
    if logical_type == "str" and isinstance(value, str):
        return value
    if logical_type == "bool" and isinstance(value, bool):
        return value
    if logical_type == "timestamp":
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        if not isinstance(moment, datetime):
            raise TypeError(value)
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return moment
    if logical_type == "date":
        day = date.fromisoformat(value) if isinstance(value, str) else value
        if not isinstance(day, date) or isinstance(day, datetime):
            raise TypeError(value)
        return day
    raise TypeError(value)


def request_column_from_frame(
    feature: OnDemandFeature, name: str, logical_type: str, column: pa.ChunkedArray
) -> pa.ChunkedArray:
    """A request field's entity-frame column, typed as declared: numbers to numbers, zoned
    times to naive UTC; any other type is a caller error naming the column."""
    kind = column.type
    fits = {
        "int": pa.types.is_integer(kind) or pa.types.is_floating(kind),
        "float": pa.types.is_integer(kind) or pa.types.is_floating(kind),
        "str": pa.types.is_string(kind) or pa.types.is_large_string(kind),
        "bool": pa.types.is_boolean(kind),
        "timestamp": pa.types.is_timestamp(kind),
        "date": pa.types.is_date(kind),
    }[logical_type] or pa.types.is_null(kind)
    if not fits:
        raise EntityInputError(
            f"on-demand feature {feature.name!r}: request field {name!r} is entity column "
            f"{name!r} of type {kind}, not a {logical_type}"
        )
    try:
        return column.cast(ARROW_TYPES[logical_type], safe=True)
    except pa.ArrowInvalid as error:
        raise EntityInputError(
            f"on-demand feature {feature.name!r}: entity column {name!r}: {error}"
        ) from None


def stored_column(values: Sequence[Any], logical_type: str) -> pa.Array:
    """A stored feature's values as the online store returns them (times as ISO strings),
    typed as the offline column is, so both paths hand the function the same array."""
    if logical_type == "timestamp":
        values = [
            datetime.fromisoformat(v.removesuffix("Z")) if isinstance(v, str) else v for v in values
        ]
    elif logical_type == "date":
        values = [date.fromisoformat(v) if isinstance(v, str) else v for v in values]
    return pa.array(values, type=ARROW_TYPES[logical_type])
