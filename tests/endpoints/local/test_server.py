"""The server process: ``mmeperf serve`` end to end, and graceful shutdown of in-flight work."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from mmeperf.endpoints.local.config import ServerConfig
from mmeperf.repository import ModelRepository

from .conftest import Churn, Gates, ThreadServer, csv_body, parse_csv_predictions


def test_mmeperf_serve_command(churn: Churn, tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mmeperf.cli import main; main()", "serve", churn.url,
         "--port", "0", "--memory-budget", "3MiB", "--per-model-overhead", "1MiB",
         "--ready-file", str(ready)],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "mmeperf serve did not become ready"
            time.sleep(0.05)
        address = json.loads(ready.read_text())
        assert address["host"] == "127.0.0.1"
        base = f"http://127.0.0.1:{address['port']}"
        with urllib.request.urlopen(base + "/ping", timeout=10) as resp:
            assert resp.status == 200
        rows = churn.rows("CA", 2)
        request = urllib.request.Request(
            base + "/endpoints/local-mme/invocations", data=csv_body(rows), method="POST",
            headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Model": churn.target("CA")},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            np.testing.assert_array_equal(parse_csv_predictions(resp.read()), churn.expected("CA", rows))
        with urllib.request.urlopen(base + "/mmeperf/status", timeout=10) as resp:
            status = json.loads(resp.read())
        assert status["memory_budget_bytes"] == 3 * 2**20 and status["per_model_overhead_bytes"] == 2**20
    finally:
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells it.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
        assert proc.stderr is not None and b"Traceback" not in proc.stderr.read()


def test_in_flight_requests_finish_on_shutdown(churn: Churn, gates: Gates, gated_repo: ModelRepository) -> None:
    srv = ThreadServer(ServerConfig(repository=gated_repo.url), gated_repo)
    with srv:
        rows = churn.rows("CA", 1)
        assert srv.invoke(churn.target("CA"), csv_body(rows))[0] == 200
        gates.predict.clear()
        gates.in_predict.clear()
        answer: list[tuple[int, dict[str, str], bytes]] = []
        held = threading.Thread(target=lambda: answer.append(srv.invoke(churn.target("CA"), csv_body(rows))))
        held.start()
        assert gates.in_predict.wait(20)
        srv.server.should_exit = True  # what SIGTERM does
        gates.predict.set()
        held.join(timeout=30)
        srv.thread.join(timeout=30)
        assert not srv.thread.is_alive()
        code, _, body = answer[0]
        assert code == 200
        np.testing.assert_array_equal(parse_csv_predictions(body), churn.expected("CA", rows))
