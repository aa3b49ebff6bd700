"""Fixtures of the local MME tests: the 51-model churn repository, expected predictions, a
gated backend for concurrency tests, and a real uvicorn server in a thread of this process."""

from __future__ import annotations

import http.client
import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from mmeperf._types import Array, Batch
from mmeperf.backends.xgboost import XGBoostBackend, XGBoostRunner
from mmeperf.datasets.churn import FEATURES, ChurnBuild, build_churn_repository
from mmeperf.endpoints.local.app import MMEApp
from mmeperf.endpoints.local.config import ServerConfig
from mmeperf.endpoints.local.server import bind
from mmeperf.endpoints.local.service import MMEService
from mmeperf.plugins import BACKENDS, register
from mmeperf.repository import ModelRepository

GATE_TIMEOUT_S = 20


@dataclass
class Churn:
    build: ChurnBuild
    url: str
    test: pd.DataFrame

    def target(self, state: str) -> str:
        return f"churn-xgb-{state}.tar.gz"

    def rows(self, state: str, n: int | None = None) -> Array:
        frame = self.test[self.test.State == state]
        return frame[list(FEATURES)].to_numpy(np.float32)[:n]

    def expected(self, state: str, rows: Array) -> Array:
        """What xgboost's own predict returns for ``rows``."""
        import xgboost

        booster = self.build.models[f"churn-xgb-{state}"].booster
        return np.asarray(booster.predict(xgboost.DMatrix(rows)), dtype=np.float32)

    @property
    def states(self) -> list[str]:
        return sorted(self.test.State.unique())


def csv_body(rows: Array) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode()


def parse_csv_predictions(body: bytes) -> Array:
    """Predictions of an XGBoost answer, flat: the default JSON array or a CSV line."""
    text = body.decode().strip()
    if text.startswith("["):  # JSON, the container's default answer (or its 2-D CSV rows)
        return np.array(json.loads(f"[{text}]"), dtype=np.float32).reshape(-1)
    return np.array([float(v) for v in text.replace("\n", ",").split(",") if v], dtype=np.float32)


@pytest.fixture(scope="session")
def churn(tmp_path_factory: pytest.TempPathFactory) -> Churn:
    root = tmp_path_factory.mktemp("churn") / "repo"
    build = build_churn_repository(root)
    return Churn(build=build, url=str(root), test=pd.read_csv(build.test_csv))


# --- a backend whose loads and predicts a test can hold ------------------------------------


class Gates:
    """Events the test releases; counters of what the gated backend did."""

    def __init__(self) -> None:
        self.load = threading.Event()
        self.predict = threading.Event()
        self.load.set()
        self.predict.set()
        self.loads: list[str] = []
        self.predict_rows: list[int] = []
        self.in_predict = threading.Event()
        self.lock = threading.Lock()


GATES = Gates()


class GatedRunner(XGBoostRunner):
    def predict(self, batch: Batch) -> Array:
        GATES.in_predict.set()
        assert GATES.predict.wait(GATE_TIMEOUT_S), "predict gate never opened"
        with GATES.lock:
            GATES.predict_rows.append(int(np.asarray(batch).shape[0]))
        return super().predict(batch)


class GatedBackend(XGBoostBackend):
    """XGBoost, but loads and predicts wait on the test's gates."""

    name: ClassVar[str] = "gated-xgboost"

    def load(self, directory: Path, *, allow_pickle: bool = False) -> XGBoostRunner:
        with GATES.lock:
            GATES.loads.append(directory.name)
        assert GATES.load.wait(GATE_TIMEOUT_S), "load gate never opened"
        runner = super().load(directory, allow_pickle=allow_pickle)
        runner.__class__ = GatedRunner
        return runner


@pytest.fixture
def gates() -> Iterator[Gates]:
    global GATES
    GATES = Gates()
    register(BACKENDS, "gated-xgboost", GatedBackend)
    yield GATES
    GATES.load.set()
    GATES.predict.set()


@pytest.fixture
def gated_repo(churn: Churn, tmp_path: Path) -> ModelRepository:
    """Five churn models served by the gated backend."""
    repo = ModelRepository(tmp_path / "gated")
    for state in ("CA", "NY", "TX", "WA", "OR"):
        src = tmp_path / "src" / state
        src.mkdir(parents=True)
        churn.build.models[f"churn-xgb-{state}"].booster.save_model(str(src / "xgboost-model.json"))
        shutil.move(src / "xgboost-model.json", src / "xgboost-model")
        repo.add(f"churn-xgb-{state}", src, backend="gated-xgboost")
    return repo


# --- a real HTTP server in a thread of this process (so tests can hold its gates) -----------


class ThreadServer:
    def __init__(self, config: ServerConfig, repository: ModelRepository | None = None) -> None:
        import uvicorn

        self.service = MMEService(config, repository=repository)
        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(
            MMEApp(self.service), loop="asyncio", http="httptools", lifespan="on",
            log_level="warning", access_log=False,
        ))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        GATES.load.set()
        GATES.predict.set()
        self.server.should_exit = True
        self.thread.join(timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def invoke(self, target: str, body: bytes, **headers: str) -> tuple[int, dict[str, str], bytes]:
        return self.request("POST", "/endpoints/local-mme/invocations", body,
                            {"X-Amzn-SageMaker-Target-Model": target, "Content-Type": "text/csv", **headers})

    def get_json(self, path: str) -> Any:
        status, _, body = self.request("GET", path)
        assert status == 200, body
        return json.loads(body)


def wait_until(predicate: Any, what: str, timeout: float = GATE_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.005)
