"""Online/offline parity: what a model is served online against what it was trained on.

A sample of a table's published entities is read twice "as of now", through the two real
read paths: `get_online_features` (DynamoDB, TTL applied at read time) and
`get_historical_features` with every entity row at `now` (the point-in-time join over the
published partitions and the push log). Each feature of each key must agree:

- both missing (null, not found or expired) agree;
- floats agree within `FLOAT_RELATIVE_TOLERANCE` (they round-trip as DynamoDB numbers),
  and an offline NaN agrees with an online null: the online layout stores NaN as null
  (an offline infinity, stored as null too, does not agree: a model sees another value);
- timestamps and dates are compared as values: online they are ISO strings;
- everything else must be equal, of the same type.

The online read serves an item whose event time is after `now`, where the join at `now`
uses the row before it (or nothing): such keys are reported as mismatches, as a model
served that value would disagree with its training set.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from feature_assets.kernel.contract import FeatureTable
from feature_assets.sdk import FeatureStore
from resources.sql import ARROW_TYPES, ident

# Doubles round-trip through DynamoDB's decimal numbers exactly (the item layout writes
# their repr); the tolerance only absorbs a server that normalizes the last digit.
FLOAT_RELATIVE_TOLERANCE = 1e-12
# Mismatches kept in a report, in key order of the sample; the counts cover all of them.
KEPT_MISMATCHES = 20
# The entity-time column of the training-set read.
ENTITY_TIME = "event_timestamp"


@dataclass(frozen=True)
class Mismatch:
    """One feature of one key whose online value is not the training-set value at `now`."""

    key: dict[str, Any]
    feature: str
    online: Any
    offline: Any
    online_status: str  # "present", "not_found" or "expired"

    def describe(self) -> str:
        return (
            f"{self.key} {self.feature}: online {self.online!r} ({self.online_status}), "
            f"offline {self.offline!r}"
        )


@dataclass(frozen=True)
class ParityReport:
    """The comparison of one table's sampled keys: counts over all, the first mismatches."""

    table: str
    now: datetime
    sampled: int
    mismatches_by_feature: dict[str, int]
    mismatched_keys: int
    mismatches: list[Mismatch] = field(default_factory=list)  # the first KEPT_MISMATCHES

    @property
    def mismatch_count(self) -> int:
        return sum(self.mismatches_by_feature.values())

    @property
    def passed(self) -> bool:
        return self.mismatch_count == 0

    def summary(self, shown: int = 3) -> str:
        """One sentence naming the table and, on failure, the first mismatching keys and features."""
        as_of = self.now.isoformat(timespec="seconds")
        if self.passed:
            return (
                f"feature table {self.table!r}: all {self.sampled} sampled keys are served online "
                f"as the training set has them at {as_of}"
            )
        features = sorted(f for f, n in self.mismatches_by_feature.items() if n)
        first = "; ".join(m.describe() for m in self.mismatches[:shown])
        more = self.mismatch_count - min(shown, len(self.mismatches))
        return (
            f"feature table {self.table!r}: {self.mismatched_keys} of {self.sampled} sampled keys "
            f"are served online differently from the training set at {as_of} "
            f"(features {features}): {first}" + (f"; and {more} more" if more > 0 else "")
        )


def check_parity(
    store: FeatureStore,
    table: FeatureTable,
    *,
    sample_size: int = 500,
    now: datetime | None = None,
    seed: int | None = None,
) -> ParityReport:
    """Compare up to `sample_size` of the table's published keys online and offline at `now`
    (default: the current time; a naive time is UTC, as entity times are). `seed` makes the
    sample repeatable."""
    now = _utc(now or datetime.now(UTC))
    keys = sample_keys(store, table, sample_size, seed)
    features = [f"{table.name}:{name}" for name in table.feature_names]
    counts: Counter[str] = Counter(dict.fromkeys(table.feature_names, 0))
    if keys.num_rows == 0:
        return ParityReport(table.name, now, 0, dict(counts), 0)
    entity_rows = keys.to_pylist()
    served = store.get_online_features(features, entity_rows, now=now)
    at_now = keys.append_column(
        ENTITY_TIME, pa.array([now] * keys.num_rows, pa.timestamp("us", tz="UTC"))
    )
    trained = store.get_historical_features(at_now, features).to_arrow().to_pylist()
    kept: list[Mismatch] = []
    mismatched_keys = 0
    for entity, online_row, status, offline_row in zip(
        entity_rows, served.rows, served.statuses, trained, strict=True
    ):
        differing = [
            feature
            for feature in table.features
            if not values_agree(
                feature.logical_type, online_row[feature.name], offline_row[feature.name]
            )
        ]
        mismatched_keys += bool(differing)
        for feature in differing:
            counts[feature.name] += 1
            if len(kept) < KEPT_MISMATCHES:
                kept.append(
                    Mismatch(
                        key=dict(entity),
                        feature=feature.name,
                        online=online_row[feature.name],
                        offline=offline_row[feature.name],
                        online_status=status[table.name],
                    )
                )
    return ParityReport(table.name, now, len(entity_rows), dict(counts), mismatched_keys, kept)


def sample_keys(
    store: FeatureStore, table: FeatureTable, sample_size: int, seed: int | None = None
) -> pa.Table:
    """Up to `sample_size` distinct keys with a published row, typed as the table's keys, in a
    random order that `seed` repeats (ordered by a seeded hash: one statement, no state)."""
    seed = random.randrange(2**31) if seed is None else seed
    keys = ", ".join(ident(key) for key in table.keys)
    sql = (
        f"SELECT {keys}\n"
        f"FROM (SELECT DISTINCT {keys} FROM {ident(table.name)})\n"
        f"ORDER BY hash({keys}, {int(seed)}), {keys}\n"
        f"LIMIT {int(sample_size)}"
    )
    sampled = store.offline.query(sql, [table])
    schema = pa.schema([(key, ARROW_TYPES[table.key_types[key]]) for key in table.keys])
    return sampled.select(list(table.keys)).cast(schema)


def values_agree(logical_type: str, online: Any, offline: Any) -> bool:
    """The comparison rule of the module docstring, for one feature value."""
    if logical_type == "float" and isinstance(offline, float) and math.isnan(offline):
        return online is None or (isinstance(online, float) and math.isnan(online))
    if online is None or offline is None:
        return online is None and offline is None
    online = _as_logical(logical_type, online)
    if logical_type == "float" and isinstance(online, float) and isinstance(offline, float):
        return math.isclose(online, offline, rel_tol=FLOAT_RELATIVE_TOLERANCE, abs_tol=0.0)
    return type(online) is type(offline) and online == offline


def _utc(moment: datetime) -> datetime:
    # Both reads get the same aware instant: the online read alone would take a naive time
    # as local time, where the join takes it as UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _as_logical(logical_type: str, online: Any) -> Any:
    """An online value as the training set types it (the online read returns timestamps and
    dates as the ISO strings they are stored as); a value that does not parse stays as is."""
    if not isinstance(online, str):
        return online
    try:
        if logical_type == "timestamp":
            return datetime.fromisoformat(online.removesuffix("Z"))
        if logical_type == "date":
            return date.fromisoformat(online)
    except ValueError:
        return online
    return online


def mismatch_records(mismatches: Sequence[Mismatch]) -> list[Mapping[str, str]]:
    """The kept mismatches as rows of text: key, feature, online, offline, online status."""
    return [
        {
            "key": ", ".join(f"{k}={v}" for k, v in m.key.items()),
            "feature": m.feature,
            "online": repr(m.online),
            "offline": repr(m.offline),
            "online_status": m.online_status,
        }
        for m in mismatches
    ]
