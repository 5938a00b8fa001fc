"""Drift computation (`compare`) on a day of logged rows, next to a counting floor.

    .venv/bin/python -m benchmarks.drift [--rows 1000000] [--reference-rows 1000000] [--repeats 5]

Five features (two floats, one of them 2% null; an integer count; a bool; a categorical of
12 values), a reference and a served day drawn from slightly different distributions, all in
memory. The project's figure is one `compare` call over all five, everything included: null
counts, quantile edges from the reference, binning both sides, PSI and KL. The floor is the
least work that gives the same shares once the edges are known: per side, `np.isnan` +
`np.searchsorted` + `np.bincount` on the numeric columns with edges precomputed (outside the
timing), `np.bincount` on the bool, pandas `value_counts` on the categorical. Runs
alternate project and floor; prints median, p99 (nearest rank) and the ratio of medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from feature_assets.monitoring.drift import compare

BINS = 10
SEGMENTS = [f"segment_{i:02d}" for i in range(12)]


def day(rows: int, seed: int, shift: float) -> dict[str, pd.Series]:
    rng = np.random.default_rng(seed)
    amount = rng.normal(50.0 + shift, 10.0, rows)
    amount[rng.random(rows) < 0.02] = np.nan
    weights = np.linspace(2.0, 1.0 + shift, len(SEGMENTS))
    return {
        "amount": pd.Series(amount),
        "spend_ratio": pd.Series(rng.lognormal(shift / 10, 1.0, rows)),
        "transactions_7d": pd.Series(rng.poisson(3.0 + shift / 10, rows)),
        "is_premium": pd.Series(rng.random(rows) < 0.3 + shift / 100),
        "segment": pd.Series(rng.choice(SEGMENTS, rows, p=weights / weights.sum())),
    }


def reference_edges(values: pd.Series) -> np.ndarray:
    finite = values.to_numpy(dtype="float64", na_value=np.nan)
    finite = finite[np.isfinite(finite)]
    return np.unique(np.quantile(finite, np.linspace(0, 1, BINS + 1)[1:-1]))


def floor(
    reference: dict[str, pd.Series], served: dict[str, pd.Series], edges: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Per feature and side, the counts per bin, given the edges."""
    counts = {}
    for feature in reference:
        for side, frame in (("reference", reference), ("served", served)):
            series = frame[feature]
            if feature in edges:
                values = series.to_numpy(dtype="float64")
                values = values[~np.isnan(values)]
                found = np.bincount(
                    np.searchsorted(edges[feature], values), minlength=len(edges[feature]) + 1
                )
            elif series.dtype == bool:
                found = np.bincount(series.to_numpy(), minlength=2)
            else:
                found = series.value_counts().to_numpy()
            counts[f"{feature}/{side}"] = found
    return counts


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * len(ordered) + 0.5) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="served rows")
    parser.add_argument("--reference-rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    reference = day(args.reference_rows, seed=1, shift=0.0)
    served = day(args.rows, seed=2, shift=1.0)
    edges = {f: reference_edges(reference[f]) for f in ("amount", "spend_ratio", "transactions_7d")}

    timings: dict[str, list[float]] = {"compare": [], "floor": []}
    per_feature: dict[str, list[float]] = {f: [] for f in reference}
    for _ in range(args.repeats):
        started = time.perf_counter()
        results = compare(reference, served, bins=BINS)
        timings["compare"].append(time.perf_counter() - started)
        started = time.perf_counter()
        counts = floor(reference, served, edges)
        timings["floor"].append(time.perf_counter() - started)
        for feature in reference:
            started = time.perf_counter()
            compare({feature: reference[feature]}, {feature: served[feature]}, bins=BINS)
            per_feature[feature].append(time.perf_counter() - started)

    # The floor must count what compare counts, or the ratio means nothing.
    for result in results:
        if result.feature in edges:
            found = counts[f"{result.feature}/served"]
            assert np.allclose(result.current_shares, found / found.sum()), result.feature

    print(
        f"{args.reference_rows:,} reference rows x {args.rows:,} served rows, "
        f"{len(reference)} features, {args.repeats} runs each"
    )
    print(f"{'':8} {'median s':>9} {'p99 s':>8}")
    for kind, seconds in timings.items():
        print(f"{kind:8} {statistics.median(seconds):9.3f} {p99(seconds):8.3f}")
    ratio = statistics.median(timings["compare"]) / statistics.median(timings["floor"])
    print(f"ratio compare / floor (medians): {ratio:.2f}x")
    print("compare per feature, alone (median s):")
    for result in results:
        print(
            f"  {result.feature:16} {result.kind:12} {statistics.median(per_feature[result.feature]):.3f}"
            f"  (PSI {result.psi:.3f}, KL {result.kl:.3f}, {len(result.bins)} bins)"
        )


if __name__ == "__main__":
    main()
