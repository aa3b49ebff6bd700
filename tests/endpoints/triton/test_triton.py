"""The triton endpoint: options, the metrics parser on Triton's own text, and a real tritonserver.

The real-server tests load a python-backend model (y = 2x + 1) through Triton's repository API,
invoke it over KServe v2 HTTP and read its Prometheus counters; they skip without a server binary.
"""

from __future__ import annotations

import io
import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from mmeperf.endpoints.triton import TritonEndpoint
from mmeperf.errors import ConfigurationError, EndpointNotReadyError
from mmeperf.repository import ModelRepository
from mmeperf.repository.triton import TritonTensor, python_config
from mmeperf.repository.triton.packaging import triton_model_folder
from tests.endpoints.triton.conftest import TritonServer

DATA = Path(__file__).parent / "data"

MODEL_PY = '''\
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "x").as_numpy()
            y = (2 * x + 1).astype(np.float32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("y", y)]))
        return responses
'''


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _kserve(data: list[float], shape: list[int]) -> bytes:
    return json.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": "FP32", "data": data}]}).encode()


def add_affine_model(repository: ModelRepository, name: str, tmp: Path) -> None:
    """A python-backend model y = 2x + 1 on FP32 [-1, 4], config from mmeperf.repository.triton."""
    artifact = tmp / f"{name}-artifact"
    artifact.mkdir()
    (artifact / "model.py").write_text(MODEL_PY)
    config = python_config(
        inputs=[TritonTensor(name="x", data_type="TYPE_FP32", dims=[-1, 4])],
        outputs=[TritonTensor(name="y", data_type="TYPE_FP32", dims=[-1, 4])],
    )
    folder = triton_model_folder(tmp / f"{name}-folder", config, artifact)
    repository.add(name, folder)


# --- without a server ----------------------------------------------------------------------------


def test_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="http://"):
        TritonEndpoint(url="https://example.com:8000")
    with pytest.raises(ConfigurationError, match="load_workers"):
        TritonEndpoint(load_workers=0)
    ep = TritonEndpoint(url="127.0.0.1:9000", name="t1", instance_type="ml.g5.xlarge")
    assert ep.url == "http://127.0.0.1:9000"
    info = ep.info()
    assert (info.kind, info.name, info.instance_type) == ("triton", "t1", "ml.g5.xlarge")


def test_deploy_refuses_the_sagemaker_layout(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path / "sm", layout="sagemaker")
    with pytest.raises(ConfigurationError, match="layout='triton'"):
        TritonEndpoint(url=f"127.0.0.1:{_closed_port()}").deploy(repo)


def test_no_server_is_a_result_or_a_typed_error(tmp_path: Path) -> None:
    ep = TritonEndpoint(url=f"127.0.0.1:{_closed_port()}")
    result = ep.invoke("m", _kserve([1, 2, 3, 4], [1, 4]), content_type="application/json")
    assert (result.status, result.error_code) == (0, "ConnectionError")
    repo = ModelRepository(tmp_path / "tr", layout="triton")
    add_affine_model(repo, "affine", tmp_path)
    with pytest.raises(EndpointNotReadyError, match="does not answer"):
        ep.deploy(repo)
    ep.delete()  # nothing deployed: a no-op


def test_bad_requests_are_refused_before_sending() -> None:
    ep = TritonEndpoint(url=f"127.0.0.1:{_closed_port()}")
    cases = [
        ("m", b"{not json", "application/json", None, 400),
        ("m", b"1,2,3", "text/csv", None, 415),
        ("m", _kserve([1, 2, 3, 4], [1, 4]), "application/json", "text/html", 406),
        ("a/b", _kserve([1, 2, 3, 4], [1, 4]), "application/json", None, 400),
    ]
    for target, body, content_type, accept, status in cases:
        result = ep.invoke(target, body, content_type=content_type, accept=accept)
        assert result.status == status, (target, content_type, result)
        assert result.error_message


# --- a real tritonserver ---------------------------------------------------------------------------


def _wait_for_count(ep: TritonEndpoint, expected: int, timeout_s: float = 5.0) -> int:
    # Triton bumps its counters as each response completes, which may trail the client by a hair.
    deadline = time.monotonic() + timeout_s
    while True:
        seen = ep.metrics().invocations
        if seen >= expected or time.monotonic() > deadline:
            return seen
        time.sleep(0.02)


def test_real_server_deploy_invoke_metrics_delete(triton_server: TritonServer, tmp_path: Path) -> None:
    # One model in the server's own folder (loaded by name), one elsewhere (config and files sent).
    served = ModelRepository(triton_server.repository, layout="triton")
    add_affine_model(served, "affine", tmp_path)
    other = ModelRepository(tmp_path / "other", layout="triton")
    add_affine_model(other, "affine-copy", tmp_path)
    ep = TritonEndpoint(url=triton_server.url, metrics_url=triton_server.metrics_url, name="t")
    ep2 = TritonEndpoint(url=triton_server.url, metrics_url=triton_server.metrics_url, name="t2")

    assert ep.loaded_models() == []
    ep.deploy(served)
    ep2.deploy(other)
    assert ep.loaded_models() == ["affine"]
    assert ep2.loaded_models() == ["affine", "affine-copy"]
    before = ep.metrics()
    assert before.loaded_model_count == 1

    x = np.array([[0.5, -1.0, 2.0, 3.25], [10.0, 0.0, -7.5, 1e-3]], dtype=np.float32)
    expected = 2 * x + 1
    sent = 0
    answer = ep.invoke("affine", _kserve(x.ravel().tolist(), [2, 4]), content_type="application/json")
    sent += 1
    assert answer.ok and answer.content_type == "application/json", answer
    assert np.array_equal(np.asarray(json.loads(answer.body), dtype=np.float32), expected)
    assert answer.latency_s > 0
    answer = ep.invoke("affine", _npy(x), content_type="application/x-npy", accept="application/x-npy")
    sent += 1
    assert answer.ok, answer
    y = np.load(io.BytesIO(answer.body))
    assert y.dtype == np.float32 and np.array_equal(y, expected)
    # A nested list of ints, one sample without its batch axis: cast and batched per metadata.
    answer = ep2.invoke("affine-copy", b"[1, 2, 3, 4]", content_type="application/json")
    sent += 1
    assert answer.ok, answer
    assert json.loads(answer.body) == [[3.0, 5.0, 7.0, 9.0]]

    unknown = ep.invoke("no-such-model", _kserve([1, 2, 3, 4], [1, 4]), content_type="application/json")
    assert unknown.status == 404 and unknown.error_code == "ValidationError"
    assert unknown.error_message and "unknown model" in unknown.error_message
    wrong_shape = ep.invoke("affine", _kserve([1, 2, 3], [1, 3]), content_type="application/json")
    assert wrong_shape.status == 400 and wrong_shape.error_code == "ValidationError"
    assert wrong_shape.error_message and "shape" in wrong_shape.error_message
    garbage = ep.invoke("affine", b"\x00garbage", content_type="application/json")
    assert garbage.status == 400 and garbage.error_code == "ValidationError"

    seen = _wait_for_count(ep, before.invocations + sent)
    after = ep.metrics()
    assert seen - before.invocations == sent
    assert after.invocations - before.invocations == sent  # the refused requests are in no counter
    assert after.invocation_5xx_errors == before.invocation_5xx_errors
    assert after.model_latency.count - before.model_latency.count == sent
    assert after.model_latency.sum_us > before.model_latency.sum_us
    assert after.cpu_utilization is not None and after.memory_utilization is not None

    ep.delete()
    ep.delete()  # idempotent
    assert ep2.loaded_models() == ["affine-copy"]
    gone = ep.invoke("affine", _kserve([1, 2, 3, 4], [1, 4]), content_type="application/json")
    assert gone.status == 404
    ep2.delete()
    assert ep2.loaded_models() == []
