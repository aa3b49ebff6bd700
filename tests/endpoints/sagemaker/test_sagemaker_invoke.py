"""invoke() through the real boto3 runtime client: errors become results, and nothing is retried.

A small HTTP server on 127.0.0.1 answers the way SageMaker's runtime does (status,
``x-amzn-ErrorType``, JSON message) and counts the requests that reach it.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from mmeperf.endpoints.sagemaker import SageMakerEndpoint
from mmeperf.protocol import CacheState

ANSWERS = {
    "bad.tar.gz": (400, "ValidationError"),
    "broken.tar.gz": (424, "ModelError"),
    "loading.tar.gz": (429, "ModelNotReadyException"),
    "down.tar.gz": (503, "ServiceUnavailable"),
    "slow-down.tar.gz": (400, "ThrottlingException"),
    "oops.tar.gz": (500, "InternalFailure"),
}


class _Runtime(BaseHTTPRequestHandler):
    hits: ClassVar[Counter[str]] = Counter()

    def do_POST(self) -> None:
        target = self.headers.get("X-Amzn-SageMaker-Target-Model", "")
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).hits[target] += 1
        if target in ANSWERS:
            status, code = ANSWERS[target]
            payload = json.dumps({"message": f"{code} for {target}"}).encode()
            self.send_response(status)
            self.send_header("x-amzn-ErrorType", f"{code}:http://internal.amazon.com/coral/com.amazon.sagemaker/")
            self.send_header("Content-Type", "application/json")
        else:
            status, payload = 200, b"0.25\n" if body else b""
            self.send_response(status)
            self.send_header("Content-Type", "text/csv")
            self.send_header("x-mmeperf-cache", "hit")
            self.send_header("x-mmeperf-model-latency-us", "1500")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def runtime_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Runtime)
    _Runtime.hits.clear()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _endpoint(url: str) -> SageMakerEndpoint:
    return SageMakerEndpoint(name="churn", endpoint_urls={"sagemaker-runtime": url})


def test_errors_are_results_with_status_and_code_and_never_retried(aws: str, runtime_url: str) -> None:
    ep = _endpoint(runtime_url)
    for target, (status, code) in ANSWERS.items():
        result = ep.invoke(target, b"1,2,3")
        assert (result.status, result.error_code, result.ok) == (status, code, False), target
        assert target in (result.error_message or "")
    assert _Runtime.hits == Counter({target: 1 for target in ANSWERS})  # one request each, no retries


def test_success_reads_the_body_and_the_mme_headers(aws: str, runtime_url: str) -> None:
    result = _endpoint(runtime_url).invoke("churn-xgb-CA.tar.gz", b"1,2,3")
    assert (result.status, result.body, result.content_type) == (200, b"0.25\n", "text/csv")
    assert result.cache is CacheState.HIT and result.model_latency_s == pytest.approx(0.0015)
    assert result.latency_s > 0


def test_unreachable_endpoint_is_a_connection_failure(aws: str) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = _endpoint(f"http://127.0.0.1:{port}").invoke("churn-xgb-CA.tar.gz", b"1")
    assert (result.status, result.error_code) == (0, "ConnectionError")


def test_client_side_validation_is_a_400_result(aws: str, runtime_url: str) -> None:
    result = _endpoint(runtime_url).invoke("", b"1")
    assert (result.status, result.error_code) == (400, "ValidationError")
