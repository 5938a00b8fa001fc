"""Seeded demo data: raw card transactions landing as one Parquet file per day.

Each day is drawn from its own generator seeded by (seed, day), so a day's rows do not
depend on which range was asked for, and regenerating a day gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CURRENCIES = np.array(["USD", "EUR", "GBP"])
CURRENCY_SHARE = [0.7, 0.2, 0.1]
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class DemoDataSpec:
    users: int = 20_000
    merchants: int = 2_000
    transactions_per_day: int = 100_000
    seed: int = 7


def _user_profile(spec: DemoDataSpec) -> tuple[np.ndarray, np.ndarray]:
    """How active each user is and which currency they pay in; fixed for a seed."""
    rng = np.random.default_rng([spec.seed, 0])
    # Heavy-tailed activity: many quiet users, a few very active ones, some inactive for days.
    activity = rng.gamma(shape=0.6, scale=1.0, size=spec.users)
    currency = rng.choice(len(CURRENCIES), size=spec.users, p=CURRENCY_SHARE)
    return activity / activity.sum(), currency


def transactions_for_day(day: date, spec: DemoDataSpec) -> pa.Table:
    weights, user_currency = _user_profile(spec)
    rng = np.random.default_rng([spec.seed, day.toordinal()])
    n = spec.transactions_per_day
    user_index = rng.choice(spec.users, size=n, p=weights)
    seconds = np.sort(rng.integers(0, SECONDS_PER_DAY * 1_000_000, size=n))
    day_start = np.datetime64(day.isoformat(), "us")
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
            "transaction_timestamp": pa.array(day_start + seconds.astype("timedelta64[us]")),
        }
    )


def landing_path(landing_dir: Path, day: date) -> Path:
    return (
        landing_dir / "card_transactions" / f"transaction_date={day.isoformat()}" / "part-0.parquet"
    )


def write_day(landing_dir: Path, day: date, table: pa.Table) -> Path:
    """Land one day atomically: readers see the old file or the new one, never half of one."""
    path = landing_path(landing_dir, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def generate_landing_data(
    landing_dir: Path, start: date, end: date, spec: DemoDataSpec = DemoDataSpec()
) -> list[Path]:
    """Write one landing file per day in [start, end)."""
    return [
        write_day(
            landing_dir,
            start + timedelta(days=i),
            transactions_for_day(start + timedelta(days=i), spec),
        )
        for i in range((end - start).days)
    ]
