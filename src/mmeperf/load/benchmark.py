"""Benchmark: drive a LoadProfile at an endpoint with Locust in subprocesses; results as the run goes.

The library process prepares the run (request table, spec, profile and environment files),
starts Locust (one process, or a master and N workers), samples the endpoint's server metrics
on the same clock (every second, or the endpoint's ``metrics_interval_s``), and reads progress
from the result folder. It never imports Locust or gevent: those live only in the child processes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform as _platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from mmeperf._types import PathLike
from mmeperf.endpoints.base import Endpoint
from mmeperf.errors import ConfigurationError, LoadTestError
from mmeperf.load import runfolder as F
from mmeperf.load.profile import LoadProfile
from mmeperf.load.spec import ENV_SPEC, AwsAuth, EndpointSpec, RunSpec, UserKind
from mmeperf.load.thresholds import (
    MAX_FAILURE_RATIO,
    RunVerdict,
    Threshold,
    judge,
    top_failure_reasons,
)
from mmeperf.metrics import SERVER_METRIC_COLUMNS, ServerMetrics, interval_row
from mmeperf.protocol import DEFAULT_ENDPOINT_NAME

if TYPE_CHECKING:
    from mmeperf.load.result import BenchmarkResult

__all__ = [
    "Benchmark", "BenchmarkHandle", "MetricsSampler", "MetricsSource", "Progress", "check_url", "locustfile_path",
    "probe_target",
]

log = logging.getLogger(__name__)

_REQUESTS_FILE = ".requests.bin"
_SPEC_FILE = ".run_spec.json"
_TRACE_FILE = ".trace.npz"
_STOP_FILE = ".stop"
#: Locust's own default master port: where workers on other hosts look when told no other.
DEFAULT_MASTER_PORT = 5557


def locustfile_path() -> Path:
    """The locustfile shipped in the package (Locust runs it; the library never imports it)."""
    return Path(__file__).with_name("locustfile.py")


@dataclass(frozen=True)
class Progress:
    """A run's state, about once a second."""

    status: str
    users: int
    rps: float
    requests: int
    failures: int
    elapsed_s: float
    stage: int


def check_url(url: str) -> str:
    """A runtime base URL must be absolute http(s) with a host: ConfigurationError otherwise."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"Bad endpoint URL {url!r}: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"Bad endpoint URL {url!r}: expected http://HOST[:PORT] or https://HOST[:PORT], "
            f"e.g. http://127.0.0.1:{port or 8080}"
        )
    return url


def probe_target(url: str, *, timeout: float = 5.0) -> str | None:
    """Whether the URL's host accepts a TCP connection: None if it does, else why not (one line)."""
    from urllib.parse import urlsplit

    parts = urlsplit(check_url(url))
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__ if not isinstance(exc, TimeoutError) else f"no answer in {timeout:g} s"
        return f"cannot connect to {host}:{port} ({reason})"


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host if host not in ("*", "0.0.0.0", "") else "127.0.0.1", 0))
        return int(s.getsockname()[1])


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _metrics_interval(endpoint: MetricsSource | None, override: float | None) -> float:
    """Seconds between server metric reads: the override, else the endpoint's own, else 1 s."""
    if override is not None:
        value: Any = override
        source = "metrics_interval_s"
    else:
        # getattr: an endpoint class may predate the attribute (the base class gives 1 s).
        value = getattr(endpoint, "metrics_interval_s", 1.0) if endpoint is not None else 1.0
        source = f"{type(endpoint).__name__}.metrics_interval_s"
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ConfigurationError(f"{source} must be a positive number of seconds, received {value!r}")
    return seconds


class Benchmark:
    """One load test: ``Benchmark(endpoint, profile).run(out_dir) -> BenchmarkResult``.

    ``endpoint``: an :class:`Endpoint` (its runtime URL, info and server metrics are used) or
    a runtime base URL. ``user``: ``"http"`` (fast FastHttpUser-based client, SigV4-signed when
    ``auth`` is given), ``"boto3"`` (sagemaker-runtime ``invoke_endpoint``, the reference's way)
    or ``"endpoint"`` (the endpoint plugin's own ``invoke``, re-created in each Locust process from
    ``endpoint_spec``). ``workers=0`` runs one Locust process; ``workers=N`` a master and N workers.
    Workers on other hosts (``mmeperf worker --master HOST:PORT``) join when ``expect_workers``
    exceeds ``workers``: the master then waits for that many workers in all (at most
    ``expect_workers_max_wait`` seconds), listening on ``master_bind`` (127.0.0.1 unless told
    otherwise: give the address the other hosts reach, or ``0.0.0.0``) and ``master_port``
    (default: Locust's 5557 when workers come from elsewhere, a free port otherwise).
    Server metrics are read every ``metrics_interval_s`` seconds (default: the endpoint's own
    ``metrics_interval_s``, else 1 s: a SageMaker endpoint's CloudWatch metrics have 60 s
    periods, and each read costs GetMetricData queries); ``sample_metrics=False`` reads none.
    ``thresholds`` (``"p99<10ms"``, ``"failure_rate<1%"``, ``"ok_rps>100"`` or :class:`Threshold`)
    are checked on the run's totals when it ends; the verdict (``result.verdict``, run.json's
    ``verdict``) also fails a run with no request, with every request failed, or with more than
    ``max_failure_ratio`` of them failed when no failure_rate threshold is given.
    """

    def __init__(
        self,
        endpoint: Endpoint | str,
        profile: LoadProfile,
        *,
        workers: int = 0,
        user: UserKind = "http",
        endpoint_name: str | None = None,
        runtime_url: str | None = None,
        auth: AwsAuth | None = None,
        endpoint_spec: EndpointSpec | Mapping[str, Any] | None = None,
        boto3_retries: int = 0,
        instance_type: str | None = None,
        platform: str | None = None,
        models_loaded: int | None = None,
        web_ui: bool = False,
        web_port: int = 8089,
        sample_metrics: bool = True,
        metrics_interval_s: float | None = None,
        progress: Callable[[Progress], None] | None = None,
        overwrite: bool = False,
        python: str | None = None,
        thresholds: Sequence[Threshold | str] = (),
        max_failure_ratio: float = MAX_FAILURE_RATIO,
        server_metrics: MetricsSource | None = None,
        server_status: Callable[[], Mapping[str, Any] | None] | None = None,
        expect_workers: int | None = None,
        master_bind: str = "127.0.0.1",
        master_port: int | None = None,
        expect_workers_max_wait: float = 120.0,
    ) -> None:
        if workers < 0:
            raise ConfigurationError(f"workers must be >= 0, received {workers}")
        if expect_workers is not None and expect_workers < max(workers, 1):
            raise ConfigurationError(
                f"expect_workers must be at least 1 and at least workers ({workers}), received {expect_workers}"
            )
        if master_port is not None and not 0 < master_port < 65536:
            raise ConfigurationError(f"master_port must be in 1..65535, received {master_port}")
        if not master_bind.strip():
            raise ConfigurationError("master_bind must be an address (127.0.0.1, 0.0.0.0 or an interface's)")
        if expect_workers_max_wait <= 0:
            raise ConfigurationError(f"expect_workers_max_wait must be > 0 s, received {expect_workers_max_wait}")
        self.expect_workers = expect_workers if expect_workers is not None else workers
        self.master_bind = master_bind.strip()
        remote = self.expect_workers > workers
        self.master_port = master_port if master_port is not None else (DEFAULT_MASTER_PORT if remote else None)
        self.expect_workers_max_wait = expect_workers_max_wait
        if user not in ("http", "boto3", "endpoint"):
            raise ConfigurationError(f"Unknown user {user!r}; expected one of: http, boto3, endpoint")
        self.endpoint = endpoint if isinstance(endpoint, Endpoint) else None
        #: Where server metrics are read: the endpoint, else a source given for a bare URL
        #: (:mod:`mmeperf.load.servermetrics`).
        self.metrics_source: MetricsSource | None = self.endpoint if self.endpoint is not None else server_metrics
        if server_status is None and self.endpoint is not None:
            # An endpoint with a status of its own (the local MME's /mmeperf/status) reports it.
            own = getattr(self.endpoint, "status", None)
            server_status = own if callable(own) else None
        self.server_status = server_status
        self.profile = profile
        self.workers = workers
        self.user: UserKind = user
        self.auth = auth
        self.boto3_retries = boto3_retries
        self.web_ui = web_ui
        self.web_port = web_port
        self.sample_metrics = sample_metrics
        self.metrics_interval_s = _metrics_interval(self.metrics_source, metrics_interval_s)
        self.progress = progress
        self.overwrite = overwrite
        self.python = python or sys.executable
        info = self.endpoint.info() if self.endpoint is not None else None
        self.info = info
        self.runtime_url = runtime_url or (endpoint if isinstance(endpoint, str) else None) or (
            info.runtime_url if info else None
        )
        self.endpoint_name = endpoint_name or (info.name if info else None) or DEFAULT_ENDPOINT_NAME
        self.instance_type = instance_type or (info.instance_type if info else None) or "local"
        self.platform = platform or (info.kind if info else None) or "http"
        self.models_loaded = models_loaded
        if user in ("http", "boto3") and not self.runtime_url:
            raise ConfigurationError(
                f"The {user!r} user needs a runtime URL (an endpoint with info().runtime_url, or runtime_url=)"
            )
        if self.runtime_url:
            check_url(self.runtime_url)
        self.thresholds = [t if isinstance(t, Threshold) else Threshold.parse(t) for t in thresholds]
        if not 0.0 <= max_failure_ratio <= 1.0:
            raise ConfigurationError(f"max_failure_ratio must be in [0, 1], received {max_failure_ratio}")
        self.max_failure_ratio = max_failure_ratio
        spec: EndpointSpec | None = None
        if user == "endpoint":
            raw = endpoint_spec
            if raw is None and self.endpoint is not None and hasattr(self.endpoint, "runner_spec"):
                raw = self.endpoint.runner_spec()
            if raw is None:
                raise ConfigurationError(
                    "The 'endpoint' user re-creates the endpoint in each Locust process: give "
                    "endpoint_spec={'target': 'module:Class' or plugin name, 'kwargs': {...}}"
                )
            spec = raw if isinstance(raw, EndpointSpec) else EndpointSpec.model_validate(dict(raw))
        self.endpoint_spec = spec

    # --- running --------------------------------------------------------------------------

    def run(self, out_dir: PathLike, *, timeout: float | None = None) -> BenchmarkResult:
        """Run to the end and return the result.

        A first Ctrl-C stops the run gracefully and returns what it measured; a second one, a
        ``timeout`` or any other error ends it (a bounded graceful stop, then SIGKILL) and is
        raised: no Locust process outlives this call.
        """
        handle = self.start(out_dir)
        with handle:  # whatever happens below, the Locust processes are gone on the way out
            try:
                return handle.wait(timeout=timeout)
            except KeyboardInterrupt:
                return handle.stop()
            except LoadTestError as exc:
                if not handle.running():
                    raise
                handle.close()
                raise LoadTestError(
                    f"The benchmark did not finish within {timeout} s; it was stopped, and what it "
                    f"measured so far is in {str(handle.out_dir)!r}"
                ) from exc

    def start(self, out_dir: PathLike) -> BenchmarkHandle:
        """Start the run without blocking; several benchmarks may run at once."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if (out / F.SUMMARY_CSV).exists() and not self.overwrite:
            raise ConfigurationError(
                f"{str(out)!r} already holds a benchmark result; choose another folder or overwrite=True"
            )
        for stale in (F.HISTORY_CSV, F.SERVER_METRICS_CSV, _STOP_FILE, _TRACE_FILE):
            (out / stale).unlink(missing_ok=True)
        t0 = time.time()
        profile = self.profile
        trace_shape = profile.trace_shape
        table = profile.traffic.build(route=trace_shape is None)
        table.save(out / _REQUESTS_FILE)
        target_models = table.models
        run_info: dict[str, Any] = {}
        trace_path: Path | None = None
        if trace_shape is not None:
            trace = trace_shape.load(keys=table.keys, n_payloads=len(table))
            trace_path = trace.save(out / _TRACE_FILE)
            profile = profile.model_copy(update={"shape": trace_shape.resolved(trace)})
            target_models = trace.models
            run_info["trace"] = trace_shape.describe(trace)
        models = self.models_loaded if self.models_loaded is not None else len(target_models)
        prefix = F.locust_csv_prefix(self.instance_type, self.platform, models)
        # max_models_loaded becomes the server's peak LoadedModelCount when the run ends (if known).
        labels = {"instance_type": self.instance_type, "platform": self.platform, "max_models_loaded": None,
                  "target_models": models}
        distributed = self.expect_workers > 0
        spec = RunSpec(
            profile=profile,
            user=self.user,
            runtime_url=self.runtime_url,
            endpoint_name=self.endpoint_name,
            auth=self.auth,
            boto3_retries=self.boto3_retries,
            endpoint=self.endpoint_spec,
            requests_path=str(out / _REQUESTS_FILE),
            out_dir=str(out),
            t0=t0,
            workers=self.expect_workers,
            processes=max(self.expect_workers, 1),
            csv_prefix=prefix,
            labels=labels,
            lag_s=2.0 if distributed else 1.0,
            owner_pid=os.getpid(),
            trace_path=None if trace_path is None else str(trace_path),
            run_info=run_info,
        )
        spec_path = spec.write(out / _SPEC_FILE)
        profile_doc = profile.model_dump(mode="json")
        profile_doc["traffic"]["source"] = profile.traffic.describe()
        F.atomic_write_json(out / F.PROFILE_JSON, profile_doc)
        port = (self.master_port or _free_port(self.master_bind)) if distributed else None
        F.atomic_write_json(out / F.ENVIRONMENT_JSON,
                            self._environment(t0, table_size=len(table), models=target_models, master_port=port))
        return BenchmarkHandle(self, out, spec, spec_path, master_port=port)

    def _environment(self, t0: float, *, table_size: int, models: list[str], master_port: int | None) -> dict[str, Any]:
        return {
            "started_at": t0,
            "python": sys.version.split()[0],
            "platform": _platform.platform(),
            "machine": _platform.machine(),
            "cpu_count": os.cpu_count(),
            "versions": {
                name: _version(name)
                for name in ("mmeperf", "locust", "hdrhistogram", "gevent", "geventhttpclient", "boto3", "pandas")
            },
            "endpoint": self.info.model_dump(mode="json") if self.info else {"runtime_url": self.runtime_url},
            "endpoint_name": self.endpoint_name,
            "user": self.user,
            "workers": self.workers,
            "expect_workers": self.expect_workers,
            "master": None if master_port is None else f"{self.master_bind}:{master_port}",
            "signed": self.auth is not None,
            "metrics_interval_s": self.metrics_interval_s if self.metrics_source is not None and self.sample_metrics else None,
            "requests_in_table": table_size,
            "target_models": len(models),
        }

    def _locust_commands(self, out: Path, spec: RunSpec, master_port: int | None) -> list[tuple[str, list[str]]]:
        base = [self.python, "-m", "locust", "-f", str(locustfile_path())]
        common = ["--stop-timeout", f"{self.profile.stop_timeout:g}", "--exit-code-on-error", "0", "--loglevel", "INFO"]
        if self.web_ui:
            ui = ["--autostart", "--autoquit", "0", "--web-host", "127.0.0.1", "--web-port", str(self.web_port)]
        else:
            ui = ["--headless", "--only-summary"]
        master = [*base, *ui, *common, "--csv", str(out / spec.csv_prefix), "--logfile", str(out / "locust-master.log")]
        if master_port is None:
            return [("master", master)]
        master += ["--master", "--master-bind-host", self.master_bind, "--master-bind-port", str(master_port),
                   "--expect-workers", str(self.expect_workers),
                   "--expect-workers-max-wait", str(math.ceil(self.expect_workers_max_wait))]
        commands = [("master", master)]
        # Local workers reach a master bound to every interface through loopback.
        local = "127.0.0.1" if self.master_bind in ("*", "0.0.0.0", "::") else self.master_bind
        for i in range(self.workers):
            commands.append(
                (f"worker-{i}", [*base, "--worker", "--master-host", local, "--master-port", str(master_port),
                                 "--loglevel", "INFO", "--logfile", str(out / f"locust-worker-{i}.log")])
            )
        return commands


class MetricsSource(Protocol):
    """Anything whose ``metrics()`` returns cumulative :class:`ServerMetrics` (an Endpoint,
    :class:`~mmeperf.load.servermetrics.UrlMetrics`)."""

    def metrics(self) -> ServerMetrics: ...


def _call_status(status: Callable[[], Mapping[str, Any] | None] | None) -> dict[str, Any] | None:
    if status is None:
        return None
    try:
        value = status()
    except Exception as exc:  # a report detail must never break a run
        log.warning("Reading the server's status failed: %s", exc)
        return None
    return dict(value) if value is not None else None


class MetricsSampler:
    """Reads ``endpoint.metrics()`` every ``interval_s`` in a thread and appends server_metrics.csv.

    Reads fall on multiples of the interval on the wall clock (the run's clock), one row per
    interval after the first read; :meth:`stop` takes a last read at once, so the run's final
    interval is written however long ``interval_s`` is.
    """

    def __init__(
        self,
        endpoint: MetricsSource,
        path: Path,
        *,
        t0: float,
        interval_s: float = 1.0,
        running: Callable[[], bool] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.path = path
        self.t0 = t0
        self.interval_s = interval_s
        self._running = running
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mmeperf-metrics", daemon=True)

    def start(self) -> MetricsSampler:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Take the last read and end the thread (waits at most ``timeout`` for a slow read)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)

    def _run(self) -> None:
        writer = F.AppendingCsv(self.path, SERVER_METRIC_COLUMNS)
        prev: ServerMetrics | None = None
        errors = 0
        try:
            while True:
                finished = self._stop.is_set() or (self._running is not None and not self._running())
                try:
                    cur = self.endpoint.metrics()
                except Exception as exc:  # a flaky metrics read must not end the load test
                    errors += 1
                    if errors <= 3:
                        log.warning("Reading server metrics failed: %s", exc)
                else:
                    if prev is not None:
                        writer.append([interval_row(prev, cur, start=self.t0)])
                    prev = cur
                if finished:
                    return
                now = time.time()
                self._stop.wait(self.interval_s - (now % self.interval_s) + 0.01)
        finally:
            writer.close()


class BenchmarkHandle:
    """A run in progress: ``wait()``, ``stop()``, ``kill()``, ``progress``; the Locust processes share one group.

    Use it as a context manager to be sure no Locust process outlives it::

        with bench.start(out) as handle:
            result = handle.wait()

    Leaving the block ends a run still going: on a normal exit or an exception, a graceful
    stop bounded by the profile's ``stop_timeout`` plus 30 s, then SIGKILL; on Ctrl-C
    (KeyboardInterrupt), SIGKILL at once. :meth:`kill` and :meth:`close` may be called any number
    of times, from any ``finally``.
    """

    def __init__(
        self, bench: Benchmark, out_dir: Path, spec: RunSpec, spec_path: Path, *, master_port: int | None = None
    ) -> None:
        self.bench = bench
        self.out_dir = out_dir
        self.spec = spec
        #: The port the Locust master listens on for workers (None: one process, no master).
        self.master_port = master_port
        self.progress: Progress | None = None
        self._result: BenchmarkResult | None = None
        self._cleaned = False
        env = {**os.environ, ENV_SPEC: str(spec_path), "PYTHONUNBUFFERED": "1"}
        self.processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[Any] = []
        self._sampler: MetricsSampler | None = None
        commands = bench._locust_commands(out_dir, spec, master_port)
        try:
            for i, (name, cmd) in enumerate(commands):
                out = (out_dir / f"locust-{name}.out").open("wb")
                self._logs.append(out)
                # One process group for all (same session, so workers may join the master's group).
                kwargs: dict[str, Any] = {"process_group": 0 if i == 0 else self.processes[0].pid}
                self.processes.append(
                    subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kwargs)
                )
        except OSError as exc:
            self.kill()
            raise LoadTestError(f"Could not start Locust ({exc})") from exc
        endpoint = bench.metrics_source
        self.status_at_start = _call_status(bench.server_status)
        if endpoint is not None and bench.sample_metrics:
            self._sampler = MetricsSampler(
                endpoint, out_dir / F.SERVER_METRICS_CSV, t0=spec.t0, interval_s=bench.metrics_interval_s,
                running=self.running,
            ).start()
        self._watcher = threading.Thread(target=self._watch, name="mmeperf-progress", daemon=True)
        self._watcher.start()

    @property
    def pid(self) -> int:
        """Process id (and process group id) of the Locust master / single process."""
        return self.processes[0].pid

    @property
    def master(self) -> subprocess.Popen[bytes]:
        return self.processes[0]

    def running(self) -> bool:
        return self.master.poll() is None

    def alive(self) -> bool:
        """Whether any Locust process of the run (master or worker) is still running."""
        return any(proc.poll() is None for proc in self.processes)

    def __enter__(self) -> BenchmarkHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(graceful=not (exc_type is not None and issubclass(exc_type, KeyboardInterrupt)))

    # --- background threads ---------------------------------------------------------------

    def _watch(self) -> None:
        callback = self.bench.progress
        path = self.out_dir / F.PROGRESS_JSON
        last = None
        while self.running():
            time.sleep(0.5)
            try:
                raw = path.read_text(encoding="utf-8")
            except OSError:
                continue
            if raw == last:
                continue
            last = raw
            try:
                data = json.loads(raw)
                progress = Progress(
                    status=str(data["status"]), users=int(data["users"] or 0), rps=float(data["rps"] or 0),
                    requests=int(data["requests"]), failures=int(data["failures"]),
                    elapsed_s=float(data["elapsed_s"]), stage=int(data["stage"]),
                )
            except (ValueError, KeyError, TypeError):
                continue
            self.progress = progress
            if callback is not None:
                try:
                    callback(progress)
                except Exception as exc:  # the UI must never break the run
                    log.warning("Progress callback failed: %s", exc)

    # --- ending ---------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> BenchmarkResult:
        """Block until the run ends; return its result (raise LoadTestError if Locust failed).

        After a ``timeout`` the run is still going: stop, kill or close it (or use ``with``).
        """
        if self._result is not None:
            return self._result
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self.master.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise LoadTestError(f"The benchmark did not finish within {timeout} s (still running)") from None
        for proc in self.processes[1:]:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return self._finish()

    def stop(self, timeout: float | None = None) -> BenchmarkResult:
        """End the run now: requests in flight finish (stop_timeout), results are finalised.

        ``timeout`` bounds the graceful part (default: stop_timeout + 30 s); after it, SIGTERM,
        then SIGKILL.
        """
        if self._result is not None:
            return self._result
        with contextlib.suppress(OSError):
            (self.out_dir / _STOP_FILE).touch()
        grace = timeout if timeout is not None else self.bench.profile.stop_timeout + 30.0
        try:
            self.master.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGTERM)
            try:
                self.master.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.wait()

    def close(self, *, graceful: bool = True, timeout: float | None = None) -> None:
        """Make sure every Locust process of the run is gone; idempotent, never raises a run error.

        A run still going is first stopped gracefully (``graceful``, bounded by ``timeout`` as in
        :meth:`stop`), then whatever is left is SIGKILLed, and the private files are removed. A
        KeyboardInterrupt during the graceful stop still kills everything before it propagates.
        """
        try:
            if graceful and self.alive():
                with contextlib.suppress(Exception):
                    self.stop(timeout=timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL every Locust process of the run at once (results stay as last written).

        Idempotent and safe in a ``finally``: a run already over is left alone, and no signal is
        sent once every process has been reaped (its process group id could be reused).
        """
        try:
            self._signal(signal.SIGKILL)
        finally:
            for proc in self.processes:
                with contextlib.suppress(Exception):
                    proc.wait(timeout=5)
            if self._sampler is not None:
                self._sampler.stop(timeout=5)
            for fh in self._logs:
                with contextlib.suppress(Exception):
                    fh.close()
            if not self.alive():
                self.cleanup()

    def _signal(self, sig: int) -> None:
        # returncode is None until we reap a process: while one of ours is unreaped (running or a
        # zombie), the group id stays ours, so killpg cannot reach anybody else's processes.
        live = [proc for proc in self.processes if proc.returncode is None]
        if not live:
            return
        try:
            os.killpg(self.processes[0].pid, sig)
        except (ProcessLookupError, PermissionError):
            for proc in live:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)

    def _finish(self) -> BenchmarkResult:
        from mmeperf.load.result import BenchmarkResult

        if self._sampler is not None:
            self._sampler.stop(timeout=30)
        self._watcher.join(timeout=5)
        for fh in self._logs:
            fh.close()
        self.cleanup()
        info_path = self.out_dir / F.RUN_JSON
        status = None
        with contextlib.suppress(OSError, ValueError):
            status = json.loads(info_path.read_text(encoding="utf-8")).get("status")
        if status not in ("completed", "stopped"):
            tail = ""
            for name in ("locust-master.out", "locust-master.log"):
                with contextlib.suppress(OSError):
                    tail += (self.out_dir / name).read_text(encoding="utf-8", errors="replace")[-3000:]
            raise LoadTestError(
                f"Locust ended (exit code {self.master.returncode}) without finishing the run "
                f"(status {status!r}); see {self.out_dir}/locust-master.*:\n{tail}"
            )
        self._write_report_facts(info_path)
        self._write_verdict(info_path)
        self._result = BenchmarkResult.load(self.out_dir)
        return self._result

    def _write_report_facts(self, info_path: Path) -> None:
        """What a report needs beyond the CSVs, into run.json's ``report``: cold share, method,
        emulation and the server's peak LoadedModelCount (also written to summary_results.csv's
        max_models_loaded)."""
        import pandas as pd

        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        bench = self.bench
        totals = info.get("totals") or {}
        requests = int(totals.get("requests") or 0)
        cold = totals.get("cold_requests")
        status_end = _call_status(bench.server_status)
        status = status_end or self.status_at_start or {}
        peak: int | None = None
        metrics_path = self.out_dir / F.SERVER_METRICS_CSV
        if metrics_path.exists() and metrics_path.stat().st_size:
            with contextlib.suppress(ValueError, pd.errors.EmptyDataError):
                metrics = pd.read_csv(metrics_path)
                loaded = pd.to_numeric(metrics["LoadedModelCount"], errors="coerce") \
                    if "LoadedModelCount" in metrics else pd.Series(dtype=float)
                if loaded.notna().any():
                    peak = int(loaded.max())
        if isinstance(status_end, dict) and status_end.get("peak_loaded_model_count") is not None:
            peak = max(peak or 0, int(status_end["peak_loaded_model_count"]))
        endpoint_info = bench.info
        emulated = bool(endpoint_info.emulated) if endpoint_info else bool(status.get("emulated"))
        note = (endpoint_info.emulation_note if endpoint_info else None) or status.get("emulation_note")
        profile = bench.profile
        models_end = status_end.get("models") if isinstance(status_end, dict) else None
        charged = {str(m["name"]): int(m["charged_bytes"]) for m in models_end or ()
                   if isinstance(m, dict) and isinstance(m.get("charged_bytes"), int | float)}
        workers = status.get("workers")
        worker_mode = workers.get("worker_mode") if isinstance(workers, dict) else None
        info["report"] = {
            "cold_requests": cold,
            "cold_share": (float(cold) / requests) if cold is not None and requests else None,
            "target_models": self.spec.labels.get("target_models"),
            "peak_loaded_model_count": peak,
            "instance_type": bench.instance_type,
            "instance_profile": (endpoint_info.instance_type if endpoint_info and endpoint_info.emulated else None)
            or status.get("instance_profile"),
            "emulated": emulated,
            "emulation_note": note,
            # What the server charged each model loaded at the end (the planner's per-model memory).
            "model_charged_bytes": charged or None,
            "worker_mode": worker_mode,
            "method": {
                "user": bench.user,
                "workers": bench.workers,
                "profile": profile.model_dump(mode="json", exclude={"traffic"}),
                "traffic": profile.traffic.describe(),
                "warmup": info.get("warmup") is not None,
                "server_metrics": None if bench.metrics_source is None or not bench.sample_metrics
                else getattr(bench.metrics_source, "path", type(bench.metrics_source).__name__),
                "metrics_interval_s": bench.metrics_interval_s,
            },
        }
        F.atomic_write_json(info_path, info)
        summary_path = self.out_dir / F.SUMMARY_CSV
        if peak is not None and summary_path.exists():
            with contextlib.suppress(ValueError, pd.errors.EmptyDataError, OSError):
                frame = pd.read_csv(summary_path)
                frame["max_models_loaded"] = peak
                names = [str(c) for c in frame.columns]
                columns = [c for c in F.SUMMARY_COLUMNS if c in names] + [c for c in names if c not in F.SUMMARY_COLUMNS]
                records = [{str(k): v for k, v in row.items()}
                           for row in frame.astype(object).where(frame.notna(), None).to_dict("records")]
                F.atomic_write_csv(summary_path, columns, records)

    def _write_verdict(self, info_path: Path) -> RunVerdict | None:
        """Judge the finished run (thresholds, failure share) and add the verdict to run.json."""
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        failures: list[dict[str, Any]] = []
        with contextlib.suppress(OSError):
            import csv

            with (self.out_dir / F.FAILURES_CSV).open(encoding="utf-8", newline="") as fh:
                failures = list(csv.DictReader(fh))
        verdict = judge(
            info.get("totals") or {}, top_failure_reasons(failures, n=1000), self.bench.thresholds,
            max_failure_ratio=self.bench.max_failure_ratio,
        )
        info["verdict"] = verdict.model_dump(mode="json")
        F.atomic_write_json(info_path, info)
        return verdict

    def cleanup(self) -> None:
        """Remove the run's private files (request table, spec) once Locust is gone."""
        if self._cleaned or self.alive():
            return
        self._cleaned = True
        for name in (_REQUESTS_FILE, _SPEC_FILE, _STOP_FILE, _TRACE_FILE):
            (self.out_dir / name).unlink(missing_ok=True)
