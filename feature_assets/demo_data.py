"""Seeded demo data: the raw sources of the demo feature tables, landing as Parquet.

Daily sources land one file per day under `<landing>/<source>/<partition>=<day>/`; the
merchant dimension is one file. Each day is drawn from its own generator seeded by
(seed, source, day), so a day's rows do not depend on which range was asked for, and
regenerating a day gives the same bytes. Users of the card and customers of the bank
are the same people: `user_id` and `customer_id` share one id space.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CURRENCIES = np.array(["USD", "EUR", "GBP"])
CURRENCY_SHARE = [0.7, 0.2, 0.1]
MERCHANT_CATEGORIES = np.array(
    ["grocery", "travel", "dining", "fuel", "electronics", "fashion", "health", "gaming"]
)
EVENT_TYPES = np.array(["app_open", "page_view", "feature_use", "purchase", "support_contact"])
EVENT_TYPE_SHARE = [0.25, 0.45, 0.18, 0.08, 0.04]
SECONDS_PER_DAY = 86_400
MICROS_PER_DAY = SECONDS_PER_DAY * 1_000_000


@dataclass(frozen=True)
class DemoDataSpec:
    users: int = 20_000
    merchants: int = 2_000
    transactions_per_day: int = 100_000
    app_events_per_day: int = 60_000
    seed: int = 7


def _rng(spec: DemoDataSpec, stream: int, day: date | None = None) -> np.random.Generator:
    return np.random.default_rng([spec.seed, stream] + ([day.toordinal()] if day else []))


def _user_profile(spec: DemoDataSpec) -> tuple[np.ndarray, np.ndarray]:
    """How active each user is and which currency they pay in; fixed for a seed."""
    rng = _rng(spec, 0)
    # Heavy-tailed activity: many quiet users, a few very active ones, some inactive for days.
    activity = rng.gamma(shape=0.6, scale=1.0, size=spec.users)
    currency = rng.choice(len(CURRENCIES), size=spec.users, p=CURRENCY_SHARE)
    return activity / activity.sum(), currency


def _timestamps(rng: np.random.Generator, day: date, n: int) -> pa.Array:
    micros = np.sort(rng.integers(0, MICROS_PER_DAY, size=n))
    return pa.array(np.datetime64(day.isoformat(), "us") + micros.astype("timedelta64[us]"))


def merchants(spec: DemoDataSpec) -> pa.Table:
    rng = _rng(spec, 1)
    ids = np.arange(1, spec.merchants + 1)
    return pa.table(
        {
            "merchant_id": pa.array(ids, type=pa.int64()),
            "merchant_name": pa.array([f"merchant {i}" for i in ids]),
            "merchant_category": pa.array(
                MERCHANT_CATEGORIES[rng.integers(0, len(MERCHANT_CATEGORIES), spec.merchants)]
            ),
        }
    )


def transactions_for_day(day: date, spec: DemoDataSpec) -> pa.Table:
    weights, user_currency = _user_profile(spec)
    rng = np.random.default_rng([spec.seed, day.toordinal()])
    n = spec.transactions_per_day
    user_index = rng.choice(spec.users, size=n, p=weights)
    return pa.table(
        {
            # yyyymmdd followed by a 7-digit sequence number: unique and readable
            "transaction_id": pa.array(
                int(day.strftime("%Y%m%d")) * 10_000_000 + np.arange(n), type=pa.int64()
            ),
            "user_id": pa.array(user_index + 1, type=pa.int64()),
            "merchant_id": pa.array(rng.zipf(1.6, size=n) % spec.merchants + 1, type=pa.int64()),
            "amount": pa.array(np.round(rng.lognormal(3.2, 1.0, size=n), 2), type=pa.float64()),
            "currency": pa.array(CURRENCIES[user_currency[user_index]], type=pa.string()),
            "transaction_timestamp": _timestamps(rng, day, n),
        }
    )


def balances_for_day(day: date, spec: DemoDataSpec) -> pa.Table:
    """End-of-day balance of every account; about 1% of snapshots fail to arrive."""
    _, user_currency = _user_profile(spec)
    profile = _rng(spec, 2)
    owners = np.concatenate(
        [np.arange(spec.users), np.flatnonzero(profile.random(spec.users) < 0.3)]
    )
    base = profile.lognormal(7.0, 1.2, size=len(owners)) - 400  # some accounts hover near zero
    swing = profile.uniform(0.05, 0.6, size=len(owners)) * np.abs(base) + 50
    phase = profile.uniform(0, 30, size=len(owners))
    rng = _rng(spec, 3, day)
    # A monthly salary cycle plus daily noise; a function of the day, so no history is needed.
    cycle = np.sin(2 * np.pi * (day.toordinal() + phase) / 30)
    balance = base + swing * cycle + rng.normal(0, 25, size=len(owners))
    arrived = rng.random(len(owners)) >= 0.01
    return pa.table(
        {
            "account_id": pa.array(np.arange(1, len(owners) + 1)[arrived], type=pa.int64()),
            "customer_id": pa.array(owners[arrived] + 1, type=pa.int64()),
            "balance": pa.array(np.round(balance[arrived], 2), type=pa.float64()),
            "currency": pa.array(CURRENCIES[user_currency[owners[arrived]]], type=pa.string()),
            "snapshot_timestamp": pa.array(
                np.full(arrived.sum(), np.datetime64(day.isoformat(), "us"))
                + np.timedelta64(MICROS_PER_DAY - 1, "us")
            ),
        }
    )


def app_events_for_day(day: date, spec: DemoDataSpec) -> pa.Table:
    """App events; about 15% of customers stop using the app for good on a fixed day."""
    profile = _rng(spec, 4)
    weights = profile.gamma(shape=0.8, scale=1.0, size=spec.users)
    churn_day = np.where(
        profile.random(spec.users) < 0.15,
        date(2025, 1, 1).toordinal() + profile.integers(0, 730, spec.users),
        np.iinfo(np.int64).max,
    )
    weights = np.where(churn_day > day.toordinal(), weights, 0.0)
    rng = _rng(spec, 5, day)
    n = spec.app_events_per_day
    customer = rng.choice(spec.users, size=n, p=weights / weights.sum())
    session = rng.integers(0, 3, size=n)
    stamp = day.strftime("%Y%m%d")
    return pa.table(
        {
            "event_id": pa.array(int(stamp) * 10_000_000 + np.arange(n), type=pa.int64()),
            "customer_id": pa.array(customer + 1, type=pa.int64()),
            "session_id": pa.array(
                [f"{c + 1}-{stamp}-{s}" for c, s in zip(customer, session, strict=True)]
            ),
            "event_type": pa.array(
                EVENT_TYPES[rng.choice(len(EVENT_TYPES), n, p=EVENT_TYPE_SHARE)]
            ),
            "event_timestamp": _timestamps(rng, day, n),
        }
    )


# Daily raw source -> (hive partition column, generator of one day).
DAILY_SOURCES: dict[str, tuple[str, Callable[[date, DemoDataSpec], pa.Table]]] = {
    "card_transactions": ("transaction_date", transactions_for_day),
    "account_balances": ("snapshot_date", balances_for_day),
    "app_events": ("event_date", app_events_for_day),
}


def landing_path(landing_dir: Path, day: date, source: str = "card_transactions") -> Path:
    partition_column = DAILY_SOURCES[source][0]
    return landing_dir / source / f"{partition_column}={day.isoformat()}" / "part-0.parquet"


def _write_atomically(path: Path, table: pa.Table) -> Path:
    """Readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def write_day(
    landing_dir: Path, day: date, table: pa.Table, source: str = "card_transactions"
) -> Path:
    """Land one day of one daily source."""
    return _write_atomically(landing_path(landing_dir, day, source), table)


def generate_landing_data(
    landing_dir: Path, start: date, end: date, spec: DemoDataSpec = DemoDataSpec()
) -> list[Path]:
    """The merchant dimension, then one file per daily source and day in [start, end)."""
    paths = [_write_atomically(landing_dir / "merchants" / "merchants.parquet", merchants(spec))]
    for offset in range((end - start).days):
        day = start + timedelta(days=offset)
        for source, (_, generate) in DAILY_SOURCES.items():
            paths.append(write_day(landing_dir, day, generate(day, spec), source))
    return paths
