"""The container API of ``mmeperf serve`` over real HTTP, ported from the upstream tests.

Each test names the upstream test it follows: Multi Model Server's
``frontend/server/src/test/java/com/amazonaws/ml/mms/ModelServerTest.java`` (MST), the inference
toolkit's ``test/integration/local/test_dummy_multi_model.py`` (TK) and the XGBoost container's
``test/integration/local/test_multiple_model_endpoint.py`` (XGB). Where mmeperf differs on
purpose (docs/local-mme.md, "Deliberate differences from SageMaker") the test says so.
"""

from __future__ import annotations

import http.client
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import numpy as np
import pytest
from botocore.config import Config

from mmeperf.repository import ModelRepository

ERROR_NOT_FOUND = "Requested resource is not found, please refer to API document."
ERROR_METHOD_NOT_ALLOWED = "Requested method is not allowed, please refer to API document."
JSON = {"Content-Type": "application/json"}
ROW = b"0,0,1,0"  # the row the XGBoost container's tests send


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Served:
    url: str
    port: int
    root: Path
    repo: ModelRepository

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def load(self, name: str, url: str, **extra: Any) -> Answer:
        return self.request("POST", "/models", json.dumps({"model_name": name, "url": url, **extra}).encode(), JSON)

    def names(self) -> list[str]:
        return [m["modelName"] for m in self.request("GET", "/models").json()["models"]]


def _tiny_booster(seed: int) -> Any:
    import xgboost

    rng = np.random.default_rng(seed)
    x = rng.random((64, 4), dtype=np.float32)
    y = (x[:, 0] + x[:, 2] > 1).astype(np.float32)
    return xgboost.train({"objective": "binary:logistic", "max_depth": 2}, xgboost.DMatrix(x, label=y), 5)


@pytest.fixture(scope="module")
def repo_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelRepository]:
    """XGB's two models (a pickled booster and a saved one), TK's model names, a link out of the
    repository, and a valid model just outside it."""
    root = tmp_path_factory.mktemp("container")
    repo = ModelRepository(root / "repo")
    for i, name in enumerate(["saved_booster", "resnet_152", "resnet_18", "zeta", "alpha"]):
        src = root / "src" / name
        src.mkdir(parents=True)
        _tiny_booster(i).save_model(str(src / "xgboost-model.json"))
        (src / "xgboost-model.json").rename(src / "xgboost-model")
        repo.add(name, src, backend="xgboost")
    src = root / "src" / "pickled_model"
    src.mkdir()
    (src / "xgboost-model").write_bytes(pickle.dumps(_tiny_booster(9)))
    repo.add("pickled_model", src, backend="xgboost")
    shutil.copy(root / "repo" / "alpha.tar.gz", root / "secret.tar.gz")
    os.symlink(root / "secret.tar.gz", root / "repo" / "linked.tar.gz")
    return root, repo


def _serve(root: Path, repo: ModelRepository, *flags: str) -> Iterator[Served]:
    ready = root / f"ready-{len(flags)}.json"
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmeperf", "serve", repo.url, "--port", "0", "--ready-file", str(ready), *flags],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "mmeperf serve did not become ready"
            time.sleep(0.05)
        port = int(json.loads(ready.read_text())["port"])
        yield Served(f"http://127.0.0.1:{port}", port, root, repo)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
        assert proc.stderr is not None and b"Traceback" not in proc.stderr.read()


@pytest.fixture(scope="module")
def server(repo_dir: tuple[Path, ModelRepository]) -> Iterator[Served]:
    """``mmeperf serve --allow-pickle``: the XGBoost container loads pickles, so its tests need it."""
    yield from _serve(*repo_dir, "--allow-pickle")


@pytest.fixture
def srv(server: Served) -> Served:
    """The server with no model loaded (as each upstream test starts)."""
    for name in server.names():
        assert server.request("DELETE", "/models/" + quote(name, safe="")).status == 200
    assert server.names() == []
    return server


def _error(answer: Answer, status: int, kind: str, message: str) -> None:
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    assert answer.body == json.dumps({"code": status, "type": kind, "message": message}, indent=2).encode() + b"\n"


# --- MMS ModelServerTest -------------------------------------------------------------------


def test_ping(srv: Served) -> None:
    """MST testPing; TK and XGB test_ping: 200, ``Healthy``, pretty-printed, a request id."""
    for method in ("GET", "POST"):
        answer = srv.request(method, "/ping")
        assert answer.status == 200
        assert answer.body == b'{\n  "status": "Healthy"\n}\n'
        assert answer.headers["x-request-id"]
        assert answer.headers["cache-control"] == "no-cache; no-store, must-revalidate, private"
        assert answer.headers["pragma"] == "no-cache"


def test_invalid_root_request(srv: Served) -> None:
    """MST testInvalidRootRequest: GET / is 405."""
    _error(srv.request("GET", "/"), 405, "MethodNotAllowedException", ERROR_METHOD_NOT_ALLOWED)


@pytest.mark.parametrize("path", ["/InvalidUrl", "/models/a/b", "/predictions", "/models/x/y/invoke"])
def test_invalid_uris(srv: Served, path: str) -> None:
    """MST testInvalidInferenceUri, testInvalidManagementUri, testInvalidPredictionsUri."""
    _error(srv.request("GET", path), 404, "ResourceNotFoundException", ERROR_NOT_FOUND)


def test_invalid_models_method(srv: Served) -> None:
    """MST testInvalidModelsMethod (PUT /models) and testInvalidModelMethod (POST /models/noop)."""
    _error(srv.request("PUT", "/models"), 405, "MethodNotAllowedException", ERROR_METHOD_NOT_ALLOWED)
    _error(srv.request("POST", "/models/noop"), 405, "MethodNotAllowedException", ERROR_METHOD_NOT_ALLOWED)


def test_describe_scale_unregister_predict_model_not_found(srv: Served) -> None:
    """MST testDescribeModelNotFound, testScaleModelNotFound, testUnregisterModelNotFound,
    testPredictionsModelNotFound; XGB test_delete_unloaded_model; TK test_unload_non_existing_model."""
    _error(srv.request("GET", "/models/InvalidModel"), 404, "ModelNotFoundException", "Model not found: InvalidModel")
    _error(srv.request("PUT", "/models/fake"), 404, "ModelNotFoundException", "Model not found: fake")
    _error(srv.request("DELETE", "/models/fake"), 404, "ModelNotFoundException", "Model not found: fake")
    _error(srv.request("GET", "/predictions/InvalidModel"), 404, "ModelNotFoundException",
           "Model not found: InvalidModel")


def test_register_model_missing_url(srv: Served) -> None:
    """MST testRegisterModelMissingUrl (also a JSON body with no url, and a JSON body sent
    without the JSON Content-Type, which MMS ignores)."""
    _error(srv.request("POST", "/models"), 400, "BadRequestException", "Parameter url is required.")
    _error(srv.request("POST", "/models", b'{"model_name": "x"}', JSON), 400, "BadRequestException",
           "Parameter url is required.")
    _error(srv.request("POST", "/models", b'{"model_name": "x", "url": "alpha"}'), 400,
           "BadRequestException", "Parameter url is required.")


def test_register_model_invalid_runtime(srv: Served) -> None:
    """MST testRegisterModelInvalidRuntime."""
    _error(srv.request("POST", "/models?url=InvalidUrl&runtime=InvalidRuntime"), 400, "BadRequestException",
           "Invalid RuntimeType value: InvalidRuntime")


def test_register_model_not_found(srv: Served) -> None:
    """MST testRegisterModelNotFound; TK test_load_non_existing_model (``/banana``)."""
    _error(srv.request("POST", "/models?url=InvalidUrl"), 404, "ModelNotFoundException",
           "Model not found in model store: InvalidUrl")
    _error(srv.load("banana", "/banana"), 404, "ModelNotFoundException", "Model not found in model store: /banana")


def test_register_model_invalid_path(srv: Served) -> None:
    """MST testRegisterModelInvalidPath: any ``..`` in the url."""
    _error(srv.request("POST", "/models?url=..%2Ffake.mar&synchronous=false"), 404, "ModelNotFoundException",
           "Relative path is not allowed in url: ../fake.mar")
    url = "/opt/ml/models/../../../secret/model"
    _error(srv.load("secret", url), 404, "ModelNotFoundException", f"Relative path is not allowed in url: {url}")


def test_register_model_outside_the_repository_is_refused(srv: Served) -> None:
    """MST testRegisterModelMalformedUrl / testRegisterModelConnectionFailed: MMS downloads
    http(s) urls and loads any path; mmeperf loads only from its repository (deliberate)."""
    secret = str(srv.root / "secret.tar.gz")
    for url in ("http://localhost:aaaa", "https://localhost:8443/fake.mar", secret, "/etc/passwd",
                "linked.tar.gz", "/opt/ml/models/linked/model", "file://" + secret):
        _error(srv.load("secret", url), 404, "ModelNotFoundException", f"Model not found in model store: {url}")
    assert srv.names() == []


def test_load_model_without_workers(srv: Served) -> None:
    """MST testLoadModel: with no initial workers the answer is ``registered``."""
    answer = srv.request("POST", "/models?url=alpha&model_name=noop_v0.1&initial_workers=0")
    assert (answer.status, answer.json()) == (200, {"status": 'Model "noop_v0.1" registered'})


def test_load_model_with_initial_workers(srv: Served) -> None:
    """MST testLoadModelWithInitialWorkers (query string) and ...WithJSONReqBody (numbers and
    booleans as strings, as Gson reads them)."""
    answer = srv.request("POST", "/models?url=alpha&model_name=noop_v0.1&initial_workers=1&synchronous=true")
    assert (answer.status, answer.body) == (200, b'{\n  "status": "Workers scaled"\n}\n')
    assert answer.headers["connection"] == "keep-alive"
    body = b'{"url": "alpha", "model_name": "noop_v0.2", "initial_workers": "1", "synchronous": "true"}'
    answer = srv.request("POST", "/models", body, JSON)
    assert (answer.status, answer.json()) == (200, {"status": "Workers scaled"})
    assert srv.names() == ["noop_v0.1", "noop_v0.2"]


def test_register_model_conflict(srv: Served) -> None:
    """MST testRegisterModelConflict: asynchronous load (202), then the same name again (409)."""
    query = "/models?url=alpha&model_name=noop_v0.1&runtime=python&synchronous=false"
    answer = srv.request("POST", query)
    assert (answer.status, answer.json()) == (202, {"status": "Processing worker updates..."})
    _error(srv.request("POST", query), 409, "ConflictStatusException", "Model noop_v0.1 is already registered.")
    deadline = time.monotonic() + 30
    while srv.request("GET", "/models/noop_v0.1").status != 200:
        assert time.monotonic() < deadline, "the asynchronous load never finished"
        time.sleep(0.02)


def test_scale_model(srv: Served) -> None:
    """MST testScaleModel and testSyncScaleModel."""
    assert srv.load("noop_v0.1", "alpha").status == 200
    answer = srv.request("PUT", "/models/noop_v0.1?min_worker=2")
    assert (answer.status, answer.json()) == (202, {"status": "Processing worker updates..."})
    answer = srv.request("PUT", "/models/noop_v0.1?synchronous=true&min_worker=1")
    assert (answer.status, answer.json()) == (200, {"status": "Workers scaled"})


def test_describe_model(srv: Served) -> None:
    """MST testDescribeModel: one object with MMS's fields (no modelVersion without a manifest)."""
    url = "/opt/ml/models/alpha/model"
    assert srv.load("noop_v0.1", url).status == 200
    doc = srv.request("GET", "/models/noop_v0.1").json()
    assert list(doc) == ["modelName", "modelUrl", "runtime", "minWorkers", "maxWorkers", "batchSize",
                         "maxBatchDelay", "loadedAtStartup", "workers"]
    assert (doc["modelName"], doc["modelUrl"], doc["runtime"]) == ("noop_v0.1", url, "python")
    assert (doc["minWorkers"], doc["maxWorkers"], doc["batchSize"], doc["maxBatchDelay"]) == (1, 1, 1, 100)
    assert doc["loadedAtStartup"] is False
    (worker,) = doc["workers"]
    assert list(worker) == ["id", "startTime", "status", "gpu", "memoryUsage"]
    assert worker["status"] == "READY" and worker["gpu"] is False and worker["memoryUsage"] > 0
    assert time.strptime(worker["startTime"], "%Y-%m-%dT%H:%M:%S.%fZ")


def test_unregister_model(srv: Served) -> None:
    """MST testUnregisterModel."""
    assert srv.load("noop_v0.1", "alpha").status == 200
    answer = srv.request("DELETE", "/models/noop_v0.1")
    assert (answer.status, answer.json()) == (200, {"status": 'Model "noop_v0.1" unregistered'})


def test_list_models_ignores_unknown_parameters(srv: Served) -> None:
    """MST testListModels: ``limit=200`` is 100 and ``nextPageToken`` is not a parameter."""
    for name in ("noop_v0.1", "noop"):
        assert srv.load(name, "alpha").status == 200
    doc = srv.request("GET", "/models?limit=200&nextPageToken=X").json()
    assert doc == {"models": [{"modelName": "noop", "modelUrl": "alpha"},
                              {"modelName": "noop_v0.1", "modelUrl": "alpha"}]}


def test_invocations_by_model_name(srv: Served) -> None:
    """MST testInvocationsJson (``/invocations?model_name=``), testModelsInvokeJson and
    testInvocationsMultipart's missing name (no single startup model here: 400)."""
    assert srv.load("noop", "alpha").status == 200
    for path in ("/invocations?model_name=noop", "/models/noop/invoke", "/predictions/noop"):
        answer = srv.request("POST", path, ROW, {"Content-Type": "text/csv"})
        assert answer.status == 200, (path, answer.body)
    _error(srv.request("POST", "/invocations", ROW, {"Content-Type": "text/csv"}), 400, "BadRequestException",
           "Parameter model_name is required.")


# --- MMS ManagementRequestHandler.handleListModels: paging edge cases ----------------------


def test_list_models_pages(srv: Served) -> None:
    """Sorted by name whatever the load order; the token is a string; a page ending exactly at
    the last model still carries a token, and the next page is empty without one."""
    for name in ("c", "a", "d", "b"):
        assert srv.load(name, "alpha").status == 200

    def listing(query: str) -> Any:
        answer = srv.request("GET", "/models" + query)
        assert answer.status == 200
        return answer.json()

    names = ["a", "b", "c", "d"]
    assert [m["modelName"] for m in listing("")["models"]] == names
    assert "nextPageToken" not in listing("")
    assert listing("?limit=3") == {"nextPageToken": "3", "models": [{"modelName": n, "modelUrl": "alpha"}
                                                                    for n in names[:3]]}
    assert list(listing("?limit=3")) == ["nextPageToken", "models"]
    assert [m["modelName"] for m in listing("?limit=3&next_page_token=3")["models"]] == ["d"]
    assert listing("?limit=4")["nextPageToken"] == "4"
    assert listing("?limit=4&next_page_token=4") == {"models": []}
    assert listing("?next_page_token=9") == {"models": []}
    # Negative and unreadable tokens are 0, never echoed back; out-of-range limits are 100.
    for query in ("?next_page_token=-5", "?next_page_token=abc", "?next_page_token=1_0", "?limit=-1",
                  "?limit=101", "?limit=x"):
        doc = listing(query)
        assert [m["modelName"] for m in doc["models"]] == names and "nextPageToken" not in doc, query
    # Deliberate difference: MMS answers limit=0 with an empty page pointing at itself.
    assert [m["modelName"] for m in listing("?limit=0")["models"]] == names


@pytest.mark.parametrize("limit", ["", "0", "1", "2", "3", "4", "-1", "1000"])
def test_a_client_following_tokens_terminates_with_every_model(srv: Served, limit: str) -> None:
    for name in ("c", "a", "b"):
        assert srv.load(name, "alpha").status == 200
    seen: list[str] = []
    token: str | None = None
    for _ in range(10):
        query = "?limit=" + limit + (f"&next_page_token={token}" if token is not None else "")
        doc = srv.request("GET", "/models" + query).json()
        seen += [m["modelName"] for m in doc["models"]]
        token = doc.get("nextPageToken")
        if token is None:
            break
    assert token is None and seen == ["a", "b", "c"]


# --- inference toolkit test_dummy_multi_model.py --------------------------------------------


def test_toolkit_load_list_unload(srv: Served) -> None:
    """TK test_ping, test_list_models_empty, test_load_models, test_unload_models,
    test_load_non_existing_model, test_unload_non_existing_model, test_load_model_multiple_times
    (the toolkit's urls are ``/<name>``, relative to the model store ``/``)."""
    assert srv.request("GET", "/ping").status == 200
    assert srv.request("GET", "/models").json()["models"] == []
    answer = srv.load("resnet_152", "/resnet_152")
    assert (answer.status, answer.json()["status"]) == (200, "Workers scaled")
    assert srv.request("GET", "/models").json()["models"] == [{"modelName": "resnet_152", "modelUrl": "/resnet_152"}]
    assert srv.load("resnet_18", "/resnet_18").status == 200
    assert srv.request("GET", "/models").json()["models"] == [
        {"modelName": "resnet_152", "modelUrl": "/resnet_152"}, {"modelName": "resnet_18", "modelUrl": "/resnet_18"}]
    assert srv.load("resnet_18", "/resnet_18").status == 409
    assert srv.request("POST", "/models/resnet_18/invoke", ROW, {"Content-Type": "text/csv"}).status == 200
    answer = srv.request("DELETE", "/models/resnet_152")
    assert answer.json()["status"] == 'Model "resnet_152" unregistered'
    assert srv.request("DELETE", "/models/resnet_152").status == 404
    assert srv.load("banana", "/banana").status == 404


def test_toolkit_mxnet_urls(srv: Served) -> None:
    """TK test_mxnet_multi_model.py: the platform's urls ``/opt/ml/models/<name>/model``."""
    url = "/opt/ml/models/resnet_18/model"
    assert srv.load("resnet_18", url).json() == {"status": "Workers scaled"}
    assert srv.request("GET", "/models").json()["models"] == [{"modelName": "resnet_18", "modelUrl": url}]


# --- XGBoost container test_multiple_model_endpoint.py ----------------------------------------


def test_xgb_list_models_empty(srv: Served) -> None:
    """XGB test_list_models_empty: exactly ``{"models": []}``."""
    answer = srv.request("GET", "/models")
    assert (answer.status, answer.json()) == (200, {"models": []})


def test_xgb_delete_unloaded_model(srv: Served) -> None:
    """XGB test_delete_unloaded_model."""
    assert srv.request("DELETE", "/models/non-existing-model").status == 404


@pytest.mark.parametrize("names", [["pickled_model"], ["pickled_model", "saved_booster"]])
def test_xgb_load_and_unload_models(srv: Served, names: list[str]) -> None:
    """XGB test_load_and_unload_model and test_load_and_unload_two_models (models mounted at
    ``/opt/ml/model``; the pickled one needs ``--allow-pickle``)."""
    for name in names:
        answer = srv.load(name, f"/opt/ml/model/{name}")
        assert (answer.status, answer.json()["status"]) == (200, "Workers scaled")
    for name in names:
        answer = srv.request("POST", f"/models/{name}/invoke", ROW, {"Content-Type": "text/csv"})
        assert answer.status == 200, answer.body
        json.loads(answer.body)
    for name in names:
        answer = srv.request("DELETE", f"/models/{name}")
        assert (answer.status, answer.json()["status"]) == (200, f'Model "{name}" unregistered')
        _error(srv.request("POST", f"/models/{name}/invoke", ROW, {"Content-Type": "text/csv"}),
               404, "ModelNotFoundException", f"Model not found: {name}")


def test_xgb_container_start_invocation_fail(srv: Served) -> None:
    """XGB test_container_start_invocation_fail."""
    answer = srv.request("POST", "/models/half_plus_three/invoke", b'{"instances": [1.0]}', JSON)
    assert (answer.status, answer.json()["message"]) == (404, "Model not found: half_plus_three")


def test_xgb_load_one_model_two_times(srv: Served) -> None:
    """XGB test_load_one_model_two_times."""
    assert srv.load("pickled_model", "/opt/ml/model/pickled_model").status == 200
    answer = srv.load("pickled_model", "/opt/ml/model/pickled_model")
    assert (answer.status, answer.json()["message"]) == (409, "Model pickled_model is already registered.")


# --- the runtime side: TargetModel is the artifact's key, literally --------------------------


def _runtime(url: str) -> Any:
    return boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x",
                        config=Config(retries={"total_max_attempts": 1}))


def test_target_model_without_the_archive_key_is_not_found(srv: Served) -> None:
    """SageMaker joins TargetModel to the S3 prefix: ``alpha`` is not ``alpha.tar.gz``."""
    client = _runtime(srv.url)
    with pytest.raises(client.exceptions.ValidationError) as info:
        client.invoke_endpoint(EndpointName="local-mme", TargetModel="alpha", Body=ROW, ContentType="text/csv")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "key: alpha)" in info.value.response["Error"]["Message"]
    assert srv.names() == []
    out = client.invoke_endpoint(EndpointName="local-mme", TargetModel="alpha.tar.gz", Body=ROW,
                                 ContentType="text/csv")
    assert out["Body"].read()
    with pytest.raises(client.exceptions.ValidationError):
        client.invoke_endpoint(EndpointName="local-mme", TargetModel="alpha", Body=ROW, ContentType="text/csv")
    assert srv.names() == ["alpha.tar.gz"]
    # Listed with a modelUrl that exists: the archive in the repository.
    (model,) = srv.request("GET", "/models").json()["models"]
    assert Path(model["modelUrl"]).is_file() and model["modelUrl"].endswith("/alpha.tar.gz")


def test_a_name_registered_through_the_container_is_not_a_target_model(srv: Served) -> None:
    """``POST /models`` keeps a model under ``model_name`` (an opaque name, the AWS contract
    says); the runtime's TargetModel still names artifacts only."""
    url = "/opt/ml/models/zeta/model"
    assert srv.load("alias-1", url).status == 200
    assert srv.request("GET", "/models/alias-1").json()["modelUrl"] == url
    assert srv.request("POST", "/models/alias-1/invoke", ROW, {"Content-Type": "text/csv"}).status == 200
    client = _runtime(srv.url)
    with pytest.raises(client.exceptions.ValidationError):
        client.invoke_endpoint(EndpointName="local-mme", TargetModel="alias-1", Body=ROW, ContentType="text/csv")
    out = client.invoke_endpoint(EndpointName="local-mme", TargetModel="zeta.tar.gz", Body=ROW,
                                 ContentType="text/csv")
    direct = srv.request("POST", "/models/alias-1/invoke", ROW, {"Content-Type": "text/csv"})
    assert out["Body"].read() == direct.body
    assert srv.names() == ["alias-1", "zeta.tar.gz"]


# --- deliberate differences ------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict_server(repo_dir: tuple[Path, ModelRepository]) -> Iterator[Served]:
    """``mmeperf serve`` with its defaults (no pickles) and a memory budget no model fits."""
    yield from _serve(*repo_dir, "--memory-budget", "1KiB")


def test_worker_failures(strict_server: Served) -> None:
    """MST testLoadingMemoryError (507) and testScaleModelFailure (500 ``Failed to start
    workers``); a pickle is refused without ``--allow-pickle`` (deliberate) and the name is free again."""
    srv = strict_server
    _error(srv.load("saved", "saved_booster"), 507, "InternalServerException", "Failed to start workers")
    _error(srv.load("pickled", "pickled_model"), 500, "InternalServerException", "Failed to start workers")
    assert srv.names() == []
