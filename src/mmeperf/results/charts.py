"""Charts of a comparison: the reference's CloudWatch dashboard, per endpoint side by side, and
the client's view (latency and throughput against users, successes and failures, warm vs cold).

Every function takes plain DataFrames (server_metrics.csv and the runner's frames), writes one
PNG and returns its path; matplotlib runs headless (Agg) and is imported only here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "DASHBOARD_PANELS",
    "FORMATS_COMPARISON_PANELS",
    "bar_heights",
    "dashboard_panel",
    "formats_comparison",
    "hit_ratio_vs_cache_size",
    "latency_throughput_vs_users",
    "warm_cold_distribution",
    "what_if",
]

#: Panel id -> (title, [(column, label, unit)], secondary-axis columns). Mirrors the reference
#: dashboard: invocations and errors; MME latencies; model loading; cache; instance.
DASHBOARD_PANELS: dict[str, tuple[str, list[tuple[str, str]], list[tuple[str, str]]]] = {
    "invocations": (
        "Invocations and errors (per interval)",
        [("Invocations", "Invocations"), ("Invocation4XXErrors", "4XX errors"), ("Invocation5XXErrors", "5XX errors")],
        [],
    ),
    "model_latency": (
        "ModelLatency and OverheadLatency (µs, average)",
        [("ModelLatency", "ModelLatency"), ("OverheadLatency", "OverheadLatency")],
        [],
    ),
    "model_loading": (
        "Model loading (µs, average)",
        [
            ("ModelLoadingWaitTime", "ModelLoadingWaitTime"),
            ("ModelLoadingTime", "ModelLoadingTime"),
            ("ModelUnloadingTime", "ModelUnloadingTime"),
        ],
        [],
    ),
    "model_cache": (
        "LoadedModelCount and ModelCacheHit",
        [("LoadedModelCount", "LoadedModelCount")],
        [("ModelCacheHit", "ModelCacheHit (share)")],
    ),
    "instance": (
        "CPU and memory utilization (%)",
        [("CPUUtilization", "CPUUtilization"), ("MemoryUtilization", "MemoryUtilization")],
        [],
    ),
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce")


def dashboard_panel(
    panel: str, frames: Mapping[str, pd.DataFrame], path: Path, *, x: str = "elapsed_s"
) -> Path:
    """One dashboard panel with one subplot per endpoint (``frames``: label -> server metrics)."""
    title, series, secondary = DASHBOARD_PANELS[panel]
    plt = _plt()
    n = max(len(frames), 1)
    fig, axes = plt.subplots(1, n, figsize=(6.2 * n, 3.2), sharey=True, squeeze=False)
    for ax, (label, frame) in zip(axes[0], frames.items(), strict=False):
        xs = _numeric(frame, x)
        for column, name in series:
            ax.plot(xs, _numeric(frame, column), label=name, linewidth=1.4)
        ax.set_title(f"{label}: {title}", fontsize=9)
        ax.set_xlabel("seconds since start")
        if xs.notna().any():
            ax.set_xlim(0, max(float(xs.max()), 1.0))
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if secondary:
            ax2 = ax.twinx()
            for column, name in secondary:
                ax2.plot(xs, _numeric(frame, column), label=name, color="tab:red", linestyle="--", linewidth=1.2)
            ax2.set_ylim(0, 1.05)
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        ax.legend(handles, labels, fontsize=7, loc="upper left")
    # Only now, with every endpoint drawn: the shared axis must span all of them.
    tops = [
        _numeric(frame, column).max()
        for frame in frames.values()
        for column, _ in series
    ]
    finite = [float(t) for t in tops if pd.notna(t)]
    axes[0][0].set_ylim(0, max(finite) * 1.08 if finite and max(finite) > 0 else 1.0)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def latency_throughput_vs_users(
    stages: Mapping[str, pd.DataFrame], path: Path, *, title: str = "Latency and throughput against users"
) -> Path:
    """Per run: req/s and p50/p99 latency against users (twin axes), success/failure bars beneath.

    ``stages``: label -> frame with columns users, rps, p50_ms, p99_ms, requests, failures
    (one row per stage or per sampled second).
    """
    plt = _plt()
    n = max(len(stages), 1)
    fig, axes = plt.subplots(
        2, n, figsize=(6.2 * n, 5.2), squeeze=False, gridspec_kw={"height_ratios": [3, 1.4]}
    )
    for col, (label, frame) in enumerate(stages.items()):
        top, bottom = axes[0][col], axes[1][col]
        users = _numeric(frame, "users")
        top.plot(users, _numeric(frame, "rps"), marker="o", color="tab:blue", label="requests/s")
        top.set_ylabel("requests/s", color="tab:blue")
        top.set_title(f"{label}: {title}", fontsize=9)
        top.grid(alpha=0.3)
        lat = top.twinx()
        lat.plot(users, _numeric(frame, "p50_ms"), marker="s", color="tab:orange", label="p50 ms")
        lat.plot(users, _numeric(frame, "p99_ms"), marker="^", color="tab:red", label="p99 ms")
        lat.set_ylabel("latency (ms)")
        h1, l1 = top.get_legend_handles_labels()
        h2, l2 = lat.get_legend_handles_labels()
        top.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left")
        ok = _numeric(frame, "requests") - _numeric(frame, "failures")
        positions = np.arange(len(frame))
        bottom.bar(positions - 0.2, ok, width=0.4, color="tab:green", label="successful")
        bottom.bar(positions + 0.2, _numeric(frame, "failures"), width=0.4, color="tab:red", label="failed")
        bottom.set_xticks(positions, [f"{u:g}" for u in users.fillna(0)], fontsize=7)
        bottom.set_xlabel("users")
        bottom.set_ylabel("requests")
        bottom.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def warm_cold_distribution(
    distributions: Mapping[str, pd.DataFrame], path: Path, *, kinds: Sequence[str] = ("warm", "cold")
) -> Path:
    """Latency percentile curves of warm and cold requests per run (log-scaled tail axis).

    ``distributions``: label -> frame with columns kind, percentile, latency_ms.
    """
    plt = _plt()
    n = max(len(distributions), 1)
    fig, axes = plt.subplots(1, n, figsize=(6.2 * n, 3.4), squeeze=False, sharey=True)
    colors = {"warm": "tab:blue", "cold": "tab:red", "all": "tab:gray"}
    for ax, (label, frame) in zip(axes[0], distributions.items(), strict=False):
        for kind in kinds:
            part = frame[frame["kind"] == kind] if "kind" in frame else frame.iloc[0:0]
            if part.empty:
                continue
            pct = _numeric(part, "percentile").to_numpy()
            # x: "nines" of the percentile, as HdrHistogram plots, so the tail is readable.
            nines = -np.log10(np.clip(1 - pct / 100.0, 1e-6, 1))
            ax.plot(nines, _numeric(part, "latency_ms"), label=f"{kind} (n={_count(part)})", color=colors.get(kind))
        ticks = [0, 1, 2, 3, 4]
        ax.set_xticks(ticks, ["0%", "90%", "99%", "99.9%", "99.99%"])
        ax.set_yscale("log")
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"{label}: warm vs cold latency", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _count(part: pd.DataFrame) -> str:
    if "count" in part and len(part):
        return f"{int(_numeric(part, 'count').max()):,}"
    return "?"


def bar_heights(values: list[float], *, higher_is_better: bool) -> list[float]:
    """Bars of the comparison chart, the best format at 1: values over the largest when higher
    is better; over the smallest positive one when lower is better (latency), so a bar of 2
    means twice the best latency. Zeros (nothing measured) stay 0."""
    if higher_is_better:
        peak = max(values, default=0.0) or 1.0
        return [v / peak for v in values]
    positive = [v for v in values if v > 0]
    lowest = min(positive) if positive else 1.0
    return [v / lowest for v in values]


#: formats_comparison's panels: (column, label, higher is better).
FORMATS_COMPARISON_PANELS: tuple[tuple[str, str, bool], ...] = (
    (
        "models_loaded",
        "models loaded\n(copies resident at first eviction,\nmeasured RSS per copy)",
        True,
    ),
    ("lowest_p50_ms", "lowest p50 latency (ms)\n(x the lowest; lower is better)", False),
    ("max_rps", "highest requests/s", True),
    ("max_users_without_failures", "most users without failures", True),
)


def formats_comparison(formats: pd.DataFrame, path: Path, *, model_name: str) -> Path:
    """Model formats side by side: models loaded, lowest latency, highest throughput, most users
    without failures; bars relative to the best format (see :func:`bar_heights`), values annotated.

    ``formats``: one row per format with columns format, models_loaded, lowest_p50_ms, max_rps,
    max_users_without_failures (a missing figure counts as 0).
    """
    plt = _plt()
    labels = [str(f) for f in formats["format"]] if "format" in formats else []
    fig, axes = plt.subplots(1, len(FORMATS_COMPARISON_PANELS), figsize=(3.4 * len(FORMATS_COMPARISON_PANELS), 3.9))
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:purple"]
    for ax, (column, label, higher_is_better) in zip(axes, FORMATS_COMPARISON_PANELS, strict=True):
        values = [float(v) for v in _numeric(formats, column).fillna(0.0)]
        normalized = bar_heights(values, higher_is_better=higher_is_better)
        bars = ax.bar(labels, normalized, color=colors[: len(labels)])
        for bar, value in zip(bars, values, strict=True):
            text = f"{value:g}" if value == int(value) else f"{value:.1f}"
            ax.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_title(label, fontsize=8)
        ax.set_ylim(0, 1.2 * max([1.0, *normalized]))
        ax.set_yticks([])
    fig.suptitle(
        f"{model_name}: formats compared (values annotated; bars relative to the best = 1: "
        f"higher is better, except latency, shown as a multiple of the lowest)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def hit_ratio_vs_cache_size(
    curve: Sequence[Mapping[str, Any]],
    path: Path,
    *,
    simulated: Sequence[tuple[float, float, str]] = (),
    measured: Sequence[tuple[float, float, str]] = (),
    title: str = "Hit ratio against cache size",
) -> Path:
    """Hit ratio against models that fit: Che's approximation and LRU counts as lines, points beside.

    ``curve``: rows with ``models_that_fit``, ``che`` and optionally ``simulated`` (an LRU cache
    under independent requests, counted). ``simulated`` / ``measured``: (models that fit, hit
    ratio, label) of whole-MME simulations and of real runs.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    sizes = [float(r["models_that_fit"]) for r in curve]
    ax.plot(sizes, [r["che"] for r in curve], color="tab:blue", label="Che's approximation")
    lru = [(x, r.get("simulated")) for x, r in zip(sizes, curve, strict=True) if r.get("simulated") is not None]
    if lru:
        ax.plot([x for x, _ in lru], [y for _, y in lru], linestyle="--", marker=".", color="tab:gray",
                label="LRU, independent requests (counted)")
    for points, marker, color, kind in ((simulated, "o", "tab:orange", "MME simulation"),
                                        (measured, "X", "tab:red", "measured")):
        if points:
            ax.scatter([p[0] for p in points], [p[1] for p in points], marker=marker, s=60, color=color,
                       zorder=3, label=kind)
            for x, y, label in points:
                ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlabel("models that fit in the cache")
    ax.set_ylabel("hit ratio (ModelCacheHit)")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def what_if(rows: Sequence[Mapping[str, Any]], path: Path, *, title: str = "What if: instance type and count") -> Path:
    """Predicted throughput, p99 and cost per hour against instance count, one line per type.

    ``rows``: instance_type, instance_count, ok_rps, p99_ms, cost_per_hour_usd (predicted), and
    optionally measured_ok_rps / measured_p99_ms, drawn as crosses labelled with their error
    against predicted_here_ok_rps / predicted_here_p99_ms (the prediction for the measured run's
    own conditions) when given, else against the line.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    frame = pd.DataFrame(list(rows))
    panels = (("ok_rps", "successful req/s"), ("p99_ms", "p99 latency (ms)"), ("cost_per_hour_usd", "USD per hour"))
    for ax, (column, label) in zip(axes, panels, strict=True):
        for kind, part in frame.groupby("instance_type", sort=True) if len(frame) else ():
            part = part.sort_values("instance_count")
            line = ax.plot(part["instance_count"], _numeric(part, column), marker="o", label=f"{kind} (predicted)")
            measured = f"measured_{column}"
            if measured in part:
                got = part[part[measured].notna()]
                if len(got):
                    ax.scatter(got["instance_count"], got[measured], marker="X", s=70, color=line[0].get_color(),
                               zorder=3, label=f"{kind} (measured)")
                    for _, r in got.iterrows():
                        # The error against the prediction for the measured run's own conditions, if given.
                        here = f"predicted_here_{column}"
                        p = r[here] if here in r and r[here] is not None else r[column]
                        m = r[measured]
                        if p is not None and m and not math.isnan(float(p)):
                            ax.annotate(f"{100 * (float(p) - float(m)) / float(m):+.0f}%", (r["instance_count"], m),
                                        textcoords="offset points", xytext=(5, 4), fontsize=7)
        ax.set_xlabel("instances")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
