"""``LocalEndpoint``: the embedded MME as an :class:`~mmeperf.endpoints.base.Endpoint` plugin.

``deploy`` starts ``python -m mmeperf.endpoints.local`` (the server behind ``mmeperf serve``) as a
subprocess and waits for ``/ping``; ``invoke`` speaks the SageMaker runtime API over the shared
keep-alive transport (:mod:`mmeperf.endpoints._http`); ``delete`` stops the process (SIGTERM,
then SIGKILL).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mmeperf.endpoints._http import HttpClient, HttpResponse, bracket
from mmeperf.endpoints.base import EndpointInfo
from mmeperf.endpoints.local.client import LocalMMEClient
from mmeperf.endpoints.local.config import DEFAULT_MAX_PAYLOAD_BYTES, EMULATION_NOTE, ServerConfig
from mmeperf.errors import EndpointError, EndpointNotReadyError
from mmeperf.protocol import DEFAULT_ENDPOINT_NAME

if TYPE_CHECKING:
    from typing import Self

    from mmeperf.endpoints.local.fleet import FleetConfig
    from mmeperf.repository import ModelRepository

__all__ = ["LocalEndpoint"]


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


class LocalEndpoint(LocalMMEClient):
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
        endpoint_name: str = DEFAULT_ENDPOINT_NAME,
        max_payload: int | str = DEFAULT_MAX_PAYLOAD_BYTES,
        allow_pickle: bool = False,
        cache_dir: str | None = None,
        startup_timeout_s: float = 60.0,
        request_timeout_s: float = 70.0,
        shutdown_grace_s: float = 15.0,
        server_options: Mapping[str, Any] | None = None,
        instance_count: int = 1,
        autoscaling: Any = None,
        fleet_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Options as :class:`~mmeperf.endpoints.local.config.ServerOptions` (shared with
        ``MemoryEndpoint``) plus the network and process ones; ``server_options`` sets any
        other :class:`~mmeperf.endpoints.local.config.ServerConfig` field.

        ``instance_count`` > 1, an ``autoscaling`` policy (an ``AutoscalingPolicy`` or a
        ``LocalAutoscaling``) or ``fleet_options`` (any other ``FleetConfig`` field) serve the
        endpoint from several instances behind a routing front (:mod:`.front`)."""
        # Fail fast on bad options, before any process starts.
        self._config = ServerConfig.from_options(
            host=host, port=port, workers=workers, memory_budget=memory_budget,
            instance_profile=instance_profile, per_model_overhead=per_model_overhead,
            endpoint_name=endpoint_name, max_payload=max_payload, allow_pickle=allow_pickle,
            cache_dir=cache_dir, server_options=server_options,
        )
        self._fleet: FleetConfig | None = None
        if instance_count != 1 or autoscaling is not None or fleet_options:
            from mmeperf.endpoints.local.fleet import FleetConfig

            self._fleet = FleetConfig.from_options(self._config, instance_count=instance_count,
                                                   autoscaling=autoscaling, fleet_options=fleet_options)
        self.endpoint_name = endpoint_name
        self._startup_timeout_s = startup_timeout_s
        self._request_timeout_s = request_timeout_s
        self._shutdown_grace_s = shutdown_grace_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._log_file: Any = None
        self._host = host
        self._port: int | None = None
        self._http: HttpClient | None = None
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
        config = self._config.with_repository(str(url))
        self._config = config
        work = Path(tempfile.mkdtemp(prefix="mmeperf-local-"))
        ready = work / "ready.json"
        self._log_path = work / "server.log"
        self._log_file = self._log_path.open("wb")
        cmd = [
            sys.executable, "-m", "mmeperf.endpoints.local",
            "--config", config.model_dump_json(), "--ready-file", str(ready),
            "--owner-pid", str(os.getpid()),  # it stops when this process is gone, however it ends
        ]
        if self._fleet is not None:  # several instances behind a routing front
            self._fleet = self._fleet.model_copy(update={"server": config})
            cmd[2:5] = ["mmeperf.endpoints.local.front", "--config", self._fleet.model_dump_json()]
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
                    self._http = HttpClient(self._host, self._port, timeout_s=self._request_timeout_s)
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
            client, self._http = self._http, None
        if client is not None:
            client.close()
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
        return f"http://{bracket(self._host)}:{self._port}"

    # --- HTTP -------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> HttpResponse:
        """One request on this thread's keep-alive connection (reconnects once if it was closed)."""
        client = self._http
        if client is None:
            raise EndpointError("LocalEndpoint is not deployed")
        return client.request(method, path, body, headers, timeout=timeout)

    def info(self) -> EndpointInfo:
        config = self._config
        profile = config.profile()
        return EndpointInfo(
            kind=self.kind,
            name=self.endpoint_name,
            instance_type=profile.name if profile else None,
            emulated=profile is not None,
            emulation_note=self._emulation_note() if profile else
            "Local MME on this host's cores and memory (no instance type emulated).",
            runtime_url=self.url if self._port is not None else None,
            region=None,
            memory_budget_bytes=config.effective_budget(),
            instance_count=1 if self._fleet is None else self._fleet.instance_count,
        )

    def scaling_events(self, *, since: int = 0) -> list[dict[str, Any]]:
        """The scaling timeline of a multi-instance endpoint (``GET /mmeperf/scaling``; the
        instances' life and the autoscaler's decisions with their causes)."""
        events: list[dict[str, Any]] = self._get_json(f"/mmeperf/scaling?since={since}")["events"]
        return events

    def _emulation_note(self) -> str:
        """The running server's own note (what applied to it, from ``/mmeperf/status``), else the rule."""
        if self._port is not None:
            with contextlib.suppress(Exception):
                note = self.status().get("emulation_note")
                if isinstance(note, str) and note:
                    return note
        return EMULATION_NOTE

    def __enter__(self) -> Self:
        return self

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not deployed"
        return f"<LocalEndpoint {self.endpoint_name!r} {where}>"

