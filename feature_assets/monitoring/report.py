"""Drift reports a person would rather look at than read: one HTML page per service.

`<directory>/<service>.html` holds one row per feature (served rows, null rate served vs
reference, PSI, KL, red where over threshold) next to a chart of the reference and served
distributions, `<directory>/<service>/NN-<feature>.png`. `<directory>/index.html` links the
services with their warning counts. Pages are self-contained (inline CSS, images by relative
path), so the directory can be copied, zipped or served as static files.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np

from feature_assets.kernel.errors import MonitoringInputError
from feature_assets.monitoring.drift import FeatureDrift, Thresholds

REFERENCE_COLOR = "#a0aec0"
SERVED_COLOR = "#2b6cb0"
WARN_COLOR = "#c53030"
# Each service's figures, beside its charts (for the index of every service).
RESULTS = "results.json"

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1a202c;
       margin: 0; background: #f7fafc; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { margin: 0 0 4px; font-size: 26px; }
.meta { color: #4a5568; margin: 0 0 16px; }
.meta b { color: #1a202c; font-weight: 600; }
.summary { padding: 10px 14px; border-radius: 6px; margin: 0 0 20px; font-weight: 600; }
.summary.ok { background: #e6f4ea; color: #1e6b35; }
.summary.warn { background: #fde8e8; color: #9b1c1c; }
.summary a { color: inherit; }
table { border-collapse: collapse; width: 100%; background: #fff;
        box-shadow: 0 1px 3px rgba(0, 0, 0, .08); }
th, td { padding: 8px 12px; border-bottom: 1px solid #e2e8f0; text-align: left;
         vertical-align: top; }
th { background: #edf2f7; font-size: 13px; text-transform: uppercase; letter-spacing: .03em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.over { background: #fde8e8; color: #9b1c1c; font-weight: 700; }
tr.feature td:first-child, tr.service td:first-child { border-left: 6px solid #38a169; }
tr.warn td:first-child { border-left-color: #c53030; }
.name { font-weight: 600; font-size: 16px; word-break: break-word; }
.kind { color: #718096; font-size: 13px; }
.marker { display: inline-block; margin-top: 6px; padding: 1px 8px; border-radius: 10px;
          font-size: 12px; font-weight: 700; background: #c53030; color: #fff; }
ul.alerts { margin: 6px 0 0; padding-left: 18px; color: #9b1c1c; font-size: 13px; }
.sub { display: block; color: #718096; font-size: 12px; font-weight: 400;
       text-transform: none; letter-spacing: 0; }
img { display: block; max-width: 640px; width: 100%; height: auto; }
.legend { color: #4a5568; font-size: 13px; margin: 8px 0 0; }
"""


def write_report(
    directory: Path,
    service: str,
    results: Sequence[FeatureDrift],
    *,
    thresholds: Thresholds,
    day: str,
    reference: str,
    served: str,
) -> Path:
    """Write `<directory>/<service>.html` and one chart per feature under
    `<directory>/<service>/`; returns the HTML page's path. `reference` and `served` describe
    where each side's values came from, in words a reader recognizes."""
    _check_service_name(service)
    charts = directory / service
    charts.mkdir(parents=True, exist_ok=True)
    # Charts of features dropped since the last report would otherwise linger beside the page.
    for stale in charts.glob("*.png"):
        stale.unlink()
    rows = []
    for number, result in enumerate(results, start=1):
        over = result.over_threshold(thresholds)
        chart = charts / f"{number:02d}-{_file_name(result.feature)}.png"
        _draw(result, chart, warn=bool(over))
        rows.append(_feature_row(number, result, thresholds, over, f"{service}/{chart.name}"))
    warned = [(n, r) for n, r in enumerate(results, start=1) if r.over_threshold(thresholds)]
    if warned:
        links = ", ".join(f'<a href="#feature-{n}">{html.escape(r.feature)}</a>' for n, r in warned)
        summary = (
            f'<p class="summary warn">{len(warned)} of {len(results)} features over '
            f"threshold: {links}</p>"
        )
    else:
        summary = f'<p class="summary ok">All {len(results)} features within thresholds</p>'
    title = f"Drift: {service}, {day}"
    body = f"""<h1>{html.escape(service)}</h1>
<p class="meta">Drift on <b>{html.escape(day)}</b> &middot; reference: <b>{html.escape(reference)}</b>
&middot; served: <b>{html.escape(served)}</b> &middot; <a href="index.html">all services</a></p>
{summary}
<table>
<thead><tr><th>Feature</th><th>Served rows</th>
<th>Null rate<span class="sub">served / reference</span></th><th>PSI</th>
<th>KL<span class="sub">served from reference</span></th><th>Reference and served</th></tr></thead>
<tbody>
{"".join(rows)}</tbody>
</table>
<p class="legend">{html.escape(_rule(thresholds))}. Shares are of non-null values per bin;
numeric bins come from the reference's quantiles (or its values, when it has few).</p>"""
    page = directory / f"{service}.html"
    page.write_text(_page(title, body), encoding="utf-8")
    return page


def write_index(
    directory: Path,
    services: Mapping[str, Sequence[FeatureDrift]],
    thresholds: Thresholds,
    *,
    day: str | None = None,
) -> Path:
    """Write `<directory>/index.html` linking each service's page with its count of features
    over threshold; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    for service, results in services.items():
        warned = sum(1 for r in results if r.over_threshold(thresholds))
        state = "service warn" if warned else "service"
        cell = ' class="num over"' if warned else ' class="num"'
        rows.append(
            f'<tr class="{state}" data-service="{html.escape(service)}">'
            f'<td><a class="name" href="{html.escape(quote(service))}.html">'
            f"{html.escape(service)}</a></td>"
            f'<td class="num">{len(results)}</td><td{cell}>{warned}</td></tr>\n'
        )
    total = sum(1 for rs in services.values() for r in rs if r.over_threshold(thresholds))
    services_warned = sum(
        1 for rs in services.values() if any(r.over_threshold(thresholds) for r in rs)
    )
    heading = f"Drift, {day}" if day else "Drift"
    summary = (
        f'<p class="summary warn">{total} features over threshold in {services_warned} of '
        f"{len(services)} services</p>"
        if total
        else '<p class="summary ok">All features within thresholds</p>'
    )
    body = f"""<h1>{html.escape(heading)}</h1>
{summary}
<table>
<thead><tr><th>Service</th><th>Features</th><th>Over threshold</th></tr></thead>
<tbody>
{"".join(rows)}</tbody>
</table>
<p class="legend">{html.escape(_rule(thresholds))}.</p>"""
    page = directory / "index.html"
    page.write_text(_page(heading, body), encoding="utf-8")
    return page


def _check_service_name(service: str) -> None:
    if (
        not service
        or service in (".", "..", "index")
        or any(c in service for c in "/\\\0")
        or service.startswith(".")
    ):
        raise MonitoringInputError(
            f"service {service!r} cannot name a report: it becomes a file name beside "
            "index.html, so it must be non-empty, not 'index', not start with '.', and hold "
            "no path separator"
        )


def _file_name(feature: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", feature)[:80] or "feature"


def _rule(thresholds: Thresholds) -> str:
    return (
        f"Red: served null rate more than {thresholds.null_rate * 100:g} points above the "
        f"reference's, PSI above {thresholds.psi:g}, or KL above {thresholds.kl:g}"
    )


def _number(value: float | None) -> str:
    return "&ndash;" if value is None else f"{value:.3f}"


def _feature_row(
    number: int,
    result: FeatureDrift,
    thresholds: Thresholds,
    over: frozenset[str],
    chart: str,
) -> str:
    def cell(metric: str, text: str) -> str:
        return f'<td class="num{" over" if metric in over else ""}">{text}</td>'

    name = html.escape(result.feature)
    alerts = "".join(f"<li>{html.escape(a)}</li>" for a in result.alerts(thresholds))
    marker = (
        f'<br><span class="marker">DRIFT</span><ul class="alerts">{alerts}</ul>' if over else ""
    )
    if result.count:
        served = f"{result.count:,}"
        null_rate = f"{result.null_rate:.1%} / {result.reference_null_rate:.1%}"
    else:
        served = "none"
        null_rate = f"&ndash; / {result.reference_null_rate:.1%}"
    return (
        f'<tr class="feature{" warn" if over else ""}" id="feature-{number}" '
        f'data-feature="{name}">'
        f'<td><span class="name">{name}</span> <span class="kind">{result.kind}</span>'
        f"{marker}</td>"
        f'<td class="num">{served}<span class="sub">ref {result.reference_count:,}</span></td>'
        f"{cell('null_rate', null_rate)}{cell('psi', _number(result.psi))}"
        f"{cell('kl', _number(result.kl))}"
        f'<td><img src="{html.escape(quote(chart))}" alt="reference and served distributions '
        f'of {name}" loading="lazy"></td></tr>\n'
    )


def _draw(result: FeatureDrift, path: Path, *, warn: bool) -> None:
    # Imported here: every process that loads the Dagster definitions imports this module,
    # and only a drift step draws.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    # A Figure with its own Agg canvas, not pyplot: no global backend switch in the importing
    # process, and nothing registered that could leak when a report is drawn in a loop.
    labels = result.bins
    # One size for every chart, so rows line up and bars compare across features.
    figure = Figure(figsize=(7.0, 3.0), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_title(f"{result.feature} ({result.kind})", loc="left", parse_math=False)
    if labels:
        x = np.arange(len(labels))
        served_color = WARN_COLOR if warn else SERVED_COLOR
        axes.bar(x - 0.2, result.reference_shares, 0.4, label="reference", color=REFERENCE_COLOR)
        axes.bar(x + 0.2, result.current_shares, 0.4, label="served", color=served_color)
        axes.set_xticks(x)
        long_labels = len(labels) > 8 or max(len(s) for s in labels) > 8
        axes.set_xticklabels(
            labels,
            rotation=35 if long_labels else 0,
            ha="right" if long_labels else "center",
            fontsize=8,
            parse_math=False,
        )
        axes.yaxis.set_major_formatter(PercentFormatter(1.0))
        axes.set_ylabel("share of non-null")
        # Above the axes, so it never hides a bar.
        axes.legend(frameon=False, fontsize=8, loc="lower right", bbox_to_anchor=(1, 1), ncols=2)
    else:
        axes.text(0.5, 0.5, "no non-null values", ha="center", va="center", color="#718096")
        axes.set_xticks([])
        axes.set_yticks([])
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    figure.savefig(path, format="png")


def _page(title: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{CSS}</style>
</head>
<body><main>
{body}
</main></body>
</html>
"""


def save_results(directory: Path, service: str, results: Sequence[FeatureDrift]) -> None:
    """The figures beside the page, so an index of every service can be written later."""
    path = directory / service / RESULTS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([dataclasses.asdict(r) for r in results]))


def load_results(directory: Path, service: str) -> list[FeatureDrift] | None:
    path = directory / service / RESULTS
    if not path.exists():
        return None
    return [
        FeatureDrift(**{k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()})
        for entry in json.loads(path.read_text())
    ]
