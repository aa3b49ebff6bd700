"""Synthetic frames shaped like the runner's and the server's, for report and chart tests."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmeperf.metrics import SERVER_METRIC_COLUMNS, LatencyStat, ServerMetrics
from mmeperf.results.compare import RunSummary

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def server_frame(seconds: int, *, loaded: int, unloads_per_s: int) -> pd.DataFrame:
    rng = np.random.default_rng(seconds + loaded)
    rows = []
    for t in range(1, seconds + 1):
        row = {c: None for c in SERVER_METRIC_COLUMNS}
        row.update(
            timestamp=1_700_000_000 + t, elapsed_s=float(t), Invocations=int(rng.integers(90, 110)),
            Invocation4XXErrors=0, Invocation5XXErrors=0, ModelCacheHit=0.7 if unloads_per_s else 1.0,
            LoadedModelCount=min(loaded, 3 * t), ModelLoads=unloads_per_s, ModelUnloads=unloads_per_s,
            ModelLatency=float(rng.normal(900, 50)), OverheadLatency=float(rng.normal(300, 20)),
            ModelLoadingWaitTime=4000.0 if unloads_per_s else None, ModelLoadingTime=3500.0 if unloads_per_s else None,
            ModelUnloadingTime=80.0 if unloads_per_s else None, CPUUtilization=60.0, MemoryUtilization=40.0,
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=list(SERVER_METRIC_COLUMNS))


def stages_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"users": [10, 20, 40], "rps": [10.0, 19.0, 35.0], "p50_ms": [2.0, 2.1, 2.5], "p99_ms": [5.0, 6.0, 9.0],
         "requests": [300, 600, 1100], "failures": [0, 0, 3]}
    )


def distribution_frame() -> pd.DataFrame:
    rows = []
    for kind, base in (("warm", 1.0), ("cold", 8.0)):
        for pct in (50, 90, 99, 99.9, 100):
            rows.append({"kind": kind, "percentile": pct, "latency_ms": base * (1 + pct / 50), "count": 1000})
    return pd.DataFrame(rows)


def run_summary(label: str, itype: str, *, unloads: int, p99: float) -> RunSummary:
    end = ServerMetrics(
        timestamp=10.0, invocations=1000, model_cache_hits=900 if unloads else 1000, model_cache_lookups=1000,
        loaded_model_count=30, model_loads=51 + unloads, model_unloads=unloads,
        model_latency=LatencyStat(count=1000, sum_us=900_000, max_us=5000),
    )
    start = ServerMetrics(timestamp=0.0, model_loads=51 if not unloads else 30, loaded_model_count=30)
    return RunSummary(
        label=label, instance_type=itype, emulated=True, requests=1000, failures=0, duration_s=10.0,
        p50_ms=1.0, p95_ms=3.0, p99_ms=p99, cold_share=0.1 if unloads else 0.0,
        server_start=start, server_end=end, loaded_model_count_max=30 if unloads else 51,
    )


def chromium_dump_dom(path: Path) -> str:
    """Load a page in headless Chromium, let its load handlers run, and return the DOM."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", path.resolve().as_uri()],
            capture_output=True, text=True, timeout=120, check=True,
        )
    return out.stdout


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium package is not installed (.ci/run installs it)"
)
