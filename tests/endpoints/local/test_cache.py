"""The model cache under concurrency and a byte budget, held open with gates, never sleeps."""

from __future__ import annotations

import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from botocore.config import Config

from mmeperf.endpoints.local import LocalEndpoint
from mmeperf.endpoints.local.config import ServerConfig
from mmeperf.repository import ModelRepository

from .conftest import Churn, Gates, ThreadServer, csv_body, parse_csv_predictions, wait_until


def test_300_concurrent_first_requests_cause_one_load(churn: Churn, gates: Gates, gated_repo: ModelRepository) -> None:
    gates.load.clear()
    target = "churn-xgb-CA.tar.gz"
    rows = churn.rows("CA", 1)
    expected = churn.expected("CA", rows)
    config = ServerConfig(repository=gated_repo.url)
    with ThreadServer(config, gated_repo) as srv:
        results: list[tuple[int, dict[str, str], bytes]] = []
        lock = threading.Lock()

        def one() -> None:
            reply = srv.invoke(target, csv_body(rows))
            with lock:
                results.append(reply)

        threads = [threading.Thread(target=one) for _ in range(300)]
        for t in threads:
            t.start()
        cache = srv.service.cache
        # All 300 are inside the server waiting for the one load, which the gate holds.
        wait_until(lambda: cache._waiting.get(target, 0) == 300, "300 requests wait for the load")
        assert cache.loading() == [target]
        status = srv.get_json("/mmeperf/status")
        assert status["loading_models"] == [target] and status["loaded_models"] == []
        gates.load.set()
        for t in threads:
            t.join(timeout=60)
        assert len(results) == 300
        for code, headers, body in results:
            assert code == 200, body
            assert headers["x-mmeperf-cache"] == "miss"
            np.testing.assert_array_equal(parse_csv_predictions(body), expected)
        assert gates.loads == [gates.loads[0]]  # the backend loaded it once
        metrics = srv.get_json("/mmeperf/metrics")
        assert metrics["model_loads"] == 1
        assert metrics["model_loading_time"]["count"] == 1
        assert metrics["model_cache_lookups"] == 300 and metrics["model_cache_hits"] == 0
        assert metrics["model_loading_wait_time"]["count"] == 300
        assert metrics["invocations"] == 300


def test_a_load_does_not_block_other_models(churn: Churn, gates: Gates, gated_repo: ModelRepository) -> None:
    with ThreadServer(ServerConfig(repository=gated_repo.url), gated_repo) as srv:
        rows = churn.rows("NY", 1)
        assert srv.invoke("churn-xgb-NY.tar.gz", csv_body(rows))[0] == 200
        gates.load.clear()
        slow = threading.Thread(target=srv.invoke, args=("churn-xgb-TX.tar.gz", csv_body(churn.rows("TX", 1))))
        slow.start()
        wait_until(lambda: "churn-xgb-TX.tar.gz" in srv.service.cache.loading(), "TX is loading")
        # While TX's load is held, NY answers, and the listing says TX is loading.
        code, headers, body = srv.invoke("churn-xgb-NY.tar.gz", csv_body(rows))
        assert code == 200 and headers["x-mmeperf-cache"] == "hit"
        np.testing.assert_array_equal(parse_csv_predictions(body), churn.expected("NY", rows))
        assert srv.get_json("/mmeperf/status")["loading_models"] == ["churn-xgb-TX.tar.gz"]
        gates.load.set()
        slow.join(timeout=30)


def test_a_model_in_use_is_never_unloaded_under_its_request(churn: Churn, gates: Gates, gated_repo: ModelRepository) -> None:
    # A budget that holds one model: loading a second must unload the first.
    config = ServerConfig(repository=gated_repo.url, per_model_overhead_bytes=10_000_000,
                          memory_budget_bytes=15_000_000)
    with ThreadServer(config, gated_repo) as srv:
        ca, ny = churn.rows("CA", 1), churn.rows("NY", 1)
        assert srv.invoke("churn-xgb-CA.tar.gz", csv_body(ca))[0] == 200
        gates.predict.clear()
        gates.in_predict.clear()
        answers: dict[str, Any] = {}
        held = threading.Thread(target=lambda: answers.__setitem__("CA", srv.invoke("churn-xgb-CA.tar.gz", csv_body(ca))))
        held.start()
        assert gates.in_predict.wait(20)
        other = threading.Thread(target=lambda: answers.__setitem__("NY", srv.invoke("churn-xgb-NY.tar.gz", csv_body(ny))))
        other.start()
        cache = srv.service.cache
        # NY's load waits for room: CA serves a request, so it is not unloaded.
        wait_until(lambda: len(cache._room_waiters) > 0, "NY waits for room")
        assert [m.target for m in cache.loaded()] == ["churn-xgb-CA.tar.gz"]
        assert srv.get_json("/mmeperf/metrics")["model_unloads"] == 0
        gates.predict.set()
        held.join(timeout=30)
        other.join(timeout=30)
        code, _, body = answers["CA"]
        assert code == 200
        np.testing.assert_array_equal(parse_csv_predictions(body), churn.expected("CA", ca))
        code, headers, body = answers["NY"]
        assert code == 200 and int(headers["x-mmeperf-model-loading-wait-us"]) > 0
        np.testing.assert_array_equal(parse_csv_predictions(body), churn.expected("NY", ny))
        assert [m.target for m in cache.loaded()] == ["churn-xgb-NY.tar.gz"]
        wait_until(lambda: srv.get_json("/mmeperf/metrics")["model_unloads"] == 1, "CA unloaded")


def test_model_bigger_than_the_budget(churn: Churn, gates: Gates, gated_repo: ModelRepository) -> None:
    config = ServerConfig(repository=gated_repo.url, memory_budget_bytes=1000)
    with ThreadServer(config, gated_repo) as srv:
        code, _, body = srv.invoke("churn-xgb-CA.tar.gz", csv_body(churn.rows("CA", 1)))
        doc = json.loads(body)
        assert code == 424 and doc["OriginalStatusCode"] == 507
        assert "churn-xgb-CA.tar.gz" in doc["Message"]
        code, _, body = srv.request("POST", "/models", json.dumps(
            {"model_name": "churn-xgb-CA.tar.gz", "url": "churn-xgb-CA.tar.gz"}).encode(),
            {"Content-Type": "application/json"})
        assert code == 507, body
        assert srv.get_json("/mmeperf/status")["memory_used_bytes"] == 0


def test_not_ready_and_overloaded_map_to_boto3_exceptions(churn: Churn, gates: Gates, gated_repo: ModelRepository) -> None:
    import boto3

    config = ServerConfig(repository=gated_repo.url, model_load_wait_s=0.2, max_concurrent_requests=1)
    with ThreadServer(config, gated_repo) as srv:
        client = boto3.client("sagemaker-runtime", endpoint_url=srv.url, region_name="us-east-1",
                              aws_access_key_id="x", aws_secret_access_key="x",
                              config=Config(retries={"total_max_attempts": 1}))
        body = csv_body(churn.rows("CA", 1))
        gates.load.clear()
        with pytest.raises(client.exceptions.ModelNotReadyException) as info:
            client.invoke_endpoint(EndpointName="local-mme", TargetModel="churn-xgb-CA.tar.gz", Body=body)
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
        gates.load.set()
        wait_until(lambda: srv.service.cache.get_loaded("churn-xgb-CA.tar.gz") is not None, "CA loaded")
        gates.predict.clear()
        gates.in_predict.clear()
        held = threading.Thread(target=srv.invoke, args=("churn-xgb-CA.tar.gz", body))
        held.start()
        assert gates.in_predict.wait(20)
        with pytest.raises(client.exceptions.ServiceUnavailable) as busy:
            client.invoke_endpoint(EndpointName="local-mme", TargetModel="churn-xgb-CA.tar.gz", Body=body)
        assert busy.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        gates.predict.set()
        held.join(timeout=30)
        metrics = srv.get_json("/mmeperf/metrics")
        assert metrics["invocations"] == 3
        assert metrics["invocation_4xx_errors"] == 1 and metrics["invocation_5xx_errors"] == 1


def test_budget_of_ten_models_under_64_concurrent_clients(churn: Churn) -> None:
    overhead = 4 * 2**20
    # Every churn model is charged 4 MiB + its ~30-60 KB booster: the budget holds 10 of them.
    budget = 10 * overhead + 10 * 70_000
    max_models = budget // overhead
    states = churn.states
    work = [states[i % len(states)] for i in range(2000)]
    random.Random(7).shuffle(work)
    inputs = {s: churn.rows(s, 1) for s in states}
    expected = {s: churn.expected(s, inputs[s]) for s in states}
    bodies = {s: csv_body(inputs[s]) for s in states}
    failures: list[str] = []
    with LocalEndpoint(memory_budget=budget, per_model_overhead=overhead).deploy(churn.url) as ep:
        peak_seen = 0
        stop = threading.Event()

        def watch() -> None:
            nonlocal peak_seen
            while not stop.is_set():
                peak_seen = max(peak_seen, len(ep.loaded_models()))

        def one(state: str) -> None:
            result = ep.invoke(churn.target(state), bodies[state])
            if not result.ok:
                failures.append(f"{state}: {result.status} {result.error_message}")
            elif not np.array_equal(parse_csv_predictions(result.body), expected[state]):
                failures.append(f"{state}: wrong answer {result.body!r}")

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with ThreadPoolExecutor(64) as pool:
                list(pool.map(one, work))
        finally:
            stop.set()
            watcher.join()
        status = ep.status()
        metrics = ep.metrics()
    assert failures == []
    assert metrics.invocations == 2000 and metrics.invocation_4xx_errors == metrics.invocation_5xx_errors == 0
    assert metrics.model_unloads > 0 and metrics.model_loads > len(states)
    assert status["peak_loaded_model_count"] <= max_models
    assert status["peak_memory_used_bytes"] <= budget
    assert peak_seen <= max_models
    assert metrics.model_cache_lookups == 2000
    assert 0 < metrics.model_cache_hits < 2000


def _folders(srv: ThreadServer) -> set[str]:
    models = srv.service._work_dir / "models"
    return {p.name for p in models.iterdir()} if models.is_dir() else set()


@pytest.mark.parametrize("disk_limit", [0, 10_000_000])
def test_disk_cache_is_bounded(churn: Churn, disk_limit: int) -> None:
    # Memory holds one model: every other load unloads the previous one.
    config = ServerConfig(repository=churn.url, per_model_overhead_bytes=10_000_000,
                          memory_budget_bytes=15_000_000, disk_cache_bytes=disk_limit)
    with ThreadServer(config) as srv:
        ca, ny = churn.target("CA"), churn.target("NY")
        for state in ("CA", "NY"):
            code, _, _ = srv.invoke(churn.target(state), csv_body(churn.rows(state, 1)))
            assert code == 200
        if disk_limit == 0:
            # CA was unloaded: its extracted folder goes too; NY (loaded) keeps its own.
            wait_until(lambda: len(_folders(srv)) == 1, "CA's folder is removed")
            assert srv.get_json("/mmeperf/status")["models_on_disk"] == [ny]
        else:
            # Both fit under the limit: CA stays on disk, ready for its next load.
            status = srv.get_json("/mmeperf/status")
            assert status["models_on_disk"] == [ca, ny] and len(_folders(srv)) == 2
            assert 0 < status["disk_cache_bytes"] <= disk_limit
        before = _folders(srv)
        rows = churn.rows("CA", 2)
        code, headers, body = srv.invoke(ca, csv_body(rows))
        assert code == 200 and headers["x-mmeperf-cache"] == "miss"
        np.testing.assert_array_equal(parse_csv_predictions(body), churn.expected("CA", rows))
        if disk_limit == 0:
            wait_until(lambda: len(_folders(srv)) == 1, "NY's folder is removed")
            assert _folders(srv) != before  # CA was extracted again
        else:
            assert _folders(srv) == before  # CA's folder was reused, not extracted again
        assert srv.get_json("/mmeperf/metrics")["model_unloads"] >= 2


def test_unknown_targets_leave_no_reservation(churn: Churn) -> None:
    for budget in (None, 15_000_000):
        with ThreadServer(ServerConfig(repository=churn.url, memory_budget_bytes=budget)) as srv:
            for i in range(3):
                code, headers, _ = srv.invoke(f"no-such-model-{i}.tar.gz", b"1,2")
                assert code == 400 and headers["x-amzn-errortype"] == "ValidationError"
            cache = srv.service.cache
            assert cache._reserved == {} and cache.used_bytes == 0 and cache.on_disk() == []
