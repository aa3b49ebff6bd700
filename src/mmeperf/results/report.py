"""A self-contained HTML report (charts embedded as PNG data) plus the PNG files beside it.

It shows the reference's CloudWatch dashboard per endpoint side by side (a latest-values banner,
invocations and errors, MME latencies, model loading, cache, instance), the client's view
(latency and throughput against users with success/failure bars, warm vs cold latency), a
comparison table, the MME-vs-single-endpoints cost and a written verdict.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from mmeperf.results import charts
from mmeperf.results.compare import Comparison

__all__ = [
    "BANNER_METRICS", "CHART_IDS", "latest_values", "table_section", "what_if_section", "write_report",
    "write_what_if_report",
]

#: Charts every comparison report carries; the browser test checks each one rendered.
CHART_IDS: tuple[str, ...] = (*charts.DASHBOARD_PANELS, "latency_users", "warm_cold")

#: The reference dashboard's latest-values strip.
BANNER_METRICS: tuple[tuple[str, str], ...] = (
    ("Invocations", "Invocations / interval"),
    ("ModelLatency", "ModelLatency µs"),
    ("OverheadLatency", "OverheadLatency µs"),
    ("ModelLoadingWaitTime", "ModelLoadingWaitTime µs"),
    ("ModelLoadingTime", "ModelLoadingTime µs"),
    ("ModelUnloadingTime", "ModelUnloadingTime µs"),
    ("LoadedModelCount", "LoadedModelCount"),
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330;max-width:1400px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #dde}
.sub{color:#667;font-size:13px} .verdict{background:#eef6ee;border-left:5px solid #3a7;padding:12px 16px;margin:16px 0}
.verdict.none{background:#fbeeee;border-left-color:#c44}
table{border-collapse:collapse;font-size:13px;margin:8px 0} td,th{border:1px solid #dde;padding:4px 8px;text-align:right}
th{background:#f3f4f8} td:first-child,th:first-child{text-align:left}
.banner{display:flex;gap:18px;flex-wrap:wrap} .banner .ep{flex:1;min-width:420px}
.tiles{display:flex;gap:8px;flex-wrap:wrap} .tile{background:#f3f4f8;border-radius:6px;padding:6px 10px;min-width:120px}
.tile b{display:block;font-size:18px} .tile span{font-size:11px;color:#556}
img.chart{max-width:100%;border:1px solid #eef;margin:6px 0}
.note{font-size:12px;color:#556}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.querySelectorAll('img.chart'));
  var status = imgs.map(function (i) {
    return i.dataset.chart + ':' + ((i.complete && i.naturalWidth > 0) ? 'ok' : 'broken');
  });
  document.body.setAttribute('data-chart-status', status.join(','));
});
"""


#: How each banner metric is weighted when averaging the per-interval rows of the window: a
#: latency averaged over an interval with 1,000 requests counts 1,000 times one with 1.
_BANNER_WEIGHTS: dict[str, str | None] = {
    "Invocations": None,
    "ModelLatency": "Invocations",
    "OverheadLatency": "Invocations",
    "ModelLoadingWaitTime": "_misses",
    "ModelLoadingTime": "ModelLoads",
    "ModelUnloadingTime": "ModelUnloads",
    "LoadedModelCount": None,
}


def latest_values(frame: pd.DataFrame, *, window_s: float = 60.0) -> dict[str, float | None]:
    """The dashboard's banner: the last ``window_s`` seconds of server metrics.

    Latencies are averaged with the interval's sample count as weight (invocations, cache
    misses, loads, unloads), so the banner is the window's true average, not a mean of means;
    counts and gauges are plain averages per interval.
    """
    if frame.empty or "elapsed_s" not in frame:
        return {m: None for m, _ in BANNER_METRICS}
    elapsed = pd.to_numeric(frame["elapsed_s"], errors="coerce")
    tail = frame[elapsed >= elapsed.max() - window_s]

    def column(name: str) -> pd.Series:
        if name == "_misses":
            hit = column("ModelCacheHit")
            return column("Invocations") * (1 - hit)
        raw = tail[name] if name in tail else pd.Series(np.nan, index=tail.index)
        return pd.Series(pd.to_numeric(raw, errors="coerce"), index=tail.index)

    out: dict[str, float | None] = {}
    for metric, _ in BANNER_METRICS:
        values = column(metric)
        weight_name = _BANNER_WEIGHTS.get(metric)
        if weight_name is None:
            values = values.dropna()
            out[metric] = float(values.mean()) if len(values) else None
            continue
        weights = column(weight_name)
        ok = values.notna() & weights.notna() & (weights > 0)
        total = float(weights[ok].sum())
        out[metric] = float((values[ok] * weights[ok]).sum() / total) if total > 0 else None
    return out


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isinf(value):
            return "∞"
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
        for row in frame.astype(object).itertuples(index=False)
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def _transpose(frame: pd.DataFrame) -> pd.DataFrame:
    """Metrics as rows, runs as columns: readable with many metrics and few runs."""
    out = frame.set_index("label").T.reset_index()
    out.columns = ["metric", *[str(c) for c in out.columns[1:]]]
    return out


def _img(chart_id: str, path: Path, title: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<h3 style="font-size:14px">{html.escape(title)}</h3>'
        f'<img class="chart" id="chart-{chart_id}" data-chart="{chart_id}" '
        f'alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
    )


def write_report(
    out_dir: Path,
    comparison: Comparison,
    *,
    server_metrics: Mapping[str, pd.DataFrame],
    stages: Mapping[str, pd.DataFrame],
    distributions: Mapping[str, pd.DataFrame],
    title: str = "mmeperf report",
    notes: Sequence[str] = (),
    extra_verdict: Sequence[str] = (),
    what_if: Sequence[Mapping[str, object]] = (),
    sections: Sequence[str] = (),
) -> Path:
    """Write ``report.html`` and ``charts/*.png`` into ``out_dir``; return the HTML path.

    ``what_if``: planner rows (see :func:`what_if_section`); when given, the report has a what-if section.
    ``sections``: more HTML sections (e.g. :func:`table_section`), placed after the comparison."""
    chart_dir = out_dir / "charts"
    chart_dir.mkdir(parents=True, exist_ok=True)
    pngs: dict[str, Path] = {}
    for panel in charts.DASHBOARD_PANELS:
        pngs[panel] = charts.dashboard_panel(panel, server_metrics, chart_dir / f"{panel}.png")
    pngs["latency_users"] = charts.latency_throughput_vs_users(stages, chart_dir / "latency_users.png")
    pngs["warm_cold"] = charts.warm_cold_distribution(distributions, chart_dir / "warm_cold.png")

    rec = comparison.recommendation
    verdict_class = "verdict" if rec.chosen else "verdict none"
    verdict = f"<p><b>Recommendation:</b> {html.escape(rec.explanation)}</p>" + "".join(
        f"<p>{html.escape(line)}</p>" for line in extra_verdict
    )

    banner = []
    for label, frame in server_metrics.items():
        values = latest_values(frame)
        tiles = "".join(
            f'<div class="tile"><b>{_fmt(values[m])}</b><span>{html.escape(name)}</span></div>'
            for m, name in BANNER_METRICS
        )
        banner.append(f'<div class="ep"><h3 style="font-size:14px">{html.escape(label)}: latest 60 s</h3><div class="tiles">{tiles}</div></div>')

    hosting = pd.DataFrame(
        [
            {
                "MME": f"{h.mme_instance_count} x {h.mme_instance_type}",
                "MME $/hour": h.mme_cost_per_hour_usd,
                f"{h.n_models} single-model endpoints": f"{h.n_models} x {h.single_instance_count} x {h.single_instance_type}",
                "single endpoints $/hour": h.single_endpoints_cost_per_hour_usd,
                "savings $/hour": h.savings_per_hour_usd,
                "single / MME": h.savings_ratio,
            }
            for h in comparison.hosting
        ]
    )
    titles = {panel: spec[0] for panel, spec in charts.DASHBOARD_PANELS.items()}
    dashboard = "".join(_img(panel, pngs[panel], titles[panel]) for panel in charts.DASHBOARD_PANELS)
    client = _img("latency_users", pngs["latency_users"], "Latency and throughput against users, successful and failed requests") + _img(
        "warm_cold", pngs["warm_cold"], "Warm vs cold latency distributions (exact, HDR histograms)"
    )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<div class="sub">Generated {generated} by mmeperf. {comparison.n_models} models. Latency budget: p99 &le; {rec.p99_budget_ms:g} ms.</div>
<div class="{verdict_class}">{verdict}</div>
<h2>Comparison</h2>
{_table(_transpose(comparison.frame()))}
{"".join(sections)}
<h2>Dashboard: latest values</h2>
<div class="banner">{"".join(banner)}</div>
<h2>Dashboard</h2>
{dashboard}
<h2>Client view</h2>
{client}
<h2>One multi-model endpoint against one endpoint per model</h2>
{_table(hosting)}
{what_if_section(what_if, chart_dir) if what_if else ""}
<h2>How these numbers were measured</h2>
<ul class="note">{notes_html}</ul>
<script>{_SCRIPT}</script>
</body></html>
"""
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def table_section(title: str, frame: pd.DataFrame, *, notes: Sequence[str] = ()) -> str:
    """HTML of a titled table with notes beneath (a report's extra section, see ``sections``)."""
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"<h2>{html.escape(title)}</h2>{_table(frame)}" + (f'<ul class="note">{notes_html}</ul>' if notes else "")


_WHAT_IF_COLUMNS = ("instance_type", "instance_count", "ok_rps", "p99_ms", "hit_ratio", "cost_per_hour_usd",
                    "cost_per_million_usd", "measured_ok_rps", "measured_p99_ms", "verdict")


def what_if_section(rows: Sequence[Mapping[str, object]], chart_dir: Path) -> str:
    """HTML of the what-if section: predicted throughput, p99 and cost against instance count and
    type (chart and table), measured points overlaid with their errors. ``rows``: instance_type,
    instance_count, ok_rps, p99_ms, cost_per_hour_usd, and optionally hit_ratio,
    cost_per_million_usd, measured_ok_rps, measured_p99_ms, verdict."""
    chart_dir.mkdir(parents=True, exist_ok=True)
    png = charts.what_if(rows, chart_dir / "what_if.png")
    frame = pd.DataFrame(list(rows))
    frame = frame[[c for c in _WHAT_IF_COLUMNS if c in frame]]
    return (
        "<h2>What if: instance type and count (predicted)</h2>"
        '<p class="note">Predicted by the planner\'s simulation from a calibration; crosses are measured runs, '
        "labelled with the prediction's error.</p>"
        + _img("what_if", png, "Predicted throughput, p99 and cost against instance count")
        + _table(frame)
    )


def write_what_if_report(
    out_dir: Path, rows: Sequence[Mapping[str, object]], *, title: str = "mmeperf plan", notes: Sequence[str] = (),
) -> Path:
    """A report of the what-if section alone (``mmeperf plan --report``); returns the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    section = what_if_section(rows, out_dir / "charts")
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<div class="sub">Generated {generated} by mmeperf. Predicted, not measured, unless marked measured.</div>
{section}
<h2>Assumptions</h2>
<ul class="note">{notes_html}</ul>
<script>{_SCRIPT}</script>
</body></html>
"""
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
