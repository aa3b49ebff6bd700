"""The locustfile mmeperf ships: run only by Locust in its own processes, never imported by the library.

It reads the run spec (``MMEPERF_RUN_SPEC``), defines one user class (fast HTTP, boto3 or an
endpoint plugin's ``invoke``) and the load shape, records every request exactly once in the
process's :class:`~mmeperf.load.recorder.Recorder`, and, on the master (or the single process),
merges the recorders and writes the result folder every second.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import gevent
import locust.runners
import locust.stats
from gevent import GreenletExit
from locust import FastHttpUser, LoadTestShape, User, between, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from mmeperf.load.recorder import Aggregator, Recorder, WorkerReporter, stage_index_at
from mmeperf.load.schedule import OpenLoopSchedule
from mmeperf.load.spec import ENV_SPEC, RunSpec
from mmeperf.load.traffic import RequestSampler, RequestTable
from mmeperf.protocol import (
    CacheState,
    invocation_path,
    invoke_boto3,
    lower_headers,
    parse_answer,
    request_headers,
)

# Our result files are written every second; make Locust's own CSVs and worker reports keep up.
locust.stats.CSV_STATS_FLUSH_INTERVAL_SEC = 1
locust.runners.WORKER_REPORT_INTERVAL = 1.0

SPEC = RunSpec.read(os.environ[ENV_SPEC])
PROFILE = SPEC.profile
PLANS = PROFILE.stages()
OPEN = PROFILE.open_loop_shape
OUT_DIR = Path(SPEC.out_dir)
STOP_FILE = OUT_DIR / ".stop"
TABLE = RequestTable.load(SPEC.requests_path)
RECORDER = Recorder()
_MSG_START, _MSG_REPORT, _MSG_FINISH = "mmeperf_start", "mmeperf_report", "mmeperf_finish"


class _State:
    """This process's view of the run."""

    load_start: float | None = None
    schedule: OpenLoopSchedule | None = None
    sampler: RequestSampler | None = None
    stopping = False
    finished = False  # final files written: the writer and report loops end
    quit_ready = False  # the shape returns None at its next tick, and Locust quits
    aggregator: Aggregator | None = None
    reporter: WorkerReporter | None = None  # workers: numbered reports to the master

    def begin(self, load_start: float, index: int, processes: int) -> None:
        self.load_start = load_start
        seed = None if PROFILE.seed is None else PROFILE.seed + index
        self.sampler = RequestSampler(TABLE, seed=seed)
        if OPEN is not None:
            self.schedule = OpenLoopSchedule(
                PLANS, load_start=load_start, index=index, processes=processes,
                arrivals=OPEN.arrivals, seed=seed,
            )


STATE = _State()


class InvocationFailed(Exception):
    """How a failed invocation shows in Locust's own failure statistics."""


def _stage_now(now: float) -> int:
    return stage_index_at(PLANS, now - STATE.load_start) if STATE.load_start is not None else 0


def _kind(cache: CacheState | None) -> str:
    return (cache or CacheState.UNKNOWN).latency_kind


class _MmeUser(User):
    """What every mmeperf user does: draw a request, time it, record it once."""

    abstract = True

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self._slot: float | None = None

    # closed loop: Locust's wait between tasks; open loop: wait for the next claimed send slot.
    def wait_time(self) -> float:  # type: ignore[override]
        if OPEN is None:
            return float(_CLOSED_WAIT(self))
        self._slot = STATE.schedule.next() if STATE.schedule is not None else None
        if self._slot is None:
            return 3600.0  # no more sends: idle (and be stopped at once, not waited for)
        return max(0.0, self._slot - time.time())

    @task
    def invoke(self) -> None:
        if STATE.sampler is None or STATE.stopping:
            return
        scheduled: float | None = None
        if OPEN is not None:
            if self._slot is None and STATE.schedule is not None:
                self._slot = STATE.schedule.next()
                if self._slot is not None:
                    gevent.sleep(max(0.0, self._slot - time.time()))
            if self._slot is None:
                return
            scheduled, self._slot = self._slot, None
        self._one(scheduled)

    def _one(self, scheduled: float | None) -> None:
        assert STATE.sampler is not None
        model, body, ctype = STATE.sampler.next()
        sent_at = time.time()
        stage = _stage_now(scheduled if scheduled is not None else sent_at)
        start = time.perf_counter()
        status, cache, code, message, length = 0, None, None, None, 0
        try:
            status, cache, code, message, length = self.send(model, body, ctype)
        except GreenletExit:
            # Stopped mid-request (stop_timeout passed): still counted, as a failure with a reason.
            self._record(model, stage, start, sent_at, scheduled, 0, None, "Cancelled",
                         "the run stopped before the response arrived", 0)
            raise
        except Exception as exc:
            status, code, message = 0, type(exc).__name__, str(exc) or repr(exc)
        self._record(model, stage, start, sent_at, scheduled, status, cache, code, message, length)

    def _record(
        self, model: str, stage: int, start: float, sent_at: float, scheduled: float | None,
        status: int, cache: CacheState | None, code: str | None, message: str | None, length: int,
    ) -> None:
        elapsed = time.perf_counter() - start
        late = False
        if scheduled is not None:
            lateness = max(0.0, sent_at - scheduled)
            elapsed += lateness  # timed from the scheduled send: coordinated-omission free
            late = OPEN is not None and lateness > OPEN.late_after
        ok = 200 <= status < 300
        done = sent_at + (time.perf_counter() - start)
        latency_us = round(elapsed * 1e6)
        RECORDER.record(
            stage=stage, model=model, latency_us=latency_us, ok=ok, kind=_kind(cache),
            sent_at=sent_at, done_at=done, late=late,
            status=status, error_code=code, message=message,
        )
        self.environment.events.request.fire(
            request_type="POST",
            name=model,
            response_time=elapsed * 1000.0,
            response_length=length,
            exception=None if ok else InvocationFailed(f"{status} {code or ''}".strip()),
            context={},
        )

    def send(self, model: str, body: bytes, content_type: str) -> tuple[int, CacheState, str | None, str | None, int]:
        """Send one request and read the whole response: (status, cache, error code, message, bytes)."""
        raise NotImplementedError


def _closed_wait_factory() -> Any:
    return between(PROFILE.wait.min, PROFILE.wait.max)


_CLOSED_WAIT = _closed_wait_factory()


class _Signer:
    """SigV4 headers from botocore (imported here, after Locust, never in the library process)."""

    def __init__(self) -> None:
        from botocore.auth import SigV4Auth
        from botocore.credentials import Credentials
        from botocore.session import get_session

        assert SPEC.auth is not None
        auth = SPEC.auth
        if auth.access_key and auth.secret_key:
            creds = Credentials(auth.access_key, auth.secret_key, auth.session_token)
        else:
            found = get_session().get_credentials()
            if found is None:
                raise RuntimeError("SigV4 signing needs AWS credentials; none were found")
            creds = found
        self._auth = SigV4Auth(creds, auth.service, auth.region)

    def headers(self, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method="POST", url=url, data=body, headers=headers)
        self._auth.add_auth(request)
        return dict(request.headers.items())


if SPEC.user == "http":
    from geventhttpclient.url import URL

    _PATH = invocation_path(SPEC.endpoint_name)
    _URL = (SPEC.runtime_url or "").rstrip("/") + _PATH
    _SIGNER = _Signer() if SPEC.auth is not None else None

    class MmeHttpUser(_MmeUser, FastHttpUser):
        """SageMaker runtime over HTTP on FastHttpUser's geventhttpclient pool, one socket per user."""

        host = SPEC.runtime_url
        network_timeout = PROFILE.request_timeout
        connection_timeout = PROFILE.request_timeout
        concurrency = 1

        def on_start(self) -> None:
            self._http = self.client.client.clientpool.get_client(URL(_URL))

        def send(self, model: str, body: bytes, content_type: str) -> tuple[int, CacheState, str | None, str | None, int]:
            headers = request_headers(model, content_type=content_type, accept=TABLE.accept)
            if _SIGNER is not None:
                headers = _SIGNER.headers(_URL, body, headers)
            response = self._http.request("POST", _PATH, body=body, headers=headers)
            payload = response.read()  # the whole body, before the timer stops
            result = parse_answer(response.status_code, lower_headers(response.items()), payload, 0.0)
            return result.status, result.cache, result.error_code, result.error_message, len(payload)

elif SPEC.user == "boto3":
    import boto3
    from botocore.config import Config

    _auth = SPEC.auth
    _max_users = max((p.users_at(p.duration_s) for p in PLANS), default=1)
    _CLIENT = boto3.client(
        "sagemaker-runtime",
        endpoint_url=SPEC.runtime_url,
        region_name=_auth.region if _auth else "us-east-1",
        # The local MME ignores auth; boto3 still wants something to sign with.
        aws_access_key_id=(_auth.access_key if _auth else None) or ("mmeperf" if _auth is None else None),
        aws_secret_access_key=(_auth.secret_key if _auth else None) or ("mmeperf" if _auth is None else None),
        aws_session_token=_auth.session_token if _auth else None,
        config=Config(
            retries={"total_max_attempts": 1 + SPEC.boto3_retries, "mode": "standard"},
            max_pool_connections=max(10, _max_users),
            connect_timeout=PROFILE.request_timeout,
            read_timeout=PROFILE.request_timeout,
        ),
    )

    class MmeBoto3User(_MmeUser):
        """``invoke_endpoint`` through boto3's sagemaker-runtime client (the reference's way)."""

        def send(self, model: str, body: bytes, content_type: str) -> tuple[int, CacheState, str | None, str | None, int]:
            result = invoke_boto3(_CLIENT, SPEC.endpoint_name, model, body, content_type=content_type,
                                  accept=TABLE.accept)
            return result.status, result.cache, result.error_code, result.error_message, len(result.body)

else:
    from mmeperf.plugins import get_endpoint_class, load_object

    assert SPEC.endpoint is not None, "user 'endpoint' needs an endpoint spec"
    _target = SPEC.endpoint.target
    _cls: Any = load_object(_target) if ":" in _target else get_endpoint_class(_target)
    _factory = getattr(_cls, SPEC.endpoint.factory) if SPEC.endpoint.factory else _cls
    _ENDPOINT = _factory(**SPEC.endpoint.kwargs)

    class MmeEndpointUser(_MmeUser):
        """An endpoint plugin's own ``invoke`` (errors are results, not exceptions)."""

        def send(self, model: str, body: bytes, content_type: str) -> tuple[int, CacheState, str | None, str | None, int]:
            result = _ENDPOINT.invoke(model, body, content_type=content_type, accept=TABLE.accept)
            return result.status, result.cache, result.error_code, result.error_message, len(result.body)


class MmeShape(LoadTestShape):
    """Users (closed loop) or the in-flight pool (open loop) of the stage the clock is in."""

    _last: tuple[int, float] | None = None

    def tick(self) -> tuple[int, float] | None:
        if STATE.quit_ready:
            return None
        if STATE.load_start is None:
            # The open-loop pool gets half a second to spawn before the first scheduled send.
            start = time.time() + (0.5 if OPEN is not None else 0.0)
            STATE.begin(start, 0, 1)
            if isinstance(self.runner, MasterRunner):
                self.runner.send_message(_MSG_START, {"load_start": start})
        if STATE.stopping and self._last is not None:
            return self._last
        assert STATE.load_start is not None
        t = max(0.0, time.time() - STATE.load_start)
        plan = PLANS[stage_index_at(PLANS, t)]
        if OPEN is not None:
            self._last = (plan.users, max(float(plan.users), 100.0))
        else:
            self._last = (plan.users_at(t - plan.start_s), plan.spawn_rate)
        return self._last


# --- process wiring -------------------------------------------------------------------------


def _pause() -> None:
    gevent.sleep(0)


def _worker_report_loop(reporter: WorkerReporter) -> None:
    while not reporter.finished:
        gevent.sleep(1.0)
        reporter.report(_pause)


def _on_worker_start(environment: Environment, msg: Any, **_: Any) -> None:
    runner = environment.runner
    assert isinstance(runner, WorkerRunner)
    STATE.begin(float(msg.data["load_start"]), max(runner.worker_index, 0), SPEC.processes)


def _on_worker_finish(environment: Environment, msg: Any, **_: Any) -> None:
    STATE.stopping = True
    environment.runner.stop()  # type: ignore[union-attr,no-untyped-call]  # graceful: in-flight requests finish (stop_timeout)
    STATE.finished = True
    assert STATE.reporter is not None
    STATE.reporter.final()


def _on_master_report(environment: Environment, msg: Any, **_: Any) -> None:
    if STATE.aggregator is not None:
        STATE.aggregator.receive(str(msg.node_id), msg.data)


def _finish(environment: Environment, aggregator: Aggregator, status: str, reason: str | None) -> None:
    runner = environment.runner
    assert runner is not None
    STATE.stopping = True
    aggregator.stop_at = time.time()
    aggregator.stop_reason = reason
    aggregator.status = "stopping"
    if isinstance(runner, MasterRunner):
        runner.send_message(_MSG_FINISH, {})
        deadline = time.time() + PROFILE.stop_timeout + 15.0
        # A worker is done once its final report and every report it numbered before it are in
        # (a regular report built while the final one was sent may arrive after it).
        while aggregator.workers_done() < SPEC.workers and time.time() < deadline:
            gevent.sleep(0.05)
        if aggregator.workers_done() < SPEC.workers:
            aggregator.stop_reason = (
                (reason or "") + f" (only {aggregator.workers_done()} of {SPEC.workers} workers sent all their reports)"
            )
    else:
        # Stop the users, not the runner: runner.stop() would end the shape greenlet, and Locust's
        # main would quit before the final results are written. In-flight requests finish
        # (up to stop_timeout); a cancelled one is recorded as a failure.
        runner.stop_users(dict(runner.user_classes_count))
        aggregator.merge(RECORDER.drain())
    aggregator.status = status
    STATE.finished = True
    aggregator.flush(time.time(), final=True)
    aggregator.close()
    # Locust's own CSV writer (1 s cadence, no final write) and the workers' last stats report
    # need one more beat so Locust's CSVs hold the same totals as ours.
    gevent.sleep(2.2 if isinstance(runner, MasterRunner) else 1.2)
    STATE.quit_ready = True  # headless: the shape's next tick returns None and Locust quits
    if environment.web_ui is not None:
        gevent.sleep(1.5)
        environment.web_ui.stop()  # type: ignore[no-untyped-call]
        runner.quit()


def _writer_loop(environment: Environment, aggregator: Aggregator) -> None:
    runner = environment.runner
    assert runner is not None
    local = not isinstance(runner, MasterRunner)
    while not STATE.finished:
        now = time.time()
        gevent.sleep(1.0 - (now % 1.0) + 0.02)  # just after each wall-clock second
        if STATE.finished:
            return
        now = time.time()
        if local:
            aggregator.merge(RECORDER.drain(_pause))
        aggregator.load_start = STATE.load_start
        aggregator.note_users(now, runner.user_count)
        if STATE.load_start is not None and aggregator.status == "starting":
            aggregator.status = "running"
        finish: tuple[str, str | None] | None = None
        if STATE.load_start is not None and not STATE.stopping:
            if STOP_FILE.exists():
                finish = ("stopped", "stopped on request")
            elif now >= STATE.load_start + PLANS[-1].end_s:
                finish = ("completed", None)
            else:
                reason = aggregator.check_stop(now)
                if reason is not None:
                    finish = ("stopped", reason)
        aggregator.flush(now)
        if finish is not None:
            STATE.stopping = True
            gevent.spawn(_finish, environment, aggregator, *finish)


@events.init.add_listener  # type: ignore[untyped-decorator]
def _on_init(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message(_MSG_START, _on_worker_start)
        runner.register_message(_MSG_FINISH, _on_worker_finish, concurrent=True)
        STATE.reporter = WorkerReporter(RECORDER, lambda data: runner.send_message(_MSG_REPORT, data))
        gevent.spawn(_worker_report_loop, STATE.reporter)
        return
    aggregator = Aggregator(
        OUT_DIR, profile=PROFILE, t0=SPEC.t0, labels=SPEC.labels,
        lag_s=SPEC.lag_s if isinstance(runner, MasterRunner) else 1.0,
    )
    aggregator.pause = _pause
    STATE.aggregator = aggregator
    if isinstance(runner, MasterRunner):
        runner.register_message(_MSG_REPORT, _on_master_report)
    aggregator.flush(time.time())
    gevent.spawn(_writer_loop, environment, aggregator)
