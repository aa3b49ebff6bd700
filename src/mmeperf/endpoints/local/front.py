"""The front of a multi-instance local MME: one ASGI app on uvicorn that answers the SageMaker
runtime call by routing it to one of the fleet's instances (:mod:`.router`, :mod:`.fleet`).

Routes: ``POST /endpoints/{name}/invocations`` (and ``POST /invocations`` with the target-model
header), routed; ``/ping`` (healthy while an instance is in service); ``GET /models`` (every model
some instance holds, one page); ``GET /metrics`` (Prometheus: each instance's counters labelled
``instance``, plus the variant's aggregates); ``GET /mmeperf/metrics`` (:class:`FleetMetrics`,
which reads as the aggregated ``ServerMetrics``); ``GET /mmeperf/status``;
``GET /mmeperf/scaling[?since=N]`` (the scaling timeline). The rest of the container API belongs
to the instances and answers 404 here.

``python -m mmeperf.endpoints.local.front --config FLEET_JSON [--ready-file PATH]`` runs it; this
is what ``LocalEndpoint(instance_count=N)`` and ``mmeperf serve --instance-count N`` start.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs

from prometheus_client.registry import Collector

from mmeperf.endpoints._http import HttpResponse
from mmeperf.endpoints.local.asgi import LifespanApp, Message, Receive, Scope, Send
from mmeperf.endpoints.local.fleet import Fleet, FleetConfig, FleetMetrics
from mmeperf.endpoints.local.owner import watch_owner
from mmeperf.endpoints.local.replies import mms_json, not_found, ping
from mmeperf.metrics import LATENCY_FIELDS, ServerMetrics
from mmeperf.protocol import HEADER_ERROR_TYPE, HEADER_TARGET_MODEL

__all__ = ["FrontApp", "main", "prometheus_text", "run"]

log = logging.getLogger("mmeperf.fleet")


_TARGET = HEADER_TARGET_MODEL.lower()
_JSON = {"content-type": "application/json"}


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class FrontApp(LifespanApp):
    """ASGI application in front of a :class:`Fleet`."""

    log = log

    def __init__(self, fleet: Fleet) -> None:
        super().__init__()
        self.fleet = fleet

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            answer = await self._http(scope, receive)
        except _Disconnected:
            return
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()]
        headers.append((b"content-length", str(len(answer.body)).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    async def _start(self) -> None:
        await self.fleet.start()

    async def _stop(self) -> None:
        await self.fleet.stop()

    async def _http(self, scope: Scope, receive: Receive) -> HttpResponse:
        method: str = scope["method"]
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        path = raw.split(b"?", 1)[0]
        fleet = self.fleet
        if method == "POST" and ((path.startswith(b"/endpoints/") and path.endswith(b"/invocations"))
                                 or path == b"/invocations"):
            return await self._invoke(scope, receive, raw.decode("latin-1"))
        if path == b"/ping":
            reply = ping(self._ready and fleet.in_service > 0)
            return _from_reply(reply.status, reply.headers, reply.body)
        if method == "GET":
            if path == b"/metrics":
                text = prometheus_text(await fleet.metrics(), self.loop_monitor)
                return HttpResponse(200, {"content-type": "text/plain; version=0.0.4; charset=utf-8"}, text)
            if path == b"/mmeperf/metrics":
                return HttpResponse(200, dict(_JSON), (await fleet.metrics()).model_dump_json().encode())
            if path == b"/mmeperf/status":
                return HttpResponse(200, dict(_JSON), json.dumps({**fleet.status(), "loop": self.loop_monitor.status()}).encode())
            if path == b"/mmeperf/scaling":
                query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
                try:
                    since = max(0, int(query.get("since", ["0"])[0]))
                except ValueError:
                    since = 0
                events = [e.model_dump(mode="json") for e in fleet.timeline.events(since=since)]
                return HttpResponse(200, dict(_JSON), json.dumps({"start": fleet.timeline.start, "events": events}).encode())
            if path in (b"/models", b"/models/"):
                held = fleet.loaded_models()
                reply = mms_json(200, {"models": [{"modelName": m, "modelUrl": m, "instances": where}
                                                  for m, where in sorted(held.items())]})
                return _from_reply(reply.status, reply.headers, reply.body)
        await _drain(receive)
        reply = not_found()
        return _from_reply(reply.status, reply.headers, reply.body)

    async def _invoke(self, scope: Scope, receive: Receive, path: str) -> HttpResponse:
        fleet = self.fleet
        headers: dict[str, str] = {}
        for key, value in scope["headers"]:
            headers[key.decode("latin-1")] = value.decode("latin-1")
        limit = fleet.config.server.max_payload_bytes
        try:
            body = await _body(receive, headers, limit)
        except _TooLarge:
            fleet.count_front_reply(413)
            return HttpResponse(413, {**_JSON, HEADER_ERROR_TYPE: "ValidationError"},
                                json.dumps({"Message": f"Request body is over the limit of {limit} bytes"}).encode())
        return await fleet.forward(headers.get(_TARGET, ""), path, body, headers)


def _from_reply(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> HttpResponse:
    return HttpResponse(status, {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}, body)


async def _drain(receive: Receive) -> None:
    message: Message = {"more_body": True}
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes (the instance's own 413 limit: the
    front never holds more than an instance would take)."""
    length = headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def prometheus_text(metrics: FleetMetrics, *extra: Collector) -> bytes:
    """``GET /metrics``: each instance's counters (labelled ``instance``, removed ones too),
    gauges of the instances in service, the variant's aggregates (and ``extra``'s, e.g. the
    front's own event-loop monitor)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        Metric,
        SummaryMetricFamily,
    )

    every = {**metrics.retired, **metrics.instances}

    class _Collector(Collector):
        def collect(self) -> Iterator[Metric]:
            counters = (
                ("invocations", "Invocations answered, per instance", "invocations"),
                ("invocation_4xx_errors", "Invocations answered 4xx, per instance", "invocation_4xx_errors"),
                ("invocation_5xx_errors", "Invocations answered 5xx, per instance", "invocation_5xx_errors"),
                ("model_cache_hit", "Invocations whose model was loaded, per instance", "model_cache_hits"),
                ("model_cache_lookups", "Invocations that reached the model cache, per instance", "model_cache_lookups"),
                ("model_loads", "Models loaded, per instance", "model_loads"),
                ("model_unloads", "Models unloaded, per instance", "model_unloads"),
            )
            for name, doc, field in counters:
                family = CounterMetricFamily(name, doc, labels=["instance"])
                for instance, snap in every.items():
                    family.add_metric([instance], getattr(snap, field))
                yield family
            for cw_name, base in LATENCY_FIELDS.items():
                summary = SummaryMetricFamily(f"{base}_microseconds", f"{cw_name}, microseconds, per instance",
                                              labels=["instance"])
                for instance, snap in every.items():
                    stat = getattr(snap, base)
                    summary.add_metric([instance], count_value=stat.count, sum_value=stat.sum_us)
                yield summary
            gauges: tuple[tuple[str, str, Callable[[ServerMetrics], float | None]], ...] = (
                ("loaded_model_count", "LoadedModelCount, per instance in service", lambda m: m.loaded_model_count),
                ("memory_used_bytes", "Bytes charged to loaded models, per instance", lambda m: m.memory_used_bytes),
                ("cpu_utilization_percent", "CPUUtilization, 100 per core, per instance", lambda m: m.cpu_utilization),
                ("memory_utilization_percent", "MemoryUtilization, per instance", lambda m: m.memory_utilization),
            )
            for name, doc, read in gauges:
                gauge = GaugeMetricFamily(name, doc, labels=["instance"])
                for instance, snap in metrics.instances.items():
                    value = read(snap)
                    if value is not None:
                        gauge.add_metric([instance], value)
                yield gauge
            yield GaugeMetricFamily("instance_count", "Instances in service", value=metrics.instance_count)
            yield GaugeMetricFamily("loaded_model_count_sum", "LoadedModelCount, Sum across instances",
                                    value=metrics.loaded_model_count)
            if metrics.loaded_model_count_average is not None:
                yield GaugeMetricFamily("loaded_model_count_average", "LoadedModelCount, Average across instances",
                                        value=metrics.loaded_model_count_average)
            yield CounterMetricFamily("invocations_per_instance", "InvocationsPerInstance, Sum (1/instances per request)",
                                      value=metrics.invocations_per_instance)
            yield CounterMetricFamily("front_invocations", "Invocations the front answered itself",
                                      value=metrics.front_invocations)
            routes = CounterMetricFamily("routes", "Routing decisions by kind", labels=["kind"])
            for kind, count in metrics.routes.items():
                routes.add_metric([kind], count)
            yield routes

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    for collector in extra:
        registry.register(collector)
    return bytes(generate_latest(registry))


def run(config: FleetConfig, *, ready_file: str | None = None, log_level: str = "warning") -> None:
    """Serve the front until SIGINT/SIGTERM; the instances are stopped (by PID) on the way out."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import uvicorn

    from mmeperf.endpoints.local.server import bind, coalescing_protocol, event_loop_name, serve_on

    config.server.check()
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sock = bind(config.server.host, config.server.port)
    app = FrontApp(Fleet(config))
    app.freeze_startup_heap = True  # this process is the server's own
    loop_name = event_loop_name()
    server = uvicorn.Server(uvicorn.Config(
        app, loop=loop_name, http=coalescing_protocol(), lifespan="on", access_log=False,
        log_level=log_level, server_header=False, proxy_headers=False, date_header=True,
        timeout_keep_alive=75, backlog=2048,
        timeout_graceful_shutdown=max(1, round(config.server.graceful_shutdown_s)),
    ))

    serve_on(server, sock, ready_file, loop_name)

def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m mmeperf.endpoints.local.front")
    parser.add_argument("--config", required=True, help="FleetConfig as JSON")
    parser.add_argument("--ready-file", default=None)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--owner-pid", type=int, default=None, help="stop when this parent is gone")
    args = parser.parse_args()
    watch_owner(args.owner_pid)
    run(FleetConfig.model_validate_json(args.config), ready_file=args.ready_file, log_level=args.log_level)


if __name__ == "__main__":
    main()
