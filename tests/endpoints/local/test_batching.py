"""Concurrent requests to one model share predict calls, bounded, with unbatched results."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
        assert srv.request("POST", "/models", b'{"model_name": "%s", "url": "%s"}' % (target.encode(), target.encode()),
                           {"Content-Type": "application/json"})[0] == 200
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


def test_compiled_runner_predicts_small_batches_inline(churn: Churn, tmp_path: Path) -> None:
    import asyncio

    from mmeperf.endpoints.local.batching import Batcher, Dispatcher
    from mmeperf.endpoints.local.fastpath import CompiledXGBoostRunner, compile_runner
    from mmeperf.plugins import get_backend

    backend = get_backend("xgboost")
    backend.save(churn.build.models["churn-xgb-CA"].booster, tmp_path / "ca")
    plain = backend.load(tmp_path / "ca")
    compiled = compile_runner(plain)
    assert isinstance(compiled, CompiledXGBoostRunner)
    # The bound: rows x (deepest comparisons + a row's fixed work) within the inline budget.
    assert 1 <= compiled.inline_max_rows <= 32
    rows = churn.rows("CA", compiled.inline_max_rows + 1)
    loop = asyncio.new_event_loop()
    batched: list[int] = []
    try:
        with ThreadPoolExecutor(1) as pool:
            dispatcher = Dispatcher(pool, loop=loop, threads=1)
            batcher = Batcher(plain, dispatcher, loop=loop, max_rows=64, max_wait_s=0.0,
                              supports_batching=True, on_batch=batched.append, inline=True)
            assert batcher.try_inline(rows[:1]) is None  # XGBoost's own predict: always a thread
            batcher.set_runner(compiled)
            small = batcher.try_inline(rows[:-1])
            assert small is not None
            np.testing.assert_array_equal(small.output, churn.expected("CA", rows[:-1]))
            assert batcher.try_inline(rows) is None  # over the bound: to the pool
            assert batched == [len(rows) - 1]
            off = Batcher(compiled, dispatcher, loop=loop, max_rows=64, max_wait_s=0.0,
                          supports_batching=True, on_batch=batched.append, inline=False)
            assert off.try_inline(rows[:1]) is None
    finally:
        loop.close()


def test_fast_path_compiles_after_the_configured_uses(churn: Churn) -> None:
    config = ServerConfig(repository=churn.url, fast_path_after_uses=3)
    with ThreadServer(config) as srv:
        target, rows = churn.target("TX"), churn.rows("TX", 1)

        def runner() -> str:
            return str(next(m["runner"] for m in srv.get_json("/mmeperf/status")["models"] if m["name"] == target))

        for _ in range(2):
            code, _, body = srv.invoke(target, csv_body(rows))
            assert code == 200
            np.testing.assert_array_equal(parse_csv_predictions(body), churn.expected("TX", rows))
        assert runner() == "XGBoostRunner"  # a miss and one reuse: not compiled yet
        assert srv.invoke(target, csv_body(rows))[0] == 200
        wait_until(lambda: runner() == "CompiledXGBoostRunner", "TX runs compiled after its third request")
        code, _, body = srv.invoke(target, csv_body(rows))
        np.testing.assert_array_equal(parse_csv_predictions(body), churn.expected("TX", rows))
