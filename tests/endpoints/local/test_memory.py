"""MemoryEndpoint: the local MME's ASGI app in this process, no sockets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmeperf.endpoints.local.memory import MemoryEndpoint
from mmeperf.protocol import CacheState
from mmeperf.repository import ModelRepository


@pytest.fixture
def two_models(tmp_path: Path) -> tuple[ModelRepository, dict[str, object]]:
    import xgboost

    rng = np.random.default_rng(0)
    repo = ModelRepository(tmp_path / "repo")
    boosters: dict[str, object] = {}
    for i, name in enumerate(("alpha", "beta")):
        x = rng.normal(size=(200, 4)).astype(np.float32)
        y = (x[:, i] > 0).astype(np.float32)
        booster = xgboost.train({"objective": "binary:logistic"}, xgboost.DMatrix(x, label=y), 5)
        repo.add_model(name, booster, backend="xgboost")
        boosters[f"{name}.tar.gz"] = booster
    return repo, boosters


def test_memory_endpoint_serves_like_the_local_one(two_models: tuple[ModelRepository, dict[str, object]]) -> None:
    import xgboost

    repo, boosters = two_models
    rows = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode()
    with MemoryEndpoint(memory_budget="10MiB").deploy(repo) as ep:
        for target, booster in boosters.items():
            result = ep.invoke(target, body)
            assert result.ok and result.cache is CacheState.MISS, result.error_message
            got = np.array(json.loads(result.body), dtype=np.float32)  # the container's default: JSON
            np.testing.assert_array_equal(got, booster.predict(xgboost.DMatrix(rows)))  # type: ignore[attr-defined]
        assert ep.invoke("alpha.tar.gz", body).cache is CacheState.HIT
        missing = ep.invoke("nope.tar.gz", b"1")
        assert (missing.status, missing.error_code) == (400, "ValidationError")
        bad = ep.invoke("alpha.tar.gz", b"1,2,3,4,5")  # wider than the model (short rows are missing values)
        assert (bad.status, bad.error_code) == (424, "ModelError")
        assert sorted(ep.loaded_models()) == ["alpha.tar.gz", "beta.tar.gz"]
        metrics = ep.metrics()
        assert metrics.invocations == 5 and metrics.invocation_4xx_errors == 2
        assert metrics.model_loads == 2 and metrics.model_cache_hits == 2
        assert ep.info().kind == "memory"
    ep.delete()


def test_memory_endpoint_goes_through_the_app(two_models: tuple[ModelRepository, dict[str, object]]) -> None:
    """Body limits, headers and the container routes are the ASGI app's, not re-implemented."""
    repo, _ = two_models
    with MemoryEndpoint(max_payload="1KiB", endpoint_name="in-process").deploy(repo) as ep:
        ok = ep.invoke("alpha.tar.gz", b"0.1,0.2,0.3,0.4")
        assert ok.ok and ok.headers["x-amzn-invoked-production-variant"] == "AllTraffic"
        assert ok.headers["x-amzn-requestid"]
        too_big = ep.invoke("alpha.tar.gz", b"1," * 1024)
        assert (too_big.status, too_big.error_code) == (413, "ValidationError")
        assert ep._request("GET", "/ping").status == 200
        assert ep._request("GET", "/models/alpha.tar.gz").status == 200
        assert ep.metrics().invocation_4xx_errors == 1
    ep.delete()
