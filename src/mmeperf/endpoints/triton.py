"""The ``triton`` endpoint: a Triton Inference Server driven over its HTTP (KServe v2) API.

Loads a Triton-layout repository through Triton's model-repository API (explicit model control),
invokes with KServe v2 requests, reads Triton's Prometheus metrics into :class:`ServerMetrics`,
and unloads what it loaded. It never starts or stops the server.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import numpy as np

from mmeperf.endpoints.base import Endpoint, EndpointInfo, InvokeResult
from mmeperf.errors import (
    ConfigurationError,
    EndpointError,
    EndpointNotReadyError,
    MmeperfError,
    PayloadError,
)
from mmeperf.metrics import LatencyStat, ServerMetrics

if TYPE_CHECKING:
    from typing import Self

    from mmeperf._types import Array, Tensors
    from mmeperf.repository import ModelRepository

__all__ = ["ModelMetadata", "TritonEndpoint", "parse_triton_metrics"]

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
#: Header of Triton's binary tensor extension: byte length of the JSON part of the body.
_HEADER_LENGTH = "inference-header-content-length"
_JSON = "application/json"


def _host_port(url: str, default_port: int) -> tuple[str, int, str]:
    """``"127.0.0.1:8000"`` or ``"http://host:8000/prefix"`` -> (host, port, path prefix)."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"Expected a Triton URL like '127.0.0.1:8000', received {url!r}")
    raw = url.strip()
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    if parts.scheme != "http":
        raise ConfigurationError(
            f"Expected an http:// Triton URL, received {url!r} (https needs a proxy in front)"
        )
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise ConfigurationError(f"Invalid port in Triton URL {url!r}: {exc}") from exc
    if not parts.hostname:
        raise ConfigurationError(f"Expected a host in Triton URL {url!r}")
    return parts.hostname, port, parts.path.rstrip("/")


def _model_path_name(name: str) -> str:
    """A model name as one URL path segment; InvalidModelName-like PayloadError when unusable."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name:
        raise PayloadError(f"Invalid target model {name!r}: expected a Triton model name")
    if any(ord(c) < 32 for c in name):
        raise PayloadError(f"Invalid target model {name!r}: control characters")
    return quote(name, safe="")


def _error_message(data: bytes) -> str:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return data[:500].decode("utf-8", "replace")
    if isinstance(doc, dict) and "error" in doc:
        return str(doc["error"])
    return data[:500].decode("utf-8", "replace")


def _error_code(status: int) -> str:
    # The SageMaker runtime's codes, so reports group Triton's failures like SageMaker's.
    if 400 <= status < 500:
        return "ValidationError"
    if status == 503:
        return "ServiceUnavailable"
    return "InternalFailure"


class ModelMetadata:
    """What ``GET /v2/models/{name}`` says: input names, datatypes and shapes (batch axis included)."""

    __slots__ = ("inputs",)

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.inputs: dict[str, tuple[str, list[int]]] = {
            str(t["name"]): (str(t["datatype"]), [int(d) for d in t["shape"]])
            for t in doc.get("inputs", [])
        }


# --- metrics -----------------------------------------------------------------------------------


def _sums(text: str) -> dict[str, float]:
    """Each metric family's samples summed over labels (models, versions, reasons, GPUs)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                # Counters' samples carry a ``_total`` suffix the family name does not.
                if sample.name in (family.name, family.name + "_total"):
                    out[family.name] = out.get(family.name, 0.0) + float(sample.value)
    except ValueError as exc:
        raise EndpointError(f"Triton's /metrics is not Prometheus text: {exc}") from exc
    return out


def _per_gpu(text: str, name: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == name:
            for sample in family.samples:
                values[sample.labels.get("gpu_uuid", "")] = float(sample.value)
    return values


def parse_triton_metrics(
    text: str,
    *,
    loaded_model_count: int = 0,
    vcpus: int | None = None,
    timestamp: float | None = None,
) -> ServerMetrics:
    """Triton's Prometheus text as a cumulative :class:`ServerMetrics` (CloudWatch names).

    Invocations are ``nv_inference_request_success + nv_inference_request_failure``; failures
    count as 5xx (Triton counts only requests that reached a model's scheduler: requests it
    refused with 400/404 are in no counter). ModelLatency is ``nv_inference_request_duration_us``
    (the whole request inside Triton, as SageMaker's ModelLatency is the whole container call) and
    OverheadLatency is ``nv_inference_queue_duration_us``, both per successful request; Triton
    keeps no maxima, so ``max_us`` stays 0. CPU utilization is converted to SageMaker's 100 per
    core when ``vcpus`` is known (else None); GPU figures are summed over GPUs (100 per GPU).
    """
    sums = _sums(text)
    success = int(sums.get("nv_inference_request_success", 0))
    failure = int(sums.get("nv_inference_request_failure", 0))
    cpu: float | None = None
    if "nv_cpu_utilization" in sums and vcpus:
        cpu = sums["nv_cpu_utilization"] * 100.0 * vcpus
    memory: float | None = None
    total_memory = sums.get("nv_cpu_memory_total_bytes", 0.0)
    if total_memory > 0:
        memory = 100.0 * sums.get("nv_cpu_memory_used_bytes", 0.0) / total_memory
    gpu: float | None = None
    if "nv_gpu_utilization" in sums:
        gpu = 100.0 * sums["nv_gpu_utilization"]
    gpu_memory: float | None = None
    totals = _per_gpu(text, "nv_gpu_memory_total_bytes") if "nv_gpu_memory_total_bytes" in sums else {}
    if totals:
        used = _per_gpu(text, "nv_gpu_memory_used_bytes")
        gpu_memory = sum(100.0 * used.get(uuid, 0.0) / total for uuid, total in totals.items() if total > 0)
    return ServerMetrics(
        timestamp=time.time() if timestamp is None else timestamp,
        invocations=success + failure,
        invocation_5xx_errors=failure,
        loaded_model_count=loaded_model_count,
        model_latency=LatencyStat(count=success, sum_us=sums.get("nv_inference_request_duration_us", 0.0)),
        overhead_latency=LatencyStat(count=success, sum_us=sums.get("nv_inference_queue_duration_us", 0.0)),
        cpu_utilization=cpu,
        memory_utilization=memory,
        gpu_utilization=gpu,
        gpu_memory_utilization=gpu_memory,
    )


# --- the endpoint ------------------------------------------------------------------------------


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
        self._host, self._port, self._prefix = _host_port(url, 8000)
        if metrics_url is None:
            metrics_url = f"http://{self._bracket(self._host)}:8002/metrics"
        m_host, m_port, m_path = _host_port(metrics_url, 8002)
        self._metrics_target = (m_host, m_port, m_path or "/metrics")
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
        self._deployed: list[str] = []
        self._metadata: dict[str, ModelMetadata] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._conns: list[http.client.HTTPConnection] = []

    @staticmethod
    def _bracket(host: str) -> str:
        return f"[{host}]" if ":" in host else host

    def _default_vcpus(self, instance_type: str | None) -> int | None:
        if instance_type is not None:
            from mmeperf.instances import DEFAULT_CATALOG

            if instance_type in DEFAULT_CATALOG:
                return DEFAULT_CATALOG.get(instance_type).vcpus
        return os.cpu_count() if self._host in _LOOPBACK else None

    @property
    def url(self) -> str:
        """Base URL of Triton's HTTP API."""
        return f"http://{self._bracket(self._host)}:{self._port}{self._prefix}"

    # --- HTTP -------------------------------------------------------------------------------

    def _conn(self, host: str, port: int, timeout: float) -> http.client.HTTPConnection:
        conns: dict[tuple[str, int], http.client.HTTPConnection] = self._local.__dict__.setdefault("conns", {})
        conn = conns.get((host, port))
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
            conns[(host, port)] = conn
            with self._lock:
                self._conns.append(conn)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
        target: tuple[str, int] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on this thread's keep-alive connection; reconnects once if it was closed."""
        host, port = target or (self._host, self._port)
        full = path if target else self._prefix + path
        for attempt in (0, 1):
            conn = self._conn(host, port, timeout or self.request_timeout_s)
            try:
                conn.request(method, full, body=body, headers=dict(headers or {}))
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady):
                conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _call(self, method: str, path: str, doc: Any = None, *, timeout: float | None = None,
              what: str) -> Any:
        """A control-plane JSON call; EndpointError naming ``what`` on any failure."""
        body = None if doc is None else json.dumps(doc).encode()
        headers = {"Content-Type": _JSON} if body is not None else {}
        try:
            status, _, data = self._request(method, path, body, headers, timeout=timeout)
        except (OSError, http.client.HTTPException) as exc:
            raise EndpointError(f"{what}: Triton at {self.url} did not answer ({exc})") from exc
        if status != 200:
            raise EndpointError(f"{what}: Triton answered {status}: {_error_message(data)}")
        return json.loads(data) if data.strip() else None

    def _close_connections(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    # --- deploy and delete ------------------------------------------------------------------

    def server_metadata(self) -> dict[str, Any]:
        """``GET /v2``: Triton's name, version and extensions."""
        doc: dict[str, Any] = self._call("GET", "/v2", what="Reading Triton's server metadata")
        return doc

    def repository_index(self, *, ready: bool = False) -> list[dict[str, Any]]:
        """``POST /v2/repository/index``: the models in the server's own repository folders."""
        doc = self._call("POST", "/v2/repository/index", {"ready": ready} if ready else {},
                         what="Reading Triton's repository index")
        return list(doc or [])

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
            status, _, _ = self._request("GET", "/v2/health/live", timeout=10)
        except (OSError, http.client.HTTPException) as exc:
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
            self._load(repository, name, send_files=not by_name)
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

    def _load(self, repository: ModelRepository, name: str, *, send_files: bool) -> None:
        path = f"/v2/repository/models/{quote(name, safe='')}/load"
        doc: dict[str, Any] = {}
        if send_files:
            with TemporaryDirectory(prefix="mmeperf-triton-") as tmp:
                doc = {"parameters": self._override(repository.fetch(name, tmp), name)}
        self._call("POST", path, doc, timeout=self.load_timeout_s, what=f"Loading model {name!r}")
        status, _, data = self._request("GET", f"/v2/models/{quote(name, safe='')}/ready", timeout=30)
        if status != 200:
            raise EndpointError(f"Model {name!r} loaded but is not ready ({status}): {_error_message(data)}")

    @staticmethod
    def _override(folder: Path, name: str) -> dict[str, str]:
        """Triton's load parameters: the config as JSON (named ``name``) and every file base64."""
        from mmeperf._deps import require
        from mmeperf.repository.triton import CONFIG_FILE, parse_config

        json_format = require(
            "google.protobuf.json_format", what="Sending Triton configs", extra="triton", package="protobuf"
        )

        config_path = folder / CONFIG_FILE
        if not config_path.is_file():
            raise ConfigurationError(f"Model {name!r} has no {CONFIG_FILE} (not a Triton model folder)")
        config = parse_config(config_path.read_text())
        config.name = name  # copies share one config file; Triton wants the loaded name
        params = {"config": json_format.MessageToJson(config)}
        for file in sorted(folder.rglob("*")):
            if file.is_file() and file != config_path:
                rel = file.relative_to(folder).as_posix()
                params[f"file:{rel}"] = base64.b64encode(file.read_bytes()).decode("ascii")
        return params

    def _unload(self, names: Iterable[str]) -> None:
        for name in names:
            try:
                status, _, data = self._request(
                    "POST", f"/v2/repository/models/{quote(name, safe='')}/unload", b"{}",
                    {"Content-Type": _JSON}, timeout=self.load_timeout_s,
                )
            except (OSError, http.client.HTTPException):
                continue  # the server is gone: nothing left to unload there
            if status != 200 and "not found" not in _error_message(data).lower():
                raise EndpointError(f"Unloading model {name!r}: Triton answered {status}: {_error_message(data)}")
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
            status, headers, data = self._request("GET", f"/v2/models/{_model_path_name(name)}")
        except (OSError, http.client.HTTPException) as exc:
            return self._no_answer(exc, started)
        if status != 200:
            return self._failed(status, headers, data, time.perf_counter() - started)
        meta = ModelMetadata(json.loads(data))
        self._metadata[name] = meta
        return meta

    @staticmethod
    def _no_answer(exc: BaseException, started: float) -> InvokeResult:
        # No HTTP answer at all (refused, reset, timed out): status 0, like Locust.
        code = "Timeout" if isinstance(exc, TimeoutError) else "ConnectionError"
        return InvokeResult(status=0, body=b"", content_type="", latency_s=time.perf_counter() - started,
                            error_code=code, error_message=str(exc) or repr(exc))

    @staticmethod
    def _failed(status: int, headers: dict[str, str], data: bytes, latency: float) -> InvokeResult:
        return InvokeResult(
            status=status, body=data, content_type=headers.get("content-type", ""), latency_s=latency,
            error_code=_error_code(status), error_message=_error_message(data), headers=headers,
        )

    @staticmethod
    def _refused(exc: MmeperfError) -> InvokeResult:
        return InvokeResult(status=exc.http_status, body=b"", content_type="", latency_s=0.0,
                            error_code=exc.error_code, error_message=str(exc))

    def _binary_request(self, name: str, inputs: Tensors | Array) -> tuple[bytes, dict[str, str]] | InvokeResult:
        """Decoded tensors as a binary-extension KServe request, named and cast per the model."""
        from mmeperf.backends.tensors import kserve_datatype, numpy_dtype

        meta = self.model_metadata(name)
        if isinstance(meta, InvokeResult):
            return meta
        if isinstance(inputs, np.ndarray):
            if len(meta.inputs) != 1:
                raise PayloadError(
                    f"Model {name!r} takes {len(meta.inputs)} inputs ({', '.join(meta.inputs)}); "
                    f"send named tensors (JSON object, NPZ or a KServe v2 request)"
                )
            inputs = {next(iter(meta.inputs)): inputs}
        header_inputs: list[dict[str, Any]] = []
        chunks: list[bytes] = []
        for input_name, value in inputs.items():
            array = np.asarray(value)
            declared = meta.inputs.get(input_name)
            if declared is not None:
                datatype, shape = declared
                try:
                    wanted = numpy_dtype(datatype)
                except PayloadError:
                    wanted = array.dtype  # BYTES and friends: Triton checks them
                if array.dtype != wanted and np.can_cast(array.dtype, wanted, casting="same_kind"):
                    array = array.astype(wanted)
                if array.ndim == len(shape) - 1 and shape and shape[0] == -1:
                    array = array[np.newaxis]  # one sample without its batch axis gets one
            raw = np.ascontiguousarray(array).tobytes()
            header_inputs.append({
                "name": input_name,
                "shape": [int(d) for d in array.shape],
                "datatype": kserve_datatype(array.dtype),
                "parameters": {"binary_data_size": len(raw)},
            })
            chunks.append(raw)
        header = json.dumps(
            {"inputs": header_inputs, "parameters": {"binary_data_output": True}}, separators=(",", ":")
        ).encode()
        headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))}
        return b"".join([header, *chunks]), headers

    @staticmethod
    def _outputs(headers: Mapping[str, str], data: bytes) -> Tensors:
        """A KServe v2 response (JSON, or JSON + binary tensors) as named arrays."""
        from mmeperf.backends.tensors import numpy_dtype

        length = headers.get(_HEADER_LENGTH)
        split = int(length) if length is not None else len(data)
        doc = json.loads(data[:split])
        offset = split
        out: Tensors = {}
        for item in doc.get("outputs", []):
            dtype = numpy_dtype(str(item["datatype"]))
            shape = [int(d) for d in item["shape"]]
            size = (item.get("parameters") or {}).get("binary_data_size")
            if size is not None:
                array = np.frombuffer(data, dtype=dtype, count=int(size) // dtype.itemsize, offset=offset)
                offset += int(size)
            else:
                array = np.asarray(item["data"], dtype=dtype)
            out[str(item["name"])] = array.reshape(shape)
        return out

    def invoke(
        self,
        target_model: str,
        body: bytes,
        *,
        content_type: str = _JSON,
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
            path = f"/v2/models/{_model_path_name(target_model)}/infer"
            negotiate(accept, (JSON_TYPE, NPY_TYPE, NPZ_TYPE))
            kserve = False
            if media_type(content_type) == JSON_TYPE:
                try:
                    doc = json.loads(body)
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise PayloadError(f"Malformed JSON body: {exc}") from exc
                kserve = isinstance(doc, dict) and isinstance(doc.get("inputs"), list)
            if kserve:
                request: tuple[bytes, dict[str, str]] | InvokeResult = (body, {"Content-Type": _JSON})
            else:
                request = self._binary_request(target_model, decode_tensors(body, content_type))
        except MmeperfError as exc:
            return self._refused(exc)
        if isinstance(request, InvokeResult):
            return request
        payload, headers = request
        started = time.perf_counter()
        try:
            status, resp_headers, data = self._request("POST", path, payload, headers)
        except (OSError, http.client.HTTPException) as exc:
            return self._no_answer(exc, started)
        latency = time.perf_counter() - started
        if status != 200:
            if status == 404:
                self._metadata.pop(target_model, None)  # unloaded: its metadata may change
            return self._failed(status, resp_headers, data, latency)
        try:
            encoded = encode_tensors(self._outputs(resp_headers, data), accept)
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
                status, _, _ = self._request("GET", f"/v2/models/{quote(name, safe='')}/ready", timeout=30)
            except (OSError, http.client.HTTPException) as exc:
                raise EndpointError(f"Triton at {self.url} did not answer: {exc}") from exc
            if status == 200:
                ready.add(name)
        return sorted(ready)

    def metrics_text(self) -> str:
        """Triton's Prometheus text, as served."""
        host, port, path = self._metrics_target
        try:
            status, _, data = self._request("GET", path, timeout=30, target=(host, port))
        except (OSError, http.client.HTTPException) as exc:
            raise EndpointError(f"Triton's metrics at {host}:{port}{path} did not answer: {exc}") from exc
        if status != 200:
            raise EndpointError(f"Triton's metrics at {host}:{port}{path} answered {status}")
        return data.decode("utf-8", "replace")

    def metrics(self) -> ServerMetrics:
        """A cumulative snapshot (see :func:`parse_triton_metrics`); LoadedModelCount counts
        the READY models of :meth:`loaded_models`."""
        text = self.metrics_text()
        return parse_triton_metrics(text, loaded_model_count=len(self.loaded_models()), vcpus=self.vcpus)

    def info(self) -> EndpointInfo:
        return EndpointInfo(kind=self.kind, name=self.name, instance_type=self.instance_type)
