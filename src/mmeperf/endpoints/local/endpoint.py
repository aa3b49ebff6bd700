"""``LocalEndpoint``: the embedded MME as an :class:`~mmeperf.endpoints.base.Endpoint` plugin.

``deploy`` starts ``python -m mmeperf.endpoints.local`` (the server behind ``mmeperf serve``) as a
subprocess and waits for ``/ping``; ``invoke`` speaks the SageMaker runtime API over keep-alive
``http.client`` connections (one per thread); ``delete`` stops the process (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from mmeperf.endpoints.base import (
    HEADER_CACHE,
    HEADER_MODEL_LATENCY_US,
    HEADER_WAIT_US,
    Endpoint,
    EndpointInfo,
    InvokeResult,
)
from mmeperf.endpoints.local.config import DEFAULT_MAX_PAYLOAD_BYTES, EMULATION_NOTE, ServerConfig
from mmeperf.errors import EndpointError, EndpointNotReadyError
from mmeperf.metrics import ServerMetrics
from mmeperf.units import parse_size

if TYPE_CHECKING:
    from typing import Self

    from mmeperf.repository import ModelRepository

__all__ = ["LocalEndpoint", "result_from_response"]


def result_from_response(
    status: int, headers: dict[str, str], body: bytes, latency_s: float
) -> InvokeResult:
    """An InvokeResult from a local MME answer (headers with lower-case names)."""
    error_code = error_message = None
    if not 200 <= status < 300:
        error_code = headers.get("x-amzn-errortype", "").split(":", 1)[0] or f"HTTP{status}"
        try:
            doc = json.loads(body)
            error_message = doc.get("Message") or doc.get("message") if isinstance(doc, dict) else None
        except ValueError:
            error_message = body[:500].decode("utf-8", "replace")
    cache = headers.get(HEADER_CACHE)
    wait = headers.get(HEADER_WAIT_US)
    model = headers.get(HEADER_MODEL_LATENCY_US)
    return InvokeResult(
        status=status,
        body=body,
        content_type=headers.get("content-type", ""),
        latency_s=latency_s,
        error_code=error_code,
        error_message=error_message,
        cache_hit=None if cache is None else cache == "hit",
        model_loading_wait_s=None if wait is None else int(wait) / 1e6,
        model_latency_s=None if model is None else int(model) / 1e6,
        headers=headers,
    )


def _stop_process(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


class LocalEndpoint(Endpoint):
    """The embedded local MME, served by a subprocess on 127.0.0.1 (by default).

    Example::

        with LocalEndpoint(memory_budget="512MiB").deploy(repo) as ep:
            result = ep.invoke("churn-xgb-CA.tar.gz", b"1,2,3", content_type="text/csv")
    """

    kind: ClassVar[str] = "local"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        memory_budget: int | str | None = None,
        instance_profile: str | None = None,
        per_model_overhead: int | str | None = None,
        workers: int = 1,
        endpoint_name: str = "local-mme",
        max_payload: int | str = DEFAULT_MAX_PAYLOAD_BYTES,
        allow_pickle: bool = False,
        cache_dir: str | None = None,
        startup_timeout_s: float = 60.0,
        request_timeout_s: float = 70.0,
        shutdown_grace_s: float = 15.0,
        server_options: dict[str, Any] | None = None,
    ) -> None:
        self._options: dict[str, Any] = {
            "host": host,
            "port": port,
            "memory_budget_bytes": None if memory_budget is None else parse_size(memory_budget),
            "per_model_overhead_bytes": None if per_model_overhead is None else parse_size(per_model_overhead),
            "instance_profile": instance_profile,
            "workers": workers,
            "endpoint_name": endpoint_name,
            "max_payload_bytes": parse_size(max_payload),
            "allow_pickle": allow_pickle,
            "cache_dir": cache_dir,
            **(server_options or {}),
        }
        # Fail fast on bad options, before any process starts.
        self._config = ServerConfig(repository=".", **self._options).check()
        self.endpoint_name = endpoint_name
        self._startup_timeout_s = startup_timeout_s
        self._request_timeout_s = request_timeout_s
        self._shutdown_grace_s = shutdown_grace_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._log_file: Any = None
        self._host = host
        self._port: int | None = None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize[Any, Any] | None = None

    # --- life cycle -------------------------------------------------------------------------

    def deploy(self, repository: ModelRepository | str | os.PathLike[str]) -> Self:
        """Start the server on ``repository`` and return once ``/ping`` answers.

        Raises EndpointNotReadyError (with the tail of the server's stderr) when it exits or
        does not answer within ``startup_timeout_s``.
        """
        if self._proc is not None and self._proc.poll() is None:
            raise EndpointError(f"LocalEndpoint {self.endpoint_name!r} is already deployed at {self.url}")
        url = repository if isinstance(repository, str) else getattr(repository, "url", None)
        if url is None:
            url = os.fspath(repository)  # type: ignore[arg-type]
        config = ServerConfig(repository=str(url), **self._options).check()
        self._config = config
        work = Path(tempfile.mkdtemp(prefix="mmeperf-local-"))
        ready = work / "ready.json"
        self._log_path = work / "server.log"
        self._log_file = self._log_path.open("wb")
        cmd = [
            sys.executable, "-m", "mmeperf.endpoints.local",
            "--config", config.model_dump_json(), "--ready-file", str(ready),
        ]
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it in order
        )
        self._finalizer = weakref.finalize(self, _stop_process, self._proc, self._shutdown_grace_s)
        atexit.register(self._finalizer)
        deadline = time.monotonic() + self._startup_timeout_s
        try:
            while True:
                if self._proc.poll() is not None:
                    raise EndpointNotReadyError(
                        f"The local MME exited with status {self._proc.returncode} before it was "
                        f"ready:\n{self._log_tail()}"
                    )
                if ready.exists():
                    self._port = int(json.loads(ready.read_text())["port"])
                    break
                if time.monotonic() > deadline:
                    raise EndpointNotReadyError(
                        f"The local MME did not start within {self._startup_timeout_s:g} s:\n{self._log_tail()}"
                    )
                time.sleep(0.02)
            while True:
                try:
                    status, _, _ = self._request("GET", "/ping", timeout=5)
                    if status == 200:
                        return self
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise EndpointNotReadyError(
                        f"The local MME did not answer /ping within {self._startup_timeout_s:g} s:\n{self._log_tail()}"
                    )
                time.sleep(0.05)
        except BaseException:
            self.delete()
            raise

    def delete(self) -> None:
        """Stop the server: SIGTERM (in-flight requests finish), SIGKILL after the grace period."""
        with self._lock:
            proc, self._proc = self._proc, None
        self._close_connections()
        if proc is not None:
            _stop_process(proc, self._shutdown_grace_s)
            if self._finalizer is not None:
                self._finalizer.detach()
                atexit.unregister(self._finalizer)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _log_tail(self, n: int = 4000) -> str:
        if self._log_path is None or not self._log_path.exists():
            return "(no server output)"
        if self._log_file is not None:
            self._log_file.flush()
        text = self._log_path.read_bytes()[-n:].decode("utf-8", "replace")
        return text or "(no server output)"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def url(self) -> str:
        """Base URL of the runtime API (``/endpoints/{name}/invocations`` under it)."""
        if self._port is None:
            raise EndpointError("LocalEndpoint is not deployed")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    # --- HTTP -------------------------------------------------------------------------------

    def _conn(self, timeout: float) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None or conn.port != self._port:
            if self._port is None:
                raise EndpointError("LocalEndpoint is not deployed")
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            self._local.conn = conn
            conns: list[http.client.HTTPConnection] = self.__dict__.setdefault("_all_conns", [])
            conns.append(conn)
        conn.timeout = timeout
        return conn

    def _close_connections(self) -> None:
        for conn in self.__dict__.pop("_all_conns", []):
            conn.close()
        self._local = threading.local()

    def _request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
        *, timeout: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on this thread's keep-alive connection (reconnects once if it was closed)."""
        for attempt in (0, 1):
            conn = self._conn(timeout or self._request_timeout_s)
            try:
                conn.request(method, path, body=body, headers=headers or {})
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady):
                conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def invoke(
        self,
        target_model: str,
        body: bytes,
        *,
        content_type: str = "text/csv",
        accept: str | None = None,
    ) -> InvokeResult:
        headers = {"Content-Type": content_type, "X-Amzn-SageMaker-Target-Model": target_model}
        if accept:
            headers["Accept"] = accept
        path = f"/endpoints/{quote(self.endpoint_name, safe='')}/invocations"
        t0 = time.perf_counter()
        try:
            status, resp_headers, data = self._request("POST", path, body, headers)
        except (OSError, http.client.HTTPException, EndpointError) as exc:
            return InvokeResult(
                status=0, body=b"", content_type="", latency_s=time.perf_counter() - t0,
                error_code=type(exc).__name__, error_message=str(exc) or repr(exc),
            )
        return result_from_response(status, resp_headers, data, time.perf_counter() - t0)

    def _get_json(self, path: str) -> Any:
        status, _, data = self._request("GET", path, timeout=30)
        if status != 200:
            raise EndpointError(f"GET {path} answered {status}: {data[:300]!r}")
        return json.loads(data)

    def metrics(self) -> ServerMetrics:
        return ServerMetrics.model_validate(self._get_json("/mmeperf/metrics"))

    def status(self) -> dict[str, Any]:
        """The server's own view: cache, peaks, emulation (``GET /mmeperf/status``)."""
        result: dict[str, Any] = self._get_json("/mmeperf/status")
        return result

    def loaded_models(self) -> list[str]:
        models: list[str] = []
        token: str | None = None
        while True:
            doc = self._get_json("/models" + (f"?next_page_token={token}" if token else ""))
            models.extend(m["modelName"] for m in doc["models"])
            token = doc.get("nextPageToken")
            if not token:
                return models

    def info(self) -> EndpointInfo:
        config = self._config
        profile = config.profile()
        return EndpointInfo(
            kind=self.kind,
            name=self.endpoint_name,
            instance_type=profile.name if profile else None,
            emulated=profile is not None,
            emulation_note=EMULATION_NOTE if profile else
            "Local MME on this host's cores and memory (no instance type emulated).",
            runtime_url=self.url if self._port is not None else None,
            region=None,
            memory_budget_bytes=config.effective_budget(),
        )

    def __enter__(self) -> Self:
        return self

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not deployed"
        return f"<LocalEndpoint {self.endpoint_name!r} {where}>"

