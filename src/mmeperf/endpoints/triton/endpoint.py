"""``TritonEndpoint``: a running Triton Inference Server as an Endpoint plugin (kind ``triton``).

Loads a Triton-layout repository through :mod:`.control`, invokes with :mod:`.kserve` requests
over the shared keep-alive transport, and reads :mod:`.prometheus` metrics. It never starts or
stops the server.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from mmeperf.endpoints._http import (
    NO_ANSWER,
    HttpClient,
    bracket,
    is_loopback,
    no_answer,
    parse_host_port,
)
from mmeperf.endpoints.base import Endpoint, EndpointInfo, InvokeResult
from mmeperf.endpoints.triton.control import RepositoryControl
from mmeperf.endpoints.triton.kserve import (
    JSON,
    ModelMetadata,
    binary_request,
    decode_response,
    error_code,
    error_message,
    is_kserve_request,
    model_path_name,
)
from mmeperf.endpoints.triton.prometheus import parse_triton_metrics
from mmeperf.errors import (
    ConfigurationError,
    EndpointError,
    EndpointNotReadyError,
    MmeperfError,
)

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, Self

    from mmeperf.metrics import ServerMetrics
    from mmeperf.repository import ModelRepository

__all__ = ["TritonEndpoint"]


class TritonEndpoint(Endpoint):
    """A running Triton server (``--model-control-mode=explicit``) that mmeperf loads models into.

    Example::

        repo = ModelRepository("./triton-models", layout="triton")
        with TritonEndpoint(url="127.0.0.1:8000").deploy(repo) as ep:
            ep.invoke("resnet50", body, content_type="application/x-npy")

    ``deploy`` loads each model through ``POST /v2/repository/models/{name}/load``: by name when
    the server's own repository lists it, otherwise by sending its config and files in the
    request (``upload=True`` always sends them; ``upload=False`` never does). ``delete`` unloads
    exactly what ``deploy`` loaded; the server itself is never started or stopped here.
    """

    kind = "triton"
    requires = ("tritonclient",)
    extra = "triton"

    def __init__(
        self,
        *,
        url: str = "127.0.0.1:8000",
        metrics_url: str | None = None,
        name: str = "triton",
        instance_type: str | None = None,
        vcpus: int | None = None,
        upload: bool | None = None,
        load_workers: int = 4,
        request_timeout_s: float = 60.0,
        load_timeout_s: float = 600.0,
    ) -> None:
        """``url``: Triton's HTTP endpoint (``host:port``, default port 8000). ``metrics_url``:
        its Prometheus endpoint (default: the same host, port 8002, ``/metrics``). ``vcpus``
        converts ``nv_cpu_utilization`` to SageMaker's 100-per-core percent (default: the
        instance type's vCPUs, or this machine's cores when the server is on loopback).
        """
        self._http = HttpClient.from_url(url, default_port=8000, timeout_s=request_timeout_s, what="Triton")
        if metrics_url is None:
            metrics_url = f"http://{bracket(self._http.host)}:8002/metrics"
        m_host, m_port, m_path = parse_host_port(metrics_url, 8002, what="Triton")
        self._metrics_http = HttpClient(m_host, m_port, timeout_s=request_timeout_s)
        self._metrics_path = m_path or "/metrics"
        if load_workers < 1:
            raise ConfigurationError(f"load_workers must be at least 1; received {load_workers}")
        if vcpus is not None and vcpus < 1:
            raise ConfigurationError(f"vcpus must be at least 1; received {vcpus}")
        self.name = name
        self.instance_type = instance_type
        self.upload = upload
        self.load_workers = load_workers
        self.request_timeout_s = request_timeout_s
        self.load_timeout_s = load_timeout_s
        self.vcpus = vcpus if vcpus is not None else self._default_vcpus(instance_type)
        self.control = RepositoryControl(self._http, load_timeout_s=load_timeout_s)
        self._deployed: list[str] = []
        self._metadata: dict[str, ModelMetadata] = {}
        self._lock = threading.Lock()

    def _default_vcpus(self, instance_type: str | None) -> int | None:
        if instance_type is not None:
            from mmeperf.instances import DEFAULT_CATALOG

            if instance_type in DEFAULT_CATALOG:
                return DEFAULT_CATALOG.get(instance_type).vcpus
        return os.cpu_count() if is_loopback(self._http.host) else None

    @property
    def url(self) -> str:
        """Base URL of Triton's HTTP API."""
        return self._http.url

    def _close_connections(self) -> None:
        self._http.close()
        self._metrics_http.close()

    # --- deploy and delete ------------------------------------------------------------------

    def server_metadata(self) -> dict[str, Any]:
        """``GET /v2``: Triton's name, version and extensions."""
        return self.control.server_metadata()

    def repository_index(self, *, ready: bool = False) -> list[dict[str, Any]]:
        """``POST /v2/repository/index``: the models in the server's own repository folders."""
        return self.control.index(ready=ready)

    def deploy(self, repository: ModelRepository) -> Self:
        """Load every model of a Triton-layout ``repository`` into the server; return when ready.

        ConfigurationError for another layout; EndpointNotReadyError when the server does not
        answer; EndpointError with Triton's message when a load fails (models loaded by this
        call are unloaded again first).
        """
        self.check_dependencies()
        layout = getattr(repository, "layout", None)
        if layout != "triton":
            raise ConfigurationError(
                f"The triton endpoint serves repositories in the Triton layout "
                f"(ModelRepository(url, layout='triton')); received layout={layout!r}"
            )
        names = repository.names()
        if not names:
            raise ConfigurationError(f"Repository {repository.url!r} holds no models")
        try:
            status, _, _ = self._http.request("GET", "/v2/health/live", timeout=10)
        except NO_ANSWER as exc:
            raise EndpointNotReadyError(f"Triton at {self.url} does not answer: {exc}") from exc
        if status != 200:
            raise EndpointNotReadyError(f"Triton at {self.url} is not live (GET /v2/health/live: {status})")
        on_server = {str(m["name"]) for m in self.repository_index()}
        if self.upload is False:
            missing = sorted(set(names) - on_server)
            if missing:
                raise ConfigurationError(
                    f"upload=False, but the server's repository lacks {missing[:5]}"
                    f"{' ...' if len(missing) > 5 else ''}: point --model-repository at "
                    f"{repository.url!r}, or let mmeperf send the files (upload=None/True)"
                )
        loaded: list[str] = []
        lock = threading.Lock()

        def load(name: str) -> None:
            by_name = name in on_server and self.upload is not True
            self.control.load(repository, name, send_files=not by_name)
            with lock:
                loaded.append(name)

        try:
            with ThreadPoolExecutor(max_workers=min(self.load_workers, len(names))) as pool:
                for future in [pool.submit(load, n) for n in names]:
                    future.result()
        except BaseException:
            self._unload(loaded)
            raise
        with self._lock:
            self._deployed.extend(n for n in names if n not in self._deployed)
        return self

    def _unload(self, names: Iterable[str]) -> None:
        for name in names:
            if self.control.unload(name):
                self._metadata.pop(name, None)

    def delete(self) -> None:
        """Unload the models ``deploy`` loaded (idempotent); the server keeps running."""
        with self._lock:
            names, self._deployed = self._deployed, []
        try:
            self._unload(names)
        finally:
            self._close_connections()

    # --- invoke -----------------------------------------------------------------------------

    def model_metadata(self, name: str) -> ModelMetadata | InvokeResult:
        """The model's inputs (cached), or the failed answer as an InvokeResult."""
        cached = self._metadata.get(name)
        if cached is not None:
            return cached
        started = time.perf_counter()
        try:
            status, headers, data = self._http.request("GET", f"/v2/models/{model_path_name(name)}")
        except NO_ANSWER as exc:
            return no_answer(exc, started)
        if status != 200:
            return self._failed(status, headers, data, time.perf_counter() - started)
        meta = ModelMetadata(json.loads(data))
        self._metadata[name] = meta
        return meta

    @staticmethod
    def _failed(status: int, headers: dict[str, str], data: bytes, latency: float) -> InvokeResult:
        return InvokeResult(
            status=status, body=data, content_type=headers.get("content-type", ""), latency_s=latency,
            error_code=error_code(status), error_message=error_message(data), headers=headers,
        )

    @staticmethod
    def _refused(exc: MmeperfError) -> InvokeResult:
        return InvokeResult(status=exc.http_status, body=b"", content_type="", latency_s=0.0,
                            error_code=exc.error_code, error_message=str(exc))

    def invoke(
        self,
        target_model: str,
        body: bytes,
        *,
        content_type: str = JSON,
        accept: str | None = None,
    ) -> InvokeResult:
        """One KServe v2 ``infer``; the answer is encoded like the local MME's tensor backends.

        Bodies: a KServe v2 JSON request (sent as is), or JSON / NPY / NPZ tensors as
        :func:`mmeperf.backends.tensors.decode_tensors` reads them (sent with Triton's binary
        tensor extension, named and cast per the model's metadata). Answers: the first output
        as a JSON nested array, NPY, or every output as NPZ (``accept``). ``latency_s`` times the
        HTTP exchange to the last byte of Triton's body; failures are results, never raised.
        """
        from mmeperf.backends.codecs import media_type
        from mmeperf.backends.tensors import (
            JSON_TYPE,
            NPY_TYPE,
            NPZ_TYPE,
            decode_tensors,
            encode_tensors,
            negotiate,
        )

        try:
            path = f"/v2/models/{model_path_name(target_model)}/infer"
            negotiate(accept, (JSON_TYPE, NPY_TYPE, NPZ_TYPE))
            kserve = media_type(content_type) == JSON_TYPE and is_kserve_request(body)
            if kserve:
                payload, headers = body, {"Content-Type": JSON}
            else:
                inputs = decode_tensors(body, content_type)
                meta = self.model_metadata(target_model)
                if isinstance(meta, InvokeResult):
                    return meta
                payload, headers = binary_request(meta, target_model, inputs)
        except MmeperfError as exc:
            return self._refused(exc)
        started = time.perf_counter()
        try:
            status, resp_headers, data = self._http.request("POST", path, payload, headers)
        except NO_ANSWER as exc:
            return no_answer(exc, started)
        latency = time.perf_counter() - started
        if status != 200:
            if status == 404:
                self._metadata.pop(target_model, None)  # unloaded: its metadata may change
            return self._failed(status, resp_headers, data, latency)
        try:
            encoded = encode_tensors(decode_response(resp_headers, data), accept)
        except (ValueError, KeyError, TypeError, MmeperfError) as exc:
            return InvokeResult(
                status=502, body=data, content_type=resp_headers.get("content-type", ""), latency_s=latency,
                error_code="InternalFailure", error_message=f"Unreadable answer from Triton: {exc}",
                headers=resp_headers,
            )
        return InvokeResult(status=200, body=encoded.body, content_type=encoded.content_type,
                            latency_s=latency, headers=resp_headers)

    # --- metrics and info -------------------------------------------------------------------

    def loaded_models(self) -> list[str]:
        """READY models: the server repository's index, plus models deployed by sending files
        (Triton's index lists only models in its repository folders)."""
        ready = {str(m["name"]) for m in self.repository_index(ready=True) if m.get("state") == "READY"}
        with self._lock:
            extra = [n for n in self._deployed if n not in ready]
        for name in extra:
            try:
                if self.control.is_ready(name):
                    ready.add(name)
            except NO_ANSWER as exc:
                raise EndpointError(f"Triton at {self.url} did not answer: {exc}") from exc
        return sorted(ready)

    def metrics_text(self) -> str:
        """Triton's Prometheus text, as served."""
        http, path = self._metrics_http, self._metrics_path
        where = f"{http.host}:{http.port}{path}"
        try:
            status, _, data = http.request("GET", path, timeout=30)
        except NO_ANSWER as exc:
            raise EndpointError(f"Triton's metrics at {where} did not answer: {exc}") from exc
        if status != 200:
            raise EndpointError(f"Triton's metrics at {where} answered {status}")
        return data.decode("utf-8", "replace")

    def metrics(self) -> ServerMetrics:
        """A cumulative snapshot (see :func:`parse_triton_metrics`); LoadedModelCount counts
        the READY models of :meth:`loaded_models`."""
        text = self.metrics_text()
        return parse_triton_metrics(text, loaded_model_count=len(self.loaded_models()), vcpus=self.vcpus)

    def info(self) -> EndpointInfo:
        return EndpointInfo(kind=self.kind, name=self.name, instance_type=self.instance_type)
