"""The locustfile mmeperf ships: run only by Locust in its own processes, never imported by the library.

It reads the run spec (``MMEPERF_RUN_SPEC``; a worker on another host fetches it from the
master first, see :mod:`mmeperf.load.remote`), defines one user class (fast HTTP, boto3 or an
endpoint plugin's ``invoke``) and the load shape, records every request exactly once in the
process's :class:`~mmeperf.load.recorder.Recorder`, and, on the master (or the single process),
merges the recorders and writes the result folder every second.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import gevent
import locust.runners
import locust.stats
import numpy as np
from gevent import GreenletExit
from gevent.threadpool import ThreadPool
from locust import FastHttpUser, LoadTestShape, User, between, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from mmeperf.load.profile import OpenLoopShape
from mmeperf.load.recorder import Aggregator, Recorder, WorkerReporter, encode, stage_index_at
from mmeperf.load.remote import (
    ENV_MASTER,
    ENV_OWNER_PID,
    ENV_WORKER_BIND,
    ENV_WORKER_DIR,
    install_bundle,
    parse_master,
    spec_bundle,
)
from mmeperf.load.schedule import OpenLoopSchedule, SendSchedule, TraceSchedule
from mmeperf.load.spec import ENV_SPEC, RunSpec
from mmeperf.load.tally import WARMUP_STAGE
from mmeperf.load.trace import Trace
from mmeperf.load.traffic import RequestSampler, RequestTable
from mmeperf.load.workers import WorkerRoster
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
# The once-a-second work (merging, percentiles, writing the run folder) runs in this one native
# thread, never on the event loop that times requests. A thread holding the GIL keeps it until
# the event loop asks for it and the switch interval passes (5 ms by default): 0.1 ms bounds
# what a request can wait for it.
_OFFLOAD = ThreadPool(1)
sys.setswitchinterval(0.0001)

_MSG_START, _MSG_REPORT, _MSG_FINISH = "mmeperf_start", "mmeperf_report", "mmeperf_finish"
_MSG_SPEC_REQUEST, _MSG_SPEC, _MSG_HELLO = "mmeperf_spec_request", "mmeperf_spec", "mmeperf_hello"


def _bind_worker_connection(address: str) -> None:
    """Make this worker's connection to the master leave from ``address`` (a multi-homed host's interface).

    ZeroMQ's ``tcp://SOURCE:0;HOST:PORT`` form; Locust's runners build their client from
    ``locust.rpc.zmqrpc.Client``.
    """
    import zmq.green as zmq
    from locust.rpc import zmqrpc

    class BoundClient(zmqrpc.Client):  # type: ignore[misc]
        def __init__(self, host: str, port: int, identity: str) -> None:
            zmqrpc.BaseSocket.__init__(self, zmq.DEALER, self.ipv4_only(host, port))  # type: ignore[no-untyped-call]
            self.socket.setsockopt(zmq.IDENTITY, identity.encode())
            self.socket.connect(f"tcp://{address}:0;{host}:{port}")

    zmqrpc.Client = BoundClient  # type: ignore[misc]


def _fetch_spec(master: str) -> Path:
    """A worker on another host: ask the master for the run (spec, request table, trace) over Locust's port.

    Asks once a second until the master answers (it may start after the worker), as Locust's own
    ``-f -`` asks for the locustfile.
    """
    from locust.rpc import Message, zmqrpc

    host, port = parse_master(master)
    client_id = f"{socket.gethostname()}_mmeperf_spec_{uuid4().hex}"
    client: Any = zmqrpc.Client(host, port, client_id)  # type: ignore[no-untyped-call]
    got: list[Any] = []

    def ask() -> None:
        n = 0
        while not got:
            client.send(Message(_MSG_SPEC_REQUEST, {"host": socket.gethostname()}, client_id))  # type: ignore[no-untyped-call]
            if n and n % 10 == 0:
                sys.stderr.write(f"mmeperf worker: waiting for the master at {host}:{port} ({n} s)\n")
            n += 1
            gevent.sleep(1.0)

    asker = gevent.spawn(ask)
    try:
        msg = client.recv()
        got.append(msg)
    finally:
        asker.kill()
        client.close(linger=0)
    if msg.type != _MSG_SPEC or not isinstance(msg.data, dict):
        raise SystemExit(f"mmeperf worker: unexpected answer from the master: {msg.type}")
    if msg.data.get("error"):
        raise SystemExit(f"mmeperf worker: the master refused: {msg.data['error']}")
    folder = Path(os.environ.get(ENV_WORKER_DIR) or tempfile.mkdtemp(prefix="mmeperf-worker-"))
    owner = os.environ.get(ENV_OWNER_PID)
    return install_bundle(msg.data, folder, owner_pid=int(owner) if owner else None)


if os.environ.get(ENV_WORKER_BIND):
    _bind_worker_connection(os.environ[ENV_WORKER_BIND])
REMOTE = ENV_SPEC not in os.environ and bool(os.environ.get(ENV_MASTER))
if REMOTE:
    os.environ[ENV_SPEC] = str(_fetch_spec(os.environ[ENV_MASTER]))

SPEC = RunSpec.read(os.environ[ENV_SPEC])
PROFILE = SPEC.profile
PLANS = PROFILE.stages()
OPEN = PROFILE.scheduled_shape
OUT_DIR = Path(SPEC.out_dir)
STOP_FILE = OUT_DIR / ".stop"
TABLE = RequestTable.load(SPEC.requests_path)
TRACE = Trace.load(SPEC.trace_path) if SPEC.trace_path else None
# Plain lists: the hot loop indexes them once per send.
_TRACE_MODELS: list[str] = [] if TRACE is None else [TRACE.models[i] for i in TRACE.model_ids.tolist()]
_TRACE_PAYLOADS: list[int] | None = None if TRACE is None or TRACE.payloads is None else TRACE.payloads.tolist()
RECORDER = Recorder()


class _State:
    """This process's view of the run."""

    load_start: float | None = None
    warmup_start: float | None = None  # the warm-up runs from here to load_start
    warming = False  # a requests_per_model warm-up is under way (no users yet)
    schedule: SendSchedule | None = None
    sampler: RequestSampler | None = None
    stopping = False
    finished = False  # final files written: the writer and report loops end
    quit_ready = False  # the shape returns None at its next tick, and Locust quits
    aggregator: Aggregator | None = None
    reporter: WorkerReporter | None = None  # workers: numbered reports to the master
    processes = 1  # load processes the schedule is dealt out to (the master: workers at the start)

    def begin(self, load_start: float, index: int, processes: int, warmup_start: float | None = None) -> None:
        self.load_start = load_start
        self.warmup_start = warmup_start
        seed = None if PROFILE.seed is None else PROFILE.seed + index
        self.sampler = RequestSampler(TABLE, seed=seed)
        if OPEN is not None and index >= processes:
            # Joined after the start: the schedule was already dealt out to the others.
            self.schedule = TraceSchedule(np.zeros(0), load_start=load_start)
        elif TRACE is not None:
            self.schedule = TraceSchedule(TRACE.offsets, load_start=load_start, index=index, processes=processes)
        elif isinstance(OPEN, OpenLoopShape):
            plans = list(PLANS)
            if warmup_start is not None and warmup_start < load_start and PLANS[0].rate:
                # A duration warm-up sends at the first stage's rate before the measured stages.
                plans.insert(0, PLANS[0].model_copy(update={
                    "index": WARMUP_STAGE, "name": "warm-up", "start_s": warmup_start - load_start,
                    "duration_s": load_start - warmup_start,
                }))
            self.schedule = OpenLoopSchedule(
                plans, load_start=load_start, index=index, processes=processes,
                arrivals=OPEN.arrivals, seed=seed,
            )


STATE = _State()


class InvocationFailed(Exception):
    """How a failed invocation shows in Locust's own failure statistics."""


def _stage_now(now: float) -> int:
    if PROFILE.warmup is not None and (STATE.load_start is None or now < STATE.load_start):
        return WARMUP_STAGE
    return stage_index_at(PLANS, now - STATE.load_start) if STATE.load_start is not None else 0


def _kind(cache: CacheState | None) -> str:
    return (cache or CacheState.UNKNOWN).latency_kind


class _MmeUser(User):
    """What every mmeperf user does: draw a request, time it, record it once."""

    abstract = True

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self._slot: float | None = None
        self._row = -1  # the trace row of the claimed slot (-1: not a trace replay)
        self._claimed_at = 0.0  # when this user, free, claimed its slot (time.time clock)
        self._sent_at = 0.0
        self._start = 0.0
        #: The kernel's receive stamp of the response's last byte (time.time clock), when send() has one.
        self._rx_stamp: float | None = None

    # closed loop: Locust's wait between tasks; open loop: wait for the next claimed send slot.
    def wait_time(self) -> float:  # type: ignore[override]
        if OPEN is None:
            return float(_CLOSED_WAIT(self))
        claim = STATE.schedule.claim() if STATE.schedule is not None else None
        if claim is None:
            self._slot = None
            return 3600.0  # no more sends: idle (and be stopped at once, not waited for)
        self._slot, self._row = claim
        self._claimed_at = time.time()
        return max(0.0, self._slot - self._claimed_at)

    @task
    def invoke(self) -> None:
        if STATE.sampler is None or STATE.stopping:
            return
        scheduled: float | None = None
        request: tuple[str, bytes, str] | None = None
        if OPEN is not None:
            if self._slot is None and STATE.schedule is not None:
                claim = STATE.schedule.claim()
                if claim is not None:
                    self._slot, self._row = claim
                    self._claimed_at = time.time()
                    gevent.sleep(max(0.0, self._slot - self._claimed_at))
            if self._slot is None:
                return
            scheduled, self._slot = self._slot, None
            row, self._row = self._row, -1
            if row >= 0:
                request = _trace_request(row)
        self._one(scheduled, request)

    def _one(self, scheduled: float | None, request: tuple[str, bytes, str] | None = None) -> None:
        if request is None:
            assert STATE.sampler is not None
            request = STATE.sampler.next()
        model, body, ctype = request
        # send() marks the moment it hands the request to the network (_mark_sent); these are
        # the fallback when it fails before that.
        self._sent_at, self._start = time.time(), time.perf_counter()
        self._rx_stamp = None
        status, cache, code, message, length = 0, None, None, None, 0
        try:
            status, cache, code, message, length = self.send(model, body, ctype)
        except GreenletExit:
            # Stopped mid-request (stop_timeout passed): still counted, as a failure with a reason.
            self._record(model, scheduled, 0, None, "Cancelled", "the run stopped before the response arrived", 0)
            raise
        except Exception as exc:
            status, code, message = 0, type(exc).__name__, str(exc) or repr(exc)
        self._record(model, scheduled, status, cache, code, message, length)

    def _mark_sent(self) -> None:
        """Called by send() right before the request goes out: late sends and timing start here."""
        self._sent_at, self._start = time.time(), time.perf_counter()

    def _record(
        self, model: str, scheduled: float | None,
        status: int, cache: CacheState | None, code: str | None, message: str | None, length: int,
    ) -> None:
        end, now = time.perf_counter(), time.time()
        sent_at, start = self._sent_at, self._start
        elapsed = end - start
        lag_us: int | None = None
        if self._rx_stamp is not None:
            # The response was whole in the kernel at _rx_stamp; the time since is this load
            # process's own delay (other users' work on the event loop), not the server's.
            lag = min(max(now - self._rx_stamp, 0.0), elapsed)
            elapsed -= lag
            end -= lag
            lag_us = round(lag * 1e6)
        stage = _stage_now(scheduled if scheduled is not None else sent_at)
        late = False
        lateness_us: int | None = None
        if scheduled is not None:
            lateness = max(0.0, sent_at - scheduled)
            # Coordinated-omission free: the time the send waited because no user was free (every
            # one held by the server) counts as latency; the timer wake-up's own jitter of a free
            # user (the load process's, ~1 ms in gevent) does not. Both are in lateness.
            elapsed += max(0.0, min(self._claimed_at, sent_at) - scheduled)
            late = OPEN is not None and lateness > OPEN.late_after
            lateness_us = round(lateness * 1e6)
        ok = 200 <= status < 300
        done = sent_at + (end - start)
        latency_us = round(elapsed * 1e6)
        RECORDER.record(
            stage=stage, model=model, latency_us=latency_us, ok=ok, kind=_kind(cache),
            sent_at=sent_at, done_at=done, late=late,
            status=status, error_code=code, message=message, lateness_us=lateness_us, client_lag_us=lag_us,
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


def _trace_request(row: int) -> tuple[str, bytes, str]:
    """A trace row's request: its model, and its payload row (or one drawn at random)."""
    sampler = STATE.sampler
    assert sampler is not None
    i = _TRACE_PAYLOADS[row] if _TRACE_PAYLOADS is not None else sampler.random_row()
    body, ctype = sampler.payload(i)
    return _TRACE_MODELS[row], body, ctype


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
    import gevent.socket
    from geventhttpclient.url import URL

    from mmeperf.load import rxstamp

    class _StampedSocket(gevent.socket.socket):  # type: ignore[misc]
        """A cooperative socket whose reads keep the kernel's receive stamp of the last packet read.

        ``on_send`` is called right before each ``sendall`` hands bytes to the kernel: the timer
        starts there, after the request is built, as it stops at the kernel's receive stamp.
        """

        rx_stamp: float | None = None
        on_send: Any = None

        def sendall(self, data: bytes, flags: int = 0) -> None:
            if self.on_send is not None:
                self.on_send()
            super().sendall(data, flags)

        def recv(self, bufsize: int, flags: int = 0) -> bytes:  # type: ignore[override]
            data, stamp = rxstamp.recv_stamped(self, bufsize, flags)
            if stamp is not None:
                self.rx_stamp = stamp
            return data

    # Detected once, and held: a socket with the option, open for the process's life, keeps the
    # host's packet stamping on from before the first request (see rxstamp.hold).
    _STAMP_HOLDER = rxstamp.hold() if os.environ.get("MMEPERF_RX_STAMPS", "1") != "0" else None
    _STAMPS = _STAMP_HOLDER is not None

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
            self._socket: _StampedSocket | None = None
            self._send_armed = False
            if _STAMPS:
                # The pool's socket factory, which geventhttpclient documents as overridable.
                pool = self._http._connection_pool
                pool._create_tcp_socket = self._stamped_socket  # type: ignore[method-assign, assignment]

        def _stamped_socket(self, family: int, kind: int, proto: int) -> _StampedSocket:
            """The connection pool's socket factory: this user's one socket, stamping what it receives."""
            self._socket = _StampedSocket(family, kind, proto)
            rxstamp.enable(self._socket)
            self._socket.on_send = self._on_send
            return self._socket

        def _on_send(self) -> None:
            if self._send_armed:  # the request's first bytes: its timer starts now
                self._send_armed = False
                self._mark_sent()

        def send(self, model: str, body: bytes, content_type: str) -> tuple[int, CacheState, str | None, str | None, int]:
            headers = request_headers(model, content_type=content_type, accept=TABLE.accept)
            if _SIGNER is not None:
                headers = _SIGNER.headers(_URL, body, headers)
            self._mark_sent()  # restarted by _on_send when the bytes go out on a stamped socket
            self._send_armed = _STAMPS
            response = self._http.request("POST", _PATH, body=body, headers=headers)
            payload = response.read()  # the whole body, before the timer stops
            if self._socket is not None:
                self._rx_stamp, self._socket.rx_stamp = self._socket.rx_stamp, None
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
            self._mark_sent()
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
            self._mark_sent()
            result = _ENDPOINT.invoke(model, body, content_type=content_type, accept=TABLE.accept)
            return result.status, result.cache, result.error_code, result.error_message, len(result.body)


class MmeShape(LoadTestShape):
    """Users (closed loop) or the in-flight pool (open loop) of the stage the clock is in."""

    _last: tuple[int, float] | None = None

    def tick(self) -> tuple[int, float] | None:
        if STATE.quit_ready:
            return None
        if STATE.load_start is None:
            if STATE.warming:
                return (0, 1.0)
            warmup = PROFILE.warmup
            if warmup is not None and warmup.requests_per_model is not None:
                STATE.warming = True
                STATE.warmup_start = time.time()
                gevent.spawn(_warm_up_models, self.runner, warmup.requests_per_model, warmup.concurrency)
                return (0, 1.0)
            # The open-loop pool gets half a second to spawn before the first scheduled send.
            first = time.time() + (0.5 if OPEN is not None else 0.0)
            warmup_s = warmup.duration if warmup is not None and warmup.duration else 0.0
            _start_load(self.runner, first + warmup_s, first if warmup is not None else None)
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


def _start_load(runner: Any, load_start: float, warmup_start: float | None) -> None:
    STATE.begin(load_start, 0, 1, warmup_start)
    if isinstance(runner, MasterRunner):
        # Each worker present now gets its own load index: its share of an open-loop schedule
        # (Locust's worker_index counts every identity that ever spoke, spec fetchers included).
        roster = _roster()
        nodes = sorted(c.id for c in runner.clients.all if c.state != "missing")
        for node in nodes:
            roster.joined(node, time.time())
            roster.assign_index(node)
        STATE.processes = max(len(nodes), 1)
        for node in nodes:
            _send_start(runner, node)


def _send_start(runner: MasterRunner, node: str) -> None:
    """Tell a worker when the load starts and which share of the schedule is its own."""
    index = _roster().assign_index(node)
    _STARTED.add(node)
    runner.send_message(_MSG_START, {
        "load_start": STATE.load_start, "warmup_start": STATE.warmup_start, "index": index,
        "processes": STATE.processes,
    }, client_id=node)


def _roster() -> WorkerRoster:
    aggregator = STATE.aggregator
    assert aggregator is not None and aggregator.roster is not None
    return aggregator.roster


def _observe_workers(runner: MasterRunner) -> None:
    """Compare Locust's workers with the roster: note the lost (their counted requests stay)."""
    roster = _roster()
    for node in roster.observe({c.id: c.state for c in runner.clients.all}, time.time()):
        reported = STATE.aggregator.reports_requests.get(node, 0) if STATE.aggregator else 0
        sys.stderr.write(f"mmeperf: worker {node} lost; the {reported} requests it reported stay counted\n")


def _warm_up_models(runner: Any, per_model: int, concurrency: int) -> None:
    """Send every model ``per_model`` requests (``concurrency`` at a time), then start the load.

    Runs in the single process, or on the master (which sends no other request); the requests
    are recorded in the warm-up stage, which no measured figure includes.
    """
    requests: list[tuple[str, bytes, str]] = []
    for m, model in enumerate(TRACE.models if TRACE is not None else TABLE.models):
        rows = TABLE.row_models if TRACE is None else None
        i = 0 if rows is None else next((j for j, rm in enumerate(rows) if rm == m), 0)
        ctype = TABLE.content_types[0] if len(TABLE.content_types) == 1 else TABLE.content_types[i]
        requests.extend([(model, TABLE.bodies[i], ctype)] * per_model)
    queue = list(reversed(requests))

    def sender() -> None:
        user = runner.user_classes[0](runner.environment)
        user.on_start()
        while queue and not STATE.stopping:
            user._one(None, queue.pop())

    try:
        gevent.joinall([gevent.spawn(sender) for _ in range(max(1, min(concurrency, len(queue))))])
    finally:
        if isinstance(runner, MasterRunner) and STATE.aggregator is not None:
            STATE.aggregator.merge(RECORDER.drain())  # the master's writer never drains its recorder
        STATE.warming = False
        _start_load(runner, time.time() + (0.5 if OPEN is not None else 0.0), STATE.warmup_start)


# --- process wiring -------------------------------------------------------------------------


def _pause() -> None:
    gevent.sleep(0)


def _watch_owner() -> None:
    """End this process as soon as the process that started the run is gone, however it died.

    A parent-death signal (Linux ``PR_SET_PDEATHSIG``) fires when the *thread* that started the
    child ends, which would kill a run started from a short-lived thread; polling the parent's pid
    is portable and also catches an owner that died before this process got here. An orphan is
    re-parented, so ``getppid()`` changes. The master/single process marks run.json ``aborted``.
    """
    owner = SPEC.owner_pid
    if owner is None:
        return
    while os.getppid() == owner:
        gevent.sleep(0.25)
    STATE.stopping = True
    try:
        run_json = OUT_DIR / "run.json"
        if STATE.aggregator is not None and run_json.exists():
            info = json.loads(run_json.read_text(encoding="utf-8"))
            if info.get("status") not in ("completed", "stopped"):
                info["status"] = "aborted"
                info["stop_reason"] = f"the process that started the run (pid {owner}) ended"
                tmp = run_json.with_name(".run.json.owner")
                tmp.write_text(json.dumps(info, indent=1, default=str), encoding="utf-8")
                os.replace(tmp, run_json)
    finally:
        os._exit(3)


def _worker_report_loop(reporter: WorkerReporter) -> None:
    while not reporter.finished:
        gevent.sleep(1.0)
        reporter.report(_OFFLOAD.apply)


def _on_worker_start(environment: Environment, msg: Any, **_: Any) -> None:
    runner = environment.runner
    assert isinstance(runner, WorkerRunner)
    if STATE.load_start is not None:
        return  # a repeated start (this worker reconnected): keep the schedule it has
    warmup_start = msg.data.get("warmup_start")
    STATE.begin(float(msg.data["load_start"]), int(msg.data.get("index", max(runner.worker_index, 0))),
                int(msg.data.get("processes", SPEC.processes)),
                None if warmup_start is None else float(warmup_start))


def _on_spec_request(environment: Environment, msg: Any, **_: Any) -> None:
    """A worker on another host asks for the run: answer with the spec bundle (built once)."""
    runner = environment.runner
    assert isinstance(runner, MasterRunner)
    global _BUNDLE
    try:
        if _BUNDLE is None:
            _BUNDLE = spec_bundle(SPEC)
        data = _BUNDLE
    except OSError as exc:
        data = {"error": f"the master cannot read its run files: {exc}"}
    runner.send_message(_MSG_SPEC, data, client_id=str(msg.node_id))


_BUNDLE: dict[str, Any] | None = None


def _on_hello(environment: Environment, msg: Any, **_: Any) -> None:
    """A worker's first word, sent once its handlers are in place: who it is; a late one gets its start."""
    node = str(msg.node_id)
    _roster().hello(node, time.time(), dict(msg.data or {}))
    runner = environment.runner
    if isinstance(runner, MasterRunner) and STATE.load_start is not None and not STATE.stopping and node not in _STARTED:
        _send_start(runner, node)  # joined after the start


def _on_worker_connect(client_id: str, **_: Any) -> None:
    if STATE.aggregator is not None and STATE.aggregator.roster is not None:
        _roster().joined(client_id, time.time())


_STARTED: set[str] = set()


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
        roster = _roster()
        # A worker is done once its final report and every report it numbered before it are in
        # (a regular report built while the final one was sent may arrive after it). A worker
        # lost meanwhile is not waited for: what it reported stays counted.
        while time.time() < deadline:
            _observe_workers(runner)
            if all(aggregator.worker_done(node) for node in roster.active()):
                break
            gevent.sleep(0.05)
        missing = [node for node in roster.active() if not aggregator.worker_done(node)]
        if missing:
            aggregator.stop_reason = (
                (reason or "") + f" (only {len(roster.active()) - len(missing)} of {len(roster.active())} "
                "workers sent all their reports)"
            )
    else:
        # Stop the users, not the runner: runner.stop() would end the shape greenlet, and Locust's
        # main would quit before the final results are written. In-flight requests finish
        # (up to stop_timeout); a cancelled one is recorded as a failure.
        runner.stop_users(dict(runner.user_classes_count))
        taken = RECORDER.swap()
        _OFFLOAD.apply(lambda: aggregator.merge(encode(taken)))
    aggregator.status = status
    STATE.finished = True
    if isinstance(runner, MasterRunner):  # worker reports merge on this event loop: stay on it
        aggregator.flush(time.time(), final=True)
        aggregator.close()
    else:
        _OFFLOAD.apply(_final_flush, (aggregator,))
    # Locust's own CSV writer (1 s cadence, no final write) and the workers' last stats report
    # need one more beat so Locust's CSVs hold the same totals as ours.
    gevent.sleep(2.2 if isinstance(runner, MasterRunner) else 1.2)
    STATE.quit_ready = True  # headless: the shape's next tick returns None and Locust quits
    if environment.web_ui is not None:
        gevent.sleep(1.5)
        environment.web_ui.stop()  # type: ignore[no-untyped-call]
        runner.quit()


def _final_flush(aggregator: Aggregator) -> None:
    aggregator.flush(time.time(), final=True)
    aggregator.close()


def _writer_loop(environment: Environment, aggregator: Aggregator) -> None:
    """Once a second: take the recorder's buffers (O(1)) and have the rest done off the request path.

    In a load process (the single process) merging, percentiles, the stop policy and the file
    writes run in a native thread (:data:`_OFFLOAD`); the master sends no requests and does it
    in place.
    """
    runner = environment.runner
    assert runner is not None
    local = not isinstance(runner, MasterRunner)
    while not STATE.finished:
        now = time.time()
        gevent.sleep(1.0 - (now % 1.0) + 0.02)  # just after each wall-clock second
        if STATE.finished:
            return
        now = time.time()
        kwargs: dict[str, Any] = {
            "users": runner.user_count, "load_start": STATE.load_start, "warmup_start": STATE.warmup_start,
            "taken": RECORDER.swap() if local else None,
            "stop_requested": STOP_FILE.exists(), "stopping": STATE.stopping,
        }
        if local:
            finish = _OFFLOAD.apply(aggregator.tick, (now,), kwargs)
        else:
            assert isinstance(runner, MasterRunner)
            _observe_workers(runner)
            finish = aggregator.tick(now, **kwargs)
        if finish is not None and not STATE.stopping:
            STATE.stopping = True
            # The loop ends here: the finish owns the aggregator from now on (no two threads in it).
            gevent.spawn(_finish, environment, aggregator, *finish)
            return


@events.init.add_listener  # type: ignore[untyped-decorator]
def _on_init(environment: Environment, **_: Any) -> None:
    gevent.spawn(_watch_owner)
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message(_MSG_START, _on_worker_start)
        runner.register_message(_MSG_FINISH, _on_worker_finish, concurrent=True)
        STATE.reporter = WorkerReporter(RECORDER, lambda data: runner.send_message(_MSG_REPORT, data))
        gevent.spawn(_worker_report_loop, STATE.reporter)
        runner.send_message(_MSG_HELLO, {
            "host": socket.gethostname(), "pid": os.getpid(), "address": os.environ.get(ENV_WORKER_BIND) or None,
            "remote": REMOTE,
        })
        return
    aggregator = Aggregator(
        OUT_DIR, profile=PROFILE, t0=SPEC.t0, labels=SPEC.labels,
        lag_s=SPEC.lag_s if isinstance(runner, MasterRunner) else 1.0,
    )
    aggregator.extra_info = dict(SPEC.run_info)
    if isinstance(runner, MasterRunner):
        aggregator.pause = _pause  # the master's event loop carries worker reports: let them in
        aggregator.roster = WorkerRoster()
    STATE.aggregator = aggregator
    if isinstance(runner, MasterRunner):
        runner.register_message(_MSG_REPORT, _on_master_report)
        runner.register_message(_MSG_SPEC_REQUEST, _on_spec_request)
        runner.register_message(_MSG_HELLO, _on_hello)
        environment.events.worker_connect.add_listener(_on_worker_connect)  # type: ignore[no-untyped-call]
    aggregator.flush(time.time())
    gevent.spawn(_writer_loop, environment, aggregator)
