"""The HTTP transport of the endpoints that speak HTTP (``local``, ``triton``): keep-alive
``http.client`` connections, one per thread, plus host/port parsing and the loopback check.

``http.client`` rather than a client library: one request costs tens of microseconds less, and a
load test measures the server, not our client.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

from mmeperf.errors import ConfigurationError
from mmeperf.protocol import InvokeResult, unanswered

__all__ = [
    "LOOPBACK_HOSTS",
    "NO_ANSWER",
    "HttpClient",
    "HttpResponse",
    "bracket",
    "is_loopback",
    "no_answer",
    "parse_host_port",
]

#: Host names that mean this machine.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

#: What a request can raise when no HTTP answer came back (refused, reset, timed out).
NO_ANSWER: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)

# A kept-alive connection the server closed meanwhile: send the request once more.
_STALE = (
    http.client.RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    http.client.CannotSendRequest,
    http.client.ResponseNotReady,
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine."""
    return host in LOOPBACK_HOSTS


def bracket(host: str) -> str:
    """``host`` as it goes in a URL (IPv6 literals in brackets)."""
    return f"[{host}]" if ":" in host else host


def parse_host_port(url: str, default_port: int, *, what: str = "server") -> tuple[str, int, str]:
    """``"127.0.0.1:8000"`` or ``"http://host:8000/prefix"`` -> (host, port, path prefix)."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"Expected a {what} URL like '127.0.0.1:{default_port}', received {url!r}")
    raw = url.strip()
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    if parts.scheme != "http":
        raise ConfigurationError(
            f"Expected an http:// {what} URL, received {url!r} (https needs a proxy in front)"
        )
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise ConfigurationError(f"Invalid port in {what} URL {url!r}: {exc}") from exc
    if not parts.hostname:
        raise ConfigurationError(f"Expected a host in {what} URL {url!r}")
    return parts.hostname, port, parts.path.rstrip("/")


def no_answer(exc: BaseException, started: float, *, error_code: str | None = None) -> InvokeResult:
    """The result of a request that got no HTTP answer at all: status 0, as Locust counts it."""
    if error_code is None:
        error_code = "Timeout" if isinstance(exc, TimeoutError) else "ConnectionError"
    return unanswered(error_code, str(exc) or repr(exc), time.perf_counter() - started)


class HttpResponse(NamedTuple):
    """An HTTP answer: status, headers (lower-case names) and the whole body."""

    status: int
    headers: dict[str, str]
    body: bytes


class HttpClient:
    """Keep-alive HTTP/1.1 to one ``host:port``: a connection per thread, made on first use,
    sent once more when the server had closed it; :meth:`close` closes them all.

    Paths are relative to ``prefix`` (a reverse proxy's mount point, usually empty).
    """

    def __init__(self, host: str, port: int, *, prefix: str = "", timeout_s: float = 60.0) -> None:
        self.host, self.port, self.prefix = host, port, prefix.rstrip("/")
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[http.client.HTTPConnection] = []

    @classmethod
    def from_url(cls, url: str, *, default_port: int, timeout_s: float = 60.0, what: str = "server") -> HttpClient:
        host, port, prefix = parse_host_port(url, default_port, what=what)
        return cls(host, port, prefix=prefix, timeout_s=timeout_s)

    @property
    def url(self) -> str:
        """Base URL, prefix included."""
        return f"http://{bracket(self.host)}:{self.port}{self.prefix}"

    def _conn(self, timeout: float) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> HttpResponse:
        """One request on this thread's connection. Raises what :data:`NO_ANSWER` names when
        no answer came back (after one retry on a connection the server had closed)."""
        for attempt in (0, 1):
            conn = self._conn(timeout or self.timeout_s)
            try:
                conn.request(method, self.prefix + path, body=body, headers=dict(headers or {}))
                resp = conn.getresponse()
                data = resp.read()
                return HttpResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
            except _STALE:
                conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close every thread's connection (threads reconnect on their next request)."""
        with self._lock:
            conns, self._conns = self._conns, []
            self._local = threading.local()
        for conn in conns:
            conn.close()
