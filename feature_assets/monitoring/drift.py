"""Drift of served feature values against a reference: null rate, PSI and KL per feature.

Both sides are binned the same way, from the reference alone, so that a number means the
same thing every day:

- numeric (numeric and bool dtypes): when the reference has at most `bins` distinct
  non-null values (counts 0..5, flags), one bin per value plus an "other" bin for served
  values the reference never had; otherwise edges at the reference's quantiles (finite
  non-null values, duplicate edges merged), bins closed on the right, and the outer bins
  open to -inf and +inf so a served value outside the reference's range still lands in a
  bin (the first or the last) instead of being dropped;
- categorical: one bin per value over the union of both sides' values. PSI and KL use every
  value; the shares kept for display are capped at the `MAX_CATEGORIES` largest reference
  values plus one bin for the rest.

PSI = sum((c - r) * ln(c / r)) and KL = KL(served || reference) = sum(c * ln(c / r)), over
the shares r (reference) and c (served) of non-null values per bin. KL runs from the served
side because the question asked daily is "how surprising is today's traffic under what the
model was trained on"; PSI is symmetric. A bin empty on one side would make both infinite:
its share is raised to `EPSILON` and the shares renormalized to sum to 1, which keeps both
finite and non-negative and caps one bin's contribution (a served value the reference never
had at 10% of traffic adds about 0.7 to PSI: still far over threshold).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from feature_assets.kernel.errors import MonitoringInputError

Kind = Literal["numeric", "categorical"]
KINDS: tuple[Kind, ...] = ("numeric", "categorical")

# A share of zero becomes 0.01%: small against any share a person would notice, large
# enough that a single empty bin cannot dominate the sum.
EPSILON = 1e-4
# More bars than this are unreadable in a chart; the remaining values still count in PSI/KL.
MAX_CATEGORIES = 20
OTHER = "other"


@dataclass(frozen=True)
class Thresholds:
    """When a feature warns.

    `null_rate` is in points above the reference's own null rate, not an absolute rate: a
    feature that is null by design (say 40% of users have no balance) would otherwise warn
    every day. With a reference null rate of 0 it is exactly "served null rate above 5%".
    `psi` and `kl` warn when strictly exceeded.
    """

    null_rate: float = 0.05
    psi: float = 0.2
    kl: float = 0.1
    # PSI and KL of a few rows are mostly sampling noise (20 served rows in 10 bins give a
    # PSI near 0.45 with no drift at all): below this many served values neither warns.
    min_rows: int = 100


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's served values against its reference.

    `count` and `reference_count` are rows, nulls included. `psi` and `kl` are None when
    either side has no non-null value. `bins` label the bins; `reference_shares` and
    `current_shares` are the shares of non-null values per bin, in the same order.
    """

    feature: str
    kind: Kind
    count: int
    reference_count: int
    null_rate: float
    reference_null_rate: float
    psi: float | None
    kl: float | None
    bins: tuple[str, ...]
    reference_shares: tuple[float, ...]
    current_shares: tuple[float, ...]

    @property
    def null_rate_increase(self) -> float:
        """Served null rate minus the reference's, in points (0.07 = 7 points)."""
        return self.null_rate - self.reference_null_rate

    def over_threshold(self, thresholds: Thresholds) -> frozenset[str]:
        """Which of "null_rate", "psi" and "kl" are over their threshold."""
        over = set()
        if self.count and self.null_rate_increase > thresholds.null_rate:
            over.add("null_rate")
        enough = self.count * (1 - self.null_rate) >= thresholds.min_rows
        if enough and self.psi is not None and self.psi > thresholds.psi:
            over.add("psi")
        if enough and self.kl is not None and self.kl > thresholds.kl:
            over.add("kl")
        return frozenset(over)

    def alerts(self, thresholds: Thresholds) -> list[str]:
        """One sentence per threshold crossed, e.g. "PSI 0.312 > 0.2"; empty when fine."""
        over = self.over_threshold(thresholds)
        messages = []
        if "null_rate" in over:
            messages.append(
                f"null rate {self.null_rate:.1%} (reference {self.reference_null_rate:.1%}): "
                f"+{self.null_rate_increase * 100:.1f} points > {thresholds.null_rate * 100:g}"
            )
        if "psi" in over:
            messages.append(f"PSI {self.psi:.3f} > {thresholds.psi:g}")
        if "kl" in over:
            messages.append(f"KL {self.kl:.3f} > {thresholds.kl:g}")
        return messages


def compare(
    reference: Mapping[str, pd.Series],
    current: Mapping[str, pd.Series],
    *,
    kinds: Mapping[str, str] | None = None,
    bins: int = 10,
) -> list[FeatureDrift]:
    """Drift of each feature in `reference` (in its order) between reference and served values.

    `reference` and `current` map feature names to values (DataFrames work too). A feature
    absent from `current` is compared with no served rows (count 0, PSI and KL None);
    features only in `current` are ignored. A feature's kind comes from `kinds`, else from
    its dtype: numeric and bool dtypes are numeric, anything else categorical.
    """
    if bins < 1:
        raise MonitoringInputError(f"bins must be at least 1, got {bins}")
    kinds = kinds or {}
    results = []
    for feature in reference:
        ref = _as_series(reference[feature])
        cur = _as_series(current[feature]) if feature in current else ref.iloc[:0]
        kind = kinds.get(feature) or _kind_of(ref if len(ref) else cur)
        if kind not in KINDS:
            raise MonitoringInputError(
                f"feature {feature!r}: kind {kind!r} is not one of {', '.join(KINDS)}"
            )
        if kind == "numeric":
            labels, ref_counts, cur_counts = _numeric_bins(feature, ref, cur, bins)
        else:
            labels, ref_counts, cur_counts = _categorical_bins(ref, cur)
        psi, kl = psi_and_kl(ref_counts, cur_counts)
        if kind == "categorical" and len(labels) > MAX_CATEGORIES + 1:
            labels, ref_counts, cur_counts = _cap(labels, ref_counts, cur_counts)
        results.append(
            FeatureDrift(
                feature=feature,
                kind=kind,
                count=len(cur),
                reference_count=len(ref),
                null_rate=_null_rate(cur),
                reference_null_rate=_null_rate(ref),
                psi=psi,
                kl=kl,
                bins=tuple(labels),
                reference_shares=_shares(ref_counts),
                current_shares=_shares(cur_counts),
            )
        )
    return results


def psi_and_kl(
    reference_counts: np.ndarray, current_counts: np.ndarray
) -> tuple[float | None, float | None]:
    """(PSI, KL(served || reference)) of two count vectors over the same bins; (None, None)
    when either side is empty. Zero shares are raised to `EPSILON`, then renormalized."""
    r = np.asarray(reference_counts, dtype="float64")
    c = np.asarray(current_counts, dtype="float64")
    if r.sum() == 0 or c.sum() == 0:
        return None, None
    r = _smoothed(r)
    c = _smoothed(c)
    ratio = np.log(c / r)
    return float(np.sum((c - r) * ratio)), float(np.sum(c * ratio))


def _smoothed(counts: np.ndarray) -> np.ndarray:
    shares = np.maximum(counts / counts.sum(), EPSILON)
    return shares / shares.sum()


def _shares(counts: np.ndarray) -> tuple[float, ...]:
    total = counts.sum()
    if total == 0:
        return tuple(0.0 for _ in counts)
    return tuple(float(v) for v in counts / total)


def _as_series(values: object) -> pd.Series:
    return values if isinstance(values, pd.Series) else pd.Series(values)


def _kind_of(series: pd.Series) -> Kind:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    return "categorical"


def _null_rate(series: pd.Series) -> float:
    return float(series.isna().sum() / len(series)) if len(series) else 0.0


def _non_null_floats(feature: str, series: pd.Series) -> np.ndarray:
    try:
        values = series.to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError) as error:
        raise MonitoringInputError(
            f"feature {feature!r} is compared as numeric but holds {series.dtype} values that "
            f"are not numbers ({error}); declare it categorical in `kinds`"
        ) from error
    return values[~np.isnan(values)]


def _numeric_bins(
    feature: str, reference: pd.Series, current: pd.Series, bins: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    ref = _non_null_floats(feature, reference)
    cur = _non_null_floats(feature, current)
    # Bins come from the reference; a served side with no reference is binned on its own
    # values only so the chart shows something (PSI and KL are None then anyway).
    basis = ref if len(ref) else cur
    if not len(basis):
        return [], np.zeros(0, dtype="int64"), np.zeros(0, dtype="int64")
    distinct = np.unique(basis)
    if len(distinct) <= bins:
        return _by_value(distinct, ref, cur, is_bool=pd.api.types.is_bool_dtype(reference.dtype))
    finite = basis[np.isfinite(basis)]
    probabilities = np.linspace(0, 1, bins + 1)[1:-1]
    edges = np.unique(np.quantile(finite, probabilities)) if len(finite) else np.zeros(0)
    # side="left" puts x in bin i when edges[i-1] < x <= edges[i]: right-closed bins, so a
    # value repeated across several quantiles (a point mass, say 0) owns its bin.
    ref_counts = np.bincount(np.searchsorted(edges, ref), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur), minlength=len(edges) + 1)
    return _interval_labels(edges), ref_counts, cur_counts


def _by_value(
    distinct: np.ndarray, ref: np.ndarray, cur: np.ndarray, *, is_bool: bool
) -> tuple[list[str], np.ndarray, np.ndarray]:
    def counts(values: np.ndarray) -> np.ndarray:
        position = np.minimum(np.searchsorted(distinct, values), len(distinct) - 1)
        exact = distinct[position] == values
        return np.bincount(np.where(exact, position, len(distinct)), minlength=len(distinct) + 1)

    if is_bool:
        labels = ["True" if v else "False" for v in distinct]
    else:
        labels = [format(float(v), ".6g") for v in distinct]
    ref_counts, cur_counts = counts(ref), counts(cur)
    if ref_counts[-1] == 0 and cur_counts[-1] == 0:
        return labels, ref_counts[:-1], cur_counts[:-1]
    return [*labels, OTHER], ref_counts, cur_counts


def _interval_labels(edges: np.ndarray) -> list[str]:
    # The fewest significant digits (at least 3) that still tell every edge apart.
    for digits in range(3, 18):
        text = [format(float(e), f".{digits}g") for e in edges]
        if len(set(text)) == len(text):
            break
    if not text:
        return ["all"]
    middle = [f"({low}, {high}]" for low, high in zip(text, text[1:], strict=False)]
    return [f"≤ {text[0]}", *middle, f"> {text[-1]}"]


def _categorical_bins(
    reference: pd.Series, current: pd.Series
) -> tuple[list[str], np.ndarray, np.ndarray]:
    ref = _value_counts(reference)
    cur = _value_counts(current)
    values = ref.index.union(cur.index, sort=False)
    ref_counts = ref.reindex(values, fill_value=0).to_numpy(dtype="int64")
    cur_counts = cur.reindex(values, fill_value=0).to_numpy(dtype="int64")
    labels = np.array([_category_label(v) for v in values], dtype=str)
    # Largest reference share first, then values new in served by their served share; ties
    # by label, so the same data always draws the same chart.
    served_only = np.where(ref_counts > 0, 0, -cur_counts)
    order = np.lexsort((labels, served_only, -ref_counts))
    return labels[order].tolist(), ref_counts[order], cur_counts[order]


def _value_counts(series: pd.Series) -> pd.Series:
    counts = series.value_counts(dropna=True, sort=False)
    # A categorical dtype lists its unused categories with count 0, and its index does not
    # union with plain values.
    counts = counts[counts > 0]
    if isinstance(counts.index, pd.CategoricalIndex):
        counts.index = counts.index.astype(object)
    return counts


def _category_label(value: object) -> str:
    text = str(value)
    return text if text else "(empty)"


def _cap(
    labels: list[str], ref_counts: np.ndarray, cur_counts: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray]:
    rest = len(labels) - MAX_CATEGORIES
    return (
        [*labels[:MAX_CATEGORIES], f"{rest} other values"],
        np.append(ref_counts[:MAX_CATEGORIES], ref_counts[MAX_CATEGORIES:].sum()),
        np.append(cur_counts[:MAX_CATEGORIES], cur_counts[MAX_CATEGORIES:].sum()),
    )
