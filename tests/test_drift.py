"""Drift of served values against a reference, and the report a person reads.

Pure and fast: seeded random data and hypothesis, no servers.
"""

from __future__ import annotations

import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_assets.kernel.errors import MonitoringInputError
from feature_assets.monitoring.drift import (
    EPSILON,
    MAX_CATEGORIES,
    FeatureDrift,
    Thresholds,
    compare,
)
from feature_assets.monitoring.report import write_index, write_report

ROWS = 5_000
THRESHOLDS = Thresholds()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def traffic(seed: int, rows: int = ROWS) -> dict[str, pd.Series]:
    """One day of a service's features, always drawn from the same distributions."""
    rng = np.random.default_rng(seed)
    amount = rng.normal(50.0, 10.0, rows)
    amount[rng.random(rows) < 0.02] = np.nan
    return {
        "amount": pd.Series(amount),
        "spend_ratio": pd.Series(rng.lognormal(0.0, 1.0, rows)),
        "transactions_7d": pd.Series(rng.integers(0, 6, rows)),
        "is_premium": pd.Series(rng.random(rows) < 0.3),
        "segment": pd.Series(rng.choice(["a", "b", "c", "d"], rows, p=[0.4, 0.3, 0.2, 0.1])),
    }


def warned(results: list[FeatureDrift]) -> dict[str, list[str]]:
    return {r.feature: r.alerts(THRESHOLDS) for r in results if r.alerts(THRESHOLDS)}


def test_served_values_from_the_reference_distributions_raise_no_alert() -> None:
    results = compare(traffic(seed=1), traffic(seed=2))

    assert [r.feature for r in results] == list(traffic(seed=1))
    assert warned(results) == {}
    assert all(r.psi is not None and r.psi < 0.05 for r in results)


def shift_mean(served: dict[str, pd.Series]) -> None:
    served["amount"] = served["amount"] + 10.0  # one standard deviation


def swap_categorical_mix(served: dict[str, pd.Series]) -> None:
    swap = {"a": "d", "d": "a", "b": "c", "c": "b"}
    served["segment"] = served["segment"].map(swap)


def add_nulls(served: dict[str, pd.Series]) -> None:
    values = served["transactions_7d"].astype("float64")
    values[np.random.default_rng(7).random(len(values)) < 0.2] = np.nan
    served["transactions_7d"] = values


@pytest.mark.parametrize(
    ("inject", "feature", "alert"),
    [
        (shift_mean, "amount", "PSI"),
        (swap_categorical_mix, "segment", "PSI"),
        (add_nulls, "transactions_7d", "null rate"),
    ],
    ids=["numeric-mean-shift", "categorical-mix-swap", "nulls"],
)
def test_drift_injected_into_one_feature_warns_on_exactly_that_feature(
    inject, feature: str, alert: str
) -> None:
    served = traffic(seed=2)
    inject(served)

    alerts = warned(compare(traffic(seed=1), served))

    assert list(alerts) == [feature]
    assert any(a.startswith(alert) for a in alerts[feature])


def test_psi_and_kl_match_a_hand_computation() -> None:
    # Shares r = (1/2, 1/2), c = (1/4, 3/4).
    [result] = compare({"x": pd.Series(["a", "b"])}, {"x": pd.Series(["a", "b", "b", "b"])})

    psi = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    kl = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert result.psi == pytest.approx(psi)  # 0.2747
    assert result.kl == pytest.approx(kl)  # 0.1308
    assert result.bins == ("a", "b")
    assert result.reference_shares == (0.5, 0.5)
    assert result.current_shares == (0.25, 0.75)


def test_a_bin_empty_on_one_side_counts_as_epsilon_and_stays_finite() -> None:
    [result] = compare({"x": pd.Series(["a", "b"])}, {"x": pd.Series(["a"])})

    r = np.array([0.5, 0.5])
    c = np.array([1.0, EPSILON]) / (1.0 + EPSILON)
    assert result.psi == pytest.approx(float(np.sum((c - r) * np.log(c / r))))
    assert result.kl == pytest.approx(float(np.sum(c * np.log(c / r))))
    assert math.isfinite(result.psi) and math.isfinite(result.kl)


def test_kl_is_taken_from_served_to_reference() -> None:
    reference = pd.Series(["a"] * 9 + ["b"])
    served = pd.Series(["a"] * 5 + ["b"] * 5)

    [forward] = compare({"x": reference}, {"x": served})
    [backward] = compare({"x": served}, {"x": reference})

    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert forward.kl == pytest.approx(expected)
    assert backward.kl != pytest.approx(expected)
    assert forward.psi == pytest.approx(backward.psi)


def test_numeric_bins_come_from_the_reference_alone() -> None:
    reference = {"x": pd.Series(np.arange(1.0, 101.0))}

    [near] = compare(reference, {"x": pd.Series([5.0, 50.0, 95.0])})
    [far] = compare(reference, {"x": pd.Series([-1000.0, 1000.0])})

    assert near.bins == far.bins
    assert len(near.bins) == 10
    assert near.reference_shares == pytest.approx([0.1] * 10)
    # Outside the reference's range: the open outer bins, not dropped.
    assert far.current_shares == pytest.approx([0.5] + [0.0] * 8 + [0.5])
    assert far.bins[0].startswith("≤") and far.bins[-1].startswith(">")


def test_a_point_mass_owns_its_bin() -> None:
    values = np.concatenate([np.zeros(600), np.linspace(1, 100, 400)])

    [result] = compare({"x": pd.Series(values)}, {"x": pd.Series(values)})

    assert result.bins[0] == "≤ 0"
    assert result.reference_shares[0] == pytest.approx(0.6)
    assert result.psi == pytest.approx(0.0)


def test_few_distinct_reference_values_bin_by_value() -> None:
    reference = {"n": pd.Series([0, 1, 2, 3, 4, 5] * 10)}

    [same] = compare(reference, {"n": pd.Series([0, 1, 2, 3, 4, 5])})
    [new_value] = compare(reference, {"n": pd.Series([0, 1, 2, 7])})

    assert same.bins == ("0", "1", "2", "3", "4", "5")
    assert same.psi == pytest.approx(0.0)
    # A served value the reference never had has a bin of its own, which PSI sees.
    assert new_value.bins[-1] == "other"
    assert new_value.current_shares[-1] == pytest.approx(0.25)
    assert "psi" in new_value.over_threshold(Thresholds(min_rows=1))


def test_bool_features_bin_by_value_with_readable_labels() -> None:
    [result] = compare({"f": pd.Series([True, False, False])}, {"f": pd.Series([True, True])})

    assert result.kind == "numeric"
    assert result.bins == ("False", "True")
    assert result.current_shares == (0.0, 1.0)


def test_categorical_chart_shows_the_largest_values_but_psi_counts_all() -> None:
    values = [f"v{i:02d}" for i in range(30)]
    reference = pd.Series(values * 10)
    # The ten smallest values trade places among themselves: their total is unchanged.
    served = pd.Series(values[:20] * 10 + ["v20"] * 100)

    [result] = compare({"c": reference}, {"c": served})

    assert len(result.bins) == MAX_CATEGORIES + 1
    assert result.bins[-1] == "10 other values"
    assert result.current_shares == pytest.approx(result.reference_shares)
    assert "psi" in result.over_threshold(THRESHOLDS)


def test_null_by_design_does_not_warn_but_an_increase_does() -> None:
    def with_nulls(rate: float) -> pd.Series:
        values = np.random.default_rng(3).normal(size=ROWS)
        values[: int(rate * ROWS)] = np.nan
        return pd.Series(values)

    reference = {"balance": with_nulls(0.40)}

    [steady] = compare(reference, {"balance": with_nulls(0.42)})
    [rising] = compare(reference, {"balance": with_nulls(0.50)})

    assert steady.alerts(THRESHOLDS) == []
    assert rising.over_threshold(THRESHOLDS) == {"null_rate"}
    assert rising.null_rate_increase == pytest.approx(0.10)


def test_empty_or_missing_served_side_has_no_psi_and_does_not_crash() -> None:
    reference = traffic(seed=1)
    served = {"amount": pd.Series([], dtype="float64"), "segment": pd.Series([], dtype=object)}

    results = {r.feature: r for r in compare(reference, served)}

    for result in results.values():
        assert result.count == 0
        assert result.reference_count == ROWS
        assert result.psi is None and result.kl is None
        assert result.alerts(THRESHOLDS) == []
        assert sum(result.reference_shares) == pytest.approx(1.0)


def test_a_served_side_of_only_nulls_warns_on_null_rate() -> None:
    [result] = compare({"x": pd.Series([1.0, 2.0])}, {"x": pd.Series([None, None], dtype=float)})

    assert result.null_rate == 1.0
    assert result.psi is None
    assert result.over_threshold(THRESHOLDS) == {"null_rate"}


def test_kinds_override_the_dtype() -> None:
    reference = {"country_code": pd.Series([1, 1, 44, 49])}

    [result] = compare(reference, reference, kinds={"country_code": "categorical"})

    assert result.kind == "categorical"
    assert result.bins == ("1", "44", "49")


def test_an_unknown_kind_or_text_declared_numeric_is_a_caller_error() -> None:
    with pytest.raises(MonitoringInputError, match="kind 'ordinal'"):
        compare({"x": pd.Series([1])}, {}, kinds={"x": "ordinal"})
    with pytest.raises(MonitoringInputError, match="declare it categorical"):
        compare({"x": pd.Series(["gold"])}, {}, kinds={"x": "numeric"})


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=60, deadline=None)
@given(
    reference=st.lists(finite_or_not, min_size=1, max_size=40),
    served=st.lists(finite_or_not, max_size=40),
)
def test_any_numeric_values_give_finite_non_negative_psi_and_shares_summing_to_one(
    reference: list[float], served: list[float]
) -> None:
    [result] = compare(
        {"x": pd.Series(reference, dtype="float64")}, {"x": pd.Series(served, dtype="float64")}
    )

    assert len(result.bins) == len(result.reference_shares) == len(result.current_shares)
    for shares in (result.reference_shares, result.current_shares):
        assert sum(shares) == pytest.approx(1.0) or sum(shares) == 0.0
    if result.psi is not None:
        assert 0.0 <= result.psi < math.inf
        assert 0.0 <= result.kl < math.inf


class Rows(HTMLParser):
    """Each feature's (or service's) row: its classes and how many of its cells are red."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, object]] = {}
        self.images: list[str] = []
        self._row: dict[str, object] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = set((attributes.get("class") or "").split())
        if tag == "tr" and classes & {"feature", "service"}:
            self._row = {"classes": classes, "over_cells": 0}
            self.rows[attributes.get("data-feature") or attributes["data-service"]] = self._row
        elif tag == "td" and self._row is not None and "over" in classes:
            self._row["over_cells"] += 1
        elif tag == "img":
            self.images.append(attributes["src"])


def parse(page: Path) -> Rows:
    rows = Rows()
    rows.feed(page.read_text(encoding="utf-8"))
    return rows


def test_report_marks_the_drifted_feature_red_and_no_other(tmp_path: Path) -> None:
    served = traffic(seed=2)
    shift_mean(served)
    results = compare(traffic(seed=1), served)

    page = write_report(
        tmp_path,
        "fraud_model",
        results,
        thresholds=THRESHOLDS,
        day="2026-01-08",
        reference="training set fraud_v3",
        served="served log of 2026-01-08",
    )

    assert page == tmp_path / "fraud_model.html"
    rows = parse(page)
    assert set(rows.rows) == {r.feature for r in results}
    assert {f for f, row in rows.rows.items() if "warn" in row["classes"]} == {"amount"}
    assert rows.rows["amount"]["over_cells"] == 2  # PSI and KL
    assert all(row["over_cells"] == 0 for f, row in rows.rows.items() if f != "amount")
    text = page.read_text(encoding="utf-8")
    assert "training set fraud_v3" in text and "2026-01-08" in text
    charts = sorted((tmp_path / "fraud_model").glob("*.png"))
    assert len(charts) == len(results)
    assert all(chart.read_bytes().startswith(PNG_MAGIC) for chart in charts)
    assert sorted(tmp_path / src for src in rows.images) == charts


def test_report_escapes_names_and_survives_features_without_values(tmp_path: Path) -> None:
    name = '<script>alert("x")</script> & $price$'
    results = compare(
        {name: pd.Series([1.0, 2.0]), "empty": pd.Series([], dtype="float64")},
        {name: pd.Series([1.0, 2.0])},
    )

    page = write_report(
        tmp_path,
        "svc",
        results,
        thresholds=THRESHOLDS,
        day="<today>",
        reference="a & b",
        served="<log>",
    )

    text = page.read_text(encoding="utf-8")
    assert "<script>" not in text and "<today>" not in text and "<log>" not in text
    assert "&lt;script&gt;" in text and "a &amp; b" in text
    assert set(parse(page).rows) == {name, "empty"}
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in (tmp_path / "svc").glob("*.png"))


def test_a_service_name_that_is_not_a_file_name_is_refused(tmp_path: Path) -> None:
    for service in ("../elsewhere", "index", ""):
        with pytest.raises(MonitoringInputError, match="cannot name a report"):
            write_report(
                tmp_path, service, [], thresholds=THRESHOLDS, day="d", reference="r", served="s"
            )


def test_index_links_each_service_with_its_count_of_warnings(tmp_path: Path) -> None:
    served = traffic(seed=2)
    add_nulls(served)
    drifted = compare(traffic(seed=1), served)
    steady = compare(traffic(seed=1), traffic(seed=3))

    page = write_index(tmp_path, {"fraud & risk": drifted, "ranking": steady}, THRESHOLDS)

    rows = parse(page).rows
    assert {s for s, row in rows.items() if "warn" in row["classes"]} == {"fraud & risk"}
    text = page.read_text(encoding="utf-8")
    assert 'href="fraud%20%26%20risk.html"' in text and 'href="ranking.html"' in text
    assert '<td class="num over">1</td>' in text


def test_a_few_served_rows_do_not_warn_on_psi_or_kl_but_enough_do() -> None:
    rng = np.random.default_rng(11)
    reference = {"amount": pd.Series(rng.normal(100, 15, ROWS))}
    for rows, warns in ((THRESHOLDS.min_rows - 1, False), (THRESHOLDS.min_rows, True)):
        shifted = {"amount": pd.Series(rng.normal(160, 15, rows))}
        (result,) = compare(reference, shifted)
        assert result.psi > THRESHOLDS.psi  # drifted either way: only the verdict differs
        assert bool(result.over_threshold(THRESHOLDS) & {"psi", "kl"}) is warns
