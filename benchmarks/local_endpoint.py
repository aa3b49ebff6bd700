"""Benchmark the local MME against a bare one-model server, MLServer, and a raw load + predict.

One run, same cores, same load client (wrk in a subprocess when installed, else this script's
own asyncio client in a subprocess), 64 connections, one CSV row per request:

  (a) local MME serving the 51 churn models, all resident  vs  a bare uvicorn + xgboost server
      holding one of those models (written below: bare ASGI, inplace_predict on the loop);
  (b) local MME  vs  MLServer serving the same 51 models (mlserver-xgboost, V2 REST, defaults
      but parallel_workers=0: its worker processes fail to start with MLServer 1.7.1 here);
  (c) a cache miss (first request for a model, client-side)  vs  extracting its archive,
      loading the Booster and predicting one row in this process; the two alternate model by
      model, so both meet the same machine load, and this process runs OpenMP with the MME
      server's setting (OMP_WAIT_POLICY=PASSIVE; the baseline servers keep the environment as is).

Prints the measured figures and the ratios. Usage::

    python benchmarks/local_endpoint.py [--duration 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

# --- the bare one-model baseline server (run with --baseline-server) ------------------------


def baseline_server(model_file: str, port_file: str) -> None:
    """The smallest honest uvicorn + xgboost server: bare ASGI, CSV in, CSV out, one model."""
    import numpy as np
    import uvicorn
    import xgboost

    booster = xgboost.Booster(model_file=model_file)
    booster.set_param({"nthread": 1})

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["path"] == "/ping":
            out, status = b"ok", 200
        else:
            try:
                rows = np.array([line.split(b",") for line in body.strip().split(b"\n")], dtype=np.float32)
                preds = booster.inplace_predict(rows)
                out, status = ",".join(str(float(p)) for p in preds).encode(), 200
            except Exception as exc:  # a benchmark server still answers bad input with 400
                out, status = str(exc).encode(), 400
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/csv"), (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    Path(port_file).write_text(str(sock.getsockname()[1]))
    server = uvicorn.Server(uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="off",
                                           access_log=False, log_level="warning"))
    server.run(sockets=[sock])


# --- the fallback load client (run with --client) ---------------------------------------------


def python_client(spec_file: str, duration: float, connections: int) -> None:
    """Keep-alive HTTP/1.1 over asyncio streams (uvloop), requests round-robin; prints JSON."""
    import uvloop

    spec = json.loads(Path(spec_file).read_text())
    host, port = spec["host"], spec["port"]
    requests = [
        (f"POST {r['path']} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {r['content_type']}\r\n"
         + "".join(f"{k}: {v}\r\n" for k, v in r["headers"].items())
         + f"Content-Length: {len(r['body'].encode())}\r\n\r\n").encode() + r["body"].encode()
        for r in spec["requests"]
    ]
    latencies: list[float] = []
    errors = 0

    async def worker(offset: int, stop_at: float) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        i = offset
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += connections
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if status >= 400:
                errors += 1
        writer.close()

    async def main() -> None:
        stop_at = time.perf_counter() + duration
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k, stop_at) for k in range(connections)))
        elapsed = time.perf_counter() - t0
        lat = sorted(latencies)
        print(json.dumps({
            "requests": len(lat), "rps": len(lat) / elapsed, "errors": errors,
            "p50_ms": lat[len(lat) // 2] * 1e3, "p99_ms": lat[int(len(lat) * 0.99)] * 1e3,
        }))

    uvloop.run(main())


# --- driving a load -------------------------------------------------------------------------

WRK_SCRIPT = """
local f = io.open(os.getenv("MMEPERF_SPEC"))
local reqs = {}
for line in f:lines() do
  local path, ctype, header, value, body = line:match("^(%S+)\\t(%S+)\\t(%S*)\\t(%S*)\\t(.*)$")
  local headers = {["Content-Type"] = ctype}
  if header ~= "" then headers[header] = value end
  table.insert(reqs, wrk.format("POST", path, headers, body))
end
f:close()
local i = 0
function setup(thread) thread:set("offset", i); i = i + 1 end
local n = 0
request = function()
  n = n + 1
  return reqs[((n * 2 + (offset or 0)) % #reqs) + 1]
end
"""


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def run_load(host: str, port: int, requests: list[dict[str, Any]], *, duration: float,
             connections: int, work: Path) -> dict[str, Any]:
    """One measured run (after a 2 s warm-up run) with wrk, or the Python client if absent."""
    wrk = shutil.which("wrk")
    for seconds, measured in ((2.0, False), (duration, True)):
        if wrk:
            spec = work / "requests.tsv"
            with spec.open("w") as fh:
                for r in requests:
                    (header, value), = r["headers"].items() or [("", "")]
                    fh.write(f"{r['path']}\t{r['content_type']}\t{header}\t{value}\t{r['body']}\n")
            script = work / "load.lua"
            script.write_text(WRK_SCRIPT)
            out = subprocess.run(
                [wrk, "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script),
                 f"http://{host}:{port}"],
                capture_output=True, text=True, env={**os.environ, "MMEPERF_SPEC": str(spec)}, check=True,
            ).stdout
            if "Requests/sec" not in out or "50%" not in out:
                raise RuntimeError(f"wrk did not report a run:\n{out}")
            result = {
                "client": "wrk",
                "requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
                "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
                "p50_ms": _ms(re.search(r"(?m)^\s+50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
                "p99_ms": _ms(re.search(r"(?m)^\s+99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
                "errors": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0,
            }
            if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
                result["errors"] += sum(int(g) for g in m.groups())
        else:
            spec = work / "requests.json"
            spec.write_text(json.dumps({"host": host, "port": port, "requests": requests}))
            out = subprocess.run(
                [sys.executable, __file__, "--client", str(spec), "--duration", str(seconds),
                 "--connections", str(connections)],
                capture_output=True, text=True, check=True,
            ).stdout
            result = {"client": "python-asyncio", **json.loads(out)}
        if measured:
            return result
    raise AssertionError("unreachable")


def wait_http(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:g} s")
        time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- the benchmark ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each measured run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--miss-models", type=int, default=20, help="models timed for (c)")
    parser.add_argument("--skip-mlserver", action="store_true")
    parser.add_argument("--baseline-server", nargs=2, metavar=("MODEL_FILE", "PORT_FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--client", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        baseline_server(*args.baseline_server)
        return
    if args.client:
        python_client(args.client, args.duration, args.connections)
        return

    original_env = dict(os.environ)
    # Before xgboost loads OpenMP: the raw loads of (c) run under the MME server's setting.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import numpy as np
    import pandas as pd
    import xgboost

    from mmeperf.datasets.churn import FEATURES, build_churn_repository
    from mmeperf.endpoints.local import LocalEndpoint
    from mmeperf.protocol import CacheState

    work = Path(tempfile.mkdtemp(prefix="mmeperf-bench-"))
    print(f"host: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start "
          f"(shared machine); client: {'wrk' if shutil.which('wrk') else 'python asyncio'}, "
          f"{args.connections} connections, {args.duration:g} s per run after a 2 s warm-up")
    build = build_churn_repository(work / "repo")
    test = pd.read_csv(build.test_csv).sample(frac=1.0, random_state=0)
    rows = [(state, ",".join(repr(float(v)) for v in values))
            for state, values in zip(test.State, test[list(FEATURES)].to_numpy(np.float32), strict=True)]
    states = sorted(set(test.State))
    target = {s: f"churn-xgb-{s}.tar.gz" for s in states}
    mme_requests = [{"path": "/endpoints/local-mme/invocations", "content_type": "text/csv",
                     "headers": {"X-Amzn-SageMaker-Target-Model": target[s]}, "body": body} for s, body in rows]
    results: dict[str, dict[str, Any]] = {}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # (a, b) the local MME, all 51 models resident
        with LocalEndpoint().deploy(str(work / "repo")) as ep:
            for s in states:
                assert ep.invoke(target[s], rows[[r[0] for r in rows].index(s)][1].encode()).ok
            host, port = ep.url.removeprefix("http://").split(":")
            before = ep.metrics()
            results["local MME, 51 models"] = run_load(host, int(port), mme_requests, duration=args.duration,
                                                       connections=args.connections, work=work)
            after = ep.metrics()
            status = ep.status()
            results["local MME, 51 models"]["loaded"] = len(ep.loaded_models())
            results["local MME, 51 models"]["rows/predict"] = round(status["batched_rows"] / max(status["batches"], 1), 2)
            results["local MME, 51 models"]["server errors"] = (after.invocation_4xx_errors + after.invocation_5xx_errors
                                                                - before.invocation_4xx_errors - before.invocation_5xx_errors)

        # (a) the bare one-model server: the most popular state's model, every row sent to it
        top = test.State.value_counts().index[0]
        model_dir = work / "baseline"
        with tarfile.open(work / "repo" / target[top]) as tar:
            tar.extractall(model_dir, filter="data")
        (model_dir / "xgboost-model").rename(model_dir / "model.ubj")
        port_file = work / "baseline.port"
        proc = subprocess.Popen([sys.executable, __file__, "--baseline-server",
                                 str(model_dir / "model.ubj"), str(port_file)], env=original_env)
        procs.append(proc)
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("baseline server did not start")
            time.sleep(0.05)
        base_port = int(port_file.read_text())
        wait_http(f"http://127.0.0.1:{base_port}/ping")
        base_requests = [{"path": "/invocations", "content_type": "text/csv", "headers": {}, "body": body}
                         for _, body in rows]
        results["bare uvicorn+xgboost, 1 model"] = run_load("127.0.0.1", base_port, base_requests,
                                                            duration=args.duration, connections=args.connections, work=work)
        stop(proc)

        # (b) MLServer on the same 51 models
        if not args.skip_mlserver and shutil.which("mlserver", path=str(Path(sys.executable).parent)):
            ml_dir = work / "mlserver"
            for s in states:
                d = ml_dir / f"churn-xgb-{s}"
                d.mkdir(parents=True)
                with tarfile.open(work / "repo" / target[s]) as tar:
                    tar.extractall(d, filter="data")
                (d / "xgboost-model").rename(d / "model.ubj")
                (d / "model-settings.json").write_text(json.dumps({
                    "name": f"churn-xgb-{s}", "implementation": "mlserver_xgboost.XGBoostModel",
                    "parameters": {"uri": "./model.ubj"},
                }))
            ports = []
            for _ in range(3):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", 0))
                    ports.append(probe.getsockname()[1])
            (ml_dir / "settings.json").write_text(json.dumps({
                "host": "127.0.0.1", "http_port": ports[0], "grpc_port": ports[1], "metrics_port": ports[2],
                # MLServer 1.7's separate inference worker processes crash at start here ("no
                # current event loop"); 0 runs inference in the server process, as the MME does.
                "parallel_workers": 0,
            }))
            log = (work / "mlserver.log").open("wb")
            proc = subprocess.Popen([str(Path(sys.executable).parent / "mlserver"), "start", str(ml_dir)],
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    env=original_env)
            procs.append(proc)
            try:
                wait_http(f"http://127.0.0.1:{ports[0]}/v2/health/ready", timeout=300)
            except RuntimeError:
                log.flush()
                print((work / "mlserver.log").read_text()[-3000:])
                raise
            ml_requests = [{
                "path": f"/v2/models/churn-xgb-{s}/infer", "content_type": "application/json", "headers": {},
                "body": json.dumps({"inputs": [{"name": "input-0", "shape": [1, len(FEATURES)], "datatype": "FP32",
                                                "data": [float(v) for v in body.split(",")]}]}),
            } for s, body in rows]
            for s in states:  # every model answers once before the measurement
                r = next(r for r in ml_requests if r["path"] == f"/v2/models/churn-xgb-{s}/infer")
                req = urllib.request.Request(f"http://127.0.0.1:{ports[0]}{r['path']}", data=r["body"].encode(),
                                             headers={"Content-Type": "application/json"}, method="POST")
                with urllib.request.urlopen(req, timeout=60) as resp:
                    assert resp.status == 200
            results["MLServer, 51 models"] = run_load("127.0.0.1", ports[0], ml_requests, duration=args.duration,
                                                      connections=args.connections, work=work)
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
            log.close()

        # (c) cache misses vs raw extract + load + one predict, alternating model by model
        first_row = {s: next(body for st, body in rows if st == s) for s in states}
        miss_states = states[: args.miss_models]
        misses, raws = [], []
        with LocalEndpoint().deploy(str(work / "repo")) as ep:
            for s in miss_states:
                r = ep.invoke(target[s], first_row[s].encode())
                assert r.ok and r.cache is CacheState.MISS
                misses.append(r.latency_s)
                t0 = time.perf_counter()
                d = Path(tempfile.mkdtemp(dir=work))
                with tarfile.open(work / "repo" / target[s]) as tar:
                    tar.extractall(d, filter="data")
                (d / "xgboost-model").rename(d / "model.ubj")  # the format by its name, no guessing
                booster = xgboost.Booster(model_file=str(d / "model.ubj"))
                booster.set_param({"nthread": 1})
                booster.inplace_predict(np.array([first_row[s].split(",")], dtype=np.float32))
                raws.append(time.perf_counter() - t0)
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)

    print(f"load average at end {os.getloadavg()[0]:.2f}")
    for name, r in results.items():
        extra = "".join(f", {k} {v}" for k, v in r.items() if k not in ("rps", "p50_ms", "p99_ms", "requests", "errors", "client"))
        print(f"{name:34s} {r['rps']:9.0f} req/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
              f"errors {r['errors']}{extra}")
    mme = results["local MME, 51 models"]
    base = results["bare uvicorn+xgboost, 1 model"]
    print(f"(a) MME / bare server:  {mme['rps'] / base['rps']:.2f}x req/s (goal >= 2), "
          f"p99 {mme['p99_ms']:.2f} vs {base['p99_ms']:.2f} ms (goal: equal or lower)")
    if "MLServer, 51 models" in results:
        ml = results["MLServer, 51 models"]
        print(f"(b) MME / MLServer:     {mme['rps'] / ml['rps']:.2f}x req/s (goal >= 2), "
              f"p99 {mme['p99_ms']:.2f} vs {ml['p99_ms']:.2f} ms")
    miss, raw = statistics.median(misses), statistics.median(raws)
    print(f"(c) cache miss / raw load+predict: {miss * 1e3:.2f} ms / {raw * 1e3:.2f} ms = {miss / raw:.2f}x "
          f"(goal <= 1.2; medians over {len(misses)} models)")


if __name__ == "__main__":
    main()
