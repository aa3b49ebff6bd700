"""Process workers of the local MME: real worker processes per loaded model, measured load time
and memory, MMS's job queue and 503, and faults (kill -9, hangs) that stay with their model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import psutil
import pytest

from mmeperf.endpoints.local.config import ServerConfig
from mmeperf.endpoints.local.worker import decode_batch, encode_batch
from mmeperf.endpoints.local.workers import WorkerPool

from .conftest import Churn, ThreadServer, csv_body, parse_csv_predictions, wait_until

WORKER_MODULE = "mmeperf.endpoints.local.worker"


def _config(churn: Churn, **options: Any) -> ServerConfig:
    return ServerConfig(repository=churn.url, worker_mode="process", **options)


def _workers(server: ThreadServer) -> WorkerPool:
    pool = server.service._workers
    assert pool is not None, "the server is not in process mode"
    return pool


def _worker_processes() -> list[psutil.Process]:
    """This test process's children that are model workers (the ThreadServer runs in-process)."""
    out = []
    for child in psutil.Process().children():
        try:
            if WORKER_MODULE in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                out.append(child)
        except psutil.NoSuchProcess:
            continue
    return out


def _metrics(server: ThreadServer) -> dict[str, Any]:
    data: dict[str, Any] = server.get_json("/mmeperf/metrics")
    return data


def test_batches_cross_as_raw_numpy_bytes() -> None:
    import numpy as np

    rows = np.arange(34, dtype=np.float32).reshape(2, 17)
    back = decode_batch(memoryview(b"".join(encode_batch(rows))))
    assert back.dtype == rows.dtype and back.shape == (2, 17) and (back == rows).all()
    named = {"input_ids": np.ones((2, 4), np.int32), "mask": np.zeros((2, 4), np.int64)}
    back2 = decode_batch(memoryview(b"".join(encode_batch(named))))
    assert set(back2) == set(named) and all((back2[k] == v).all() and back2[k].dtype == v.dtype for k, v in named.items())


def test_profile_implies_process_workers_and_settings_follow_sagemaker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAGEMAKER_MODEL_SERVER_WORKERS", raising=False)
    monkeypatch.delenv("SAGEMAKER_NUM_MODEL_WORKERS", raising=False)
    monkeypatch.delenv("SAGEMAKER_MODEL_JOB_QUEUE_SIZE", raising=False)
    plain = ServerConfig(repository=".")
    assert plain.effective_worker_mode() == "thread" and plain.cpu_request()[0] == "none"
    profiled = ServerConfig(repository=".", instance_profile="ml.c5.xlarge")
    assert profiled.effective_worker_mode() == "process" and profiled.cpu_request()[0] == "auto"
    assert profiled.effective_overhead() == 0  # process workers: measured, not assumed
    assert profiled.effective_workers_per_model() == 1 and profiled.effective_job_queue_size() == 100
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "3")
    monkeypatch.setenv("SAGEMAKER_MODEL_JOB_QUEUE_SIZE", "7")
    assert profiled.effective_workers_per_model() == 3 and profiled.effective_job_queue_size() == 7
    explicit = ServerConfig(repository=".", instance_profile="ml.c5.xlarge", worker_mode="thread", workers_per_model=2)
    assert explicit.effective_worker_mode() == "thread" and explicit.effective_workers_per_model() == 2


def _worker_start_s() -> float:
    """How long this host takes to start a Python process that imports the XGBoost backend."""
    code = "import xgboost\nfrom mmeperf.backends import get_backend\nget_backend('xgboost')\nprint('ready', flush=True)"
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        times.append(time.perf_counter() - t0)  # until it is ready, not until it has exited
        assert proc.wait(30) == 0
    return min(times)


def test_cold_load_starts_a_worker_and_charges_its_memory(churn: Churn) -> None:
    start_s = _worker_start_s()
    with ThreadServer(_config(churn)) as server:
        status, headers, body = server.invoke(churn.target("CA"), csv_body(churn.rows("CA", 3)))
        assert status == 200, body
        assert headers["x-mmeperf-cache"] == "miss"
        expected = churn.expected("CA", churn.rows("CA", 3))
        assert parse_csv_predictions(body) == pytest.approx(expected, abs=1e-6)
        loading_s = _metrics(server)["model_loading_time"]["max_us"] / 1e6
        # The floor is the fastest bare start seen before and after the load: on a shared host one
        # set of starts can all land in a busy moment the load itself missed.
        start_s = min(start_s, _worker_start_s())
        assert loading_s >= start_s, f"ModelLoadingTime {loading_s:.3f} s < a bare worker start {start_s:.3f} s"
        procs = _worker_processes()
        assert len(procs) == 1
        # MMS's describe carries no mmeperf keys: what the cache charged is in /mmeperf/status.
        charged = {m["name"]: m["charged_bytes"] for m in server.get_json("/mmeperf/status")["models"]}
        uss = procs[0].memory_full_info().uss
        # Charged = the worker's own USS at ready time (it grows a little once it predicts).
        assert 0.5 * uss <= charged[churn.target("CA")] <= 1.5 * uss
        # Warm requests are answered by the same worker.
        for _ in range(3):
            status, headers, body = server.invoke(churn.target("CA"), csv_body(churn.rows("CA", 3)))
            assert status == 200 and headers["x-mmeperf-cache"] == "hit"
            assert parse_csv_predictions(body) == pytest.approx(expected, abs=1e-6)
    wait_until(lambda: not _worker_processes(), "the workers stopped with the server")


def test_worker_count_is_loaded_models_times_workers_per_model(churn: Churn) -> None:
    with ThreadServer(_config(churn, workers_per_model=2)) as server:
        for state in ("CA", "NY"):
            assert server.invoke(churn.target(state), csv_body(churn.rows(state, 1)))[0] == 200
        loaded = _metrics(server)["loaded_model_count"]
        assert loaded == 2 and len(_worker_processes()) == loaded * 2
        pids = _workers(server).describe()["worker_pids"]
        assert {p.pid for p in _worker_processes()} == {pid for v in pids.values() for pid in v}
        assert server.request("DELETE", f"/models/{churn.target('CA')}")[0] == 200
        wait_until(lambda: len(_worker_processes()) == 2, "the unloaded model's workers stopped")
        assert _metrics(server)["loaded_model_count"] == 1


def test_a_budget_of_k_workers_holds_k_models(churn: Churn) -> None:
    with ThreadServer(_config(churn)) as server:
        assert server.invoke(churn.target("CA"), csv_body(churn.rows("CA", 1)))[0] == 200
        per_model = server.get_json("/mmeperf/status")["memory_used_bytes"]
    assert per_model > 10 * 1024**2  # a process, not a booster's few kB
    k = 2
    with ThreadServer(_config(churn, memory_budget_bytes=k * per_model + per_model // 2)) as server:
        states = ("CA", "NY", "TX", "WA")
        for state in states:
            assert server.invoke(churn.target(state), csv_body(churn.rows(state, 1)))[0] == 200
        status = server.get_json("/mmeperf/status")
        assert k - 1 <= len(status["loaded_models"]) <= k + 1
        assert status["peak_loaded_model_count"] <= k + 1
        wait_until(lambda: len(_worker_processes()) == len(server.get_json("/mmeperf/status")["loaded_models"]),
                   "unloaded models' workers stopped")


def _invoke_counted(server: ThreadServer, target: str, body: bytes, log: list[tuple[str, int, dict[str, str], bytes]],
                    lock: threading.Lock) -> None:
    status, headers, data = server.invoke(target, body)
    with lock:
        log.append((target, status, headers, data))


def test_kill_9_fails_only_that_models_in_flight_requests(churn: Churn) -> None:
    a, b = churn.target("CA"), churn.target("NY")
    body_a, body_b = csv_body(churn.rows("CA", 1)), csv_body(churn.rows("NY", 1))
    with ThreadServer(_config(churn)) as server:
        assert server.invoke(a, body_a)[0] == 200 and server.invoke(b, body_b)[0] == 200
        pool = _workers(server)
        (victim,) = pool.describe()["worker_pids"][a]
        log: list[tuple[str, int, dict[str, str], bytes]] = []
        lock = threading.Lock()
        # Other traffic keeps flowing to B the whole time.
        stop = threading.Event()

        def traffic_b() -> None:
            while not stop.is_set():
                _invoke_counted(server, b, body_b, log, lock)

        background = threading.Thread(target=traffic_b)
        background.start()
        # Hold A's requests in flight: stop its worker, send three, then kill -9 it.
        os.kill(victim, signal.SIGSTOP)
        senders = [threading.Thread(target=_invoke_counted, args=(server, a, body_a, log, lock)) for _ in range(3)]
        for t in senders:
            t.start()
        runner = next(r for r in pool.runners() if r.target == a)
        wait_until(lambda: sum(len(w.busy or []) for w in runner.workers) + runner.queued == 3,
                   "three requests are in flight to the stopped worker")
        os.kill(victim, signal.SIGKILL)
        for t in senders:
            t.join(30)
        # The model comes back on the next request.
        status, headers, _ = server.invoke(a, body_a)
        assert status == 200 and headers["x-mmeperf-cache"] == "miss"
        stop.set()
        background.join(30)
        failures = [entry for entry in log if entry[1] != 200]
        assert len(failures) == 3 and all(target == a for target, *_ in failures), [f[:2] for f in failures]
        for _, status, headers, data in failures:
            assert status == 424 and headers["x-amzn-errortype"] == "ModelError"
            message = json.loads(data)["OriginalMessage"]
            assert "Worker died" in message and "SIGKILL" in message and str(victim) in message
        assert sum(1 for target, status, *_ in log if target == b and status == 200) == sum(1 for e in log if e[0] == b)
        metrics = _metrics(server)
        client_total = len(log) + 3  # and the two warm-ups and the reload
        assert metrics["invocations"] == client_total
        assert metrics["invocation_5xx_errors"] == 3 and metrics["invocation_4xx_errors"] == 0
        status_now = server.get_json("/mmeperf/status")
        assert status_now["workers"]["worker_deaths"] == 1 and sorted(status_now["loaded_models"]) == sorted([a, b])
        assert victim not in {p.pid for p in _worker_processes()}


def test_a_full_job_queue_answers_503_as_mms(churn: Churn) -> None:
    a = churn.target("CA")
    body = csv_body(churn.rows("CA", 1))
    with ThreadServer(_config(churn, job_queue_size=2)) as server:
        assert server.invoke(a, body)[0] == 200
        runner = _workers(server).runners()[0]
        (pid,) = runner.pids
        os.kill(pid, signal.SIGSTOP)
        log: list[tuple[str, int, dict[str, str], bytes]] = []
        lock = threading.Lock()
        try:
            held = [threading.Thread(target=_invoke_counted, args=(server, a, body, log, lock)) for _ in range(3)]
            for t in held:
                t.start()
            wait_until(lambda: runner.queued == 2, "one request at the worker and two queued")
            status, headers, data = server.invoke(a, body)
            assert status == 503 and headers["x-amzn-errortype"] == "ServiceUnavailable"
            assert b"Consider increasing job queue size" in data
        finally:
            os.kill(pid, signal.SIGCONT)
        for t in held:
            t.join(30)
        assert [entry[1] for entry in log] == [200, 200, 200]


def test_a_hung_worker_is_killed_and_replaced(churn: Churn) -> None:
    a = churn.target("CA")
    body = csv_body(churn.rows("CA", 1))
    with ThreadServer(_config(churn, invocation_timeout_s=1.0)) as server:
        assert server.invoke(a, body)[0] == 200
        runner = _workers(server).runners()[0]
        (hung,) = runner.pids
        os.kill(hung, signal.SIGSTOP)  # alive but never answers
        status, headers, data = server.invoke(a, body)
        message = json.loads(data)["OriginalMessage"]
        assert status == 424 and ("timed out" in message or "did not respond" in message), message
        wait_until(lambda: runner.pids != [hung] and runner.replacing == 0, "the hung worker was replaced", timeout=60)
        assert not psutil.pid_exists(hung) or psutil.Process(hung).status() == psutil.STATUS_ZOMBIE
        status, headers, _ = server.invoke(a, body)
        assert status == 200 and headers["x-mmeperf-cache"] == "hit"  # the model stayed loaded
        assert _workers(server).worker_timeouts == 1
