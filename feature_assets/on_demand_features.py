"""The demo's on-demand features: plain functions over NumPy arrays, one per input, declared
in `dbt_project/models/features/on_demand_features.yml` (inputs, outputs and their types).

Each runs over a whole training frame and over each online request, so it must be
vectorized: numbers arrive as float64 with NaN for null, dates as datetime64[D] with NaT.
"""

import numpy as np


def amount_in_usd(amount: np.ndarray, usd_rate: np.ndarray) -> dict[str, np.ndarray]:
    """The transaction being scored, in USD at the rate the caller quotes."""
    return {"amount_usd": amount * usd_rate}


def amount_anomaly(
    amount: np.ndarray, usd_rate: np.ndarray, mean_amount_7d: np.ndarray
) -> dict[str, np.ndarray]:
    """How many times the user's 7-day mean this transaction is; null without a mean."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mean_amount_7d > 0, amount * usd_rate / mean_amount_7d, np.nan)
    return {"amount_to_mean_ratio_7d": ratio}


def customer_tenure(customer_since: np.ndarray, request_date: np.ndarray) -> dict[str, np.ndarray]:
    """Whole days between the customer's first day and the request's day."""
    return {"tenure_days": (request_date - customer_since) / np.timedelta64(1, "D")}
