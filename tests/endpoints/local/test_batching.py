"""Concurrent requests to one model share predict calls, bounded, with unbatched results."""

from __future__ import annotations

import threading

import numpy as np

from mmeperf.datasets.churn import FEATURES
from mmeperf.endpoints.local.config import ServerConfig
from mmeperf.repository import ModelRepository

from .conftest import Churn, Gates, ThreadServer, csv_body, parse_csv_predictions, wait_until


def _run(churn: Churn, gates: Gates, repo: ModelRepository, *, max_batch: int, n: int) -> list[int]:
    # Test rows of every state: any row is a valid input for the CA model.
    rows = churn.test[list(FEATURES)].to_numpy(np.float32)[: n + 1]
    expected = [churn.expected("CA", rows[i: i + 1]) for i in range(n + 1)]
    with ThreadServer(ServerConfig(repository=repo.url, max_batch_size=max_batch), repo) as srv:
        target = "churn-xgb-CA.tar.gz"
        assert srv.request("POST", "/models", b'{"model_name": "%s"}' % target.encode())[0] == 200
        gates.predict.clear()
        gates.in_predict.clear()
        answers: dict[int, tuple[int, dict[str, str], bytes]] = {}

        def one(i: int) -> None:
            answers[i] = srv.invoke(target, csv_body(rows[i: i + 1]))

        first = threading.Thread(target=one, args=(0,))
        first.start()
        assert gates.in_predict.wait(20)
        others = [threading.Thread(target=one, args=(i,)) for i in range(1, n + 1)]
        for t in others:
            t.start()
        batcher = srv.service.cache.get_loaded(target).batcher  # type: ignore[union-attr]
        wait_until(lambda: len(batcher._queue) == n, f"{n} requests queue behind the first")
        gates.predict.set()
        for t in [first, *others]:
            t.join(timeout=30)
        for i in range(n + 1):
            code, _, body = answers[i]
            assert code == 200, body
            np.testing.assert_array_equal(parse_csv_predictions(body), expected[i])
        metrics = srv.get_json("/mmeperf/status")
        assert metrics["batched_rows"] == n + 1
        return list(gates.predict_rows)


def test_queued_requests_share_one_predict(churn: Churn, gates: Gates, gated_repo: ModelRepository) -> None:
    assert _run(churn, gates, gated_repo, max_batch=64, n=20) == [1, 20]


def test_batches_are_bounded(churn: Churn, gates: Gates, gated_repo: ModelRepository) -> None:
    assert _run(churn, gates, gated_repo, max_batch=8, n=20) == [1, 8, 8, 4]
