"""Workers on other hosts: the run spec a master hands to a worker that joins it over the network.

A worker started by ``mmeperf worker --master HOST:PORT`` has none of the master's files: its
Locust process asks the master for a :func:`spec_bundle` over Locust's own connection (the
master's port, nothing else to open), and :func:`install_bundle` writes it to a private folder
on the worker's host. Credentials never travel: a remote worker signs with its own
credential chain (an instance profile, a pod's service account). No Locust import here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from mmeperf.errors import ConfigurationError
from mmeperf.load.spec import RunSpec

__all__ = [
    "ENV_MASTER", "ENV_OWNER_PID", "ENV_WORKER_BIND", "ENV_WORKER_DIR",
    "install_bundle", "parse_master", "run_workers", "spec_bundle", "start_workers",
]

#: ``HOST:PORT`` of the master a remote worker fetches its run spec from.
ENV_MASTER = "MMEPERF_MASTER"
#: Folder where a remote worker writes the fetched spec, request table and trace.
ENV_WORKER_DIR = "MMEPERF_WORKER_DIR"
#: Local address a remote worker connects to the master from (``mmeperf worker --bind``).
ENV_WORKER_BIND = "MMEPERF_WORKER_BIND"
#: The process a remote worker's Locust process ends with (the ``mmeperf worker`` process).
ENV_OWNER_PID = "MMEPERF_OWNER_PID"


def _version() -> str | None:
    try:
        return metadata.version("mmeperf")
    except metadata.PackageNotFoundError:
        return None


def spec_bundle(spec: RunSpec) -> dict[str, Any]:
    """What a remote worker needs: the spec (no credentials, no master paths) and its files' bytes."""
    auth = spec.auth.model_copy(update={"access_key": None, "secret_key": None, "session_token": None}) if spec.auth else None
    shipped = spec.model_copy(update={"auth": auth, "owner_pid": None, "out_dir": "", "requests_path": "", "trace_path": None})
    return {
        "mmeperf": _version(),
        "spec": shipped.model_dump_json(),
        "requests": Path(spec.requests_path).read_bytes(),
        "trace": Path(spec.trace_path).read_bytes() if spec.trace_path else None,
    }


def install_bundle(bundle: dict[str, Any], folder: Path, *, owner_pid: int | None) -> Path:
    """Write a fetched bundle under ``folder``; return the spec file's path (for ``MMEPERF_RUN_SPEC``)."""
    theirs, ours = bundle.get("mmeperf"), _version()
    if theirs != ours:
        raise ConfigurationError(
            f"The master runs mmeperf {theirs}, this worker {ours}: install the same version on every host"
        )
    folder.mkdir(parents=True, exist_ok=True)
    requests = folder / "requests.bin"
    requests.write_bytes(bundle["requests"])
    trace = None
    if bundle.get("trace") is not None:
        trace = folder / "trace.npz"
        trace.write_bytes(bundle["trace"])
    spec = RunSpec.model_validate_json(bundle["spec"]).model_copy(update={
        "requests_path": str(requests), "trace_path": None if trace is None else str(trace),
        "out_dir": str(folder), "owner_pid": owner_pid,
    })
    return spec.write(folder / "run_spec.json")


def parse_master(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) -> (host, port); ConfigurationError if malformed."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"Bad master address {text!r}: expected HOST:PORT, e.g. 10.0.0.5:5557")
    return host, int(port)


def start_workers(
    master: str,
    *,
    processes: int = 1,
    bind: str | None = None,
    folder: Path,
    loglevel: str = "INFO",
    python: str | None = None,
) -> list[subprocess.Popen[bytes]]:
    """Start ``processes`` Locust workers that join the master at ``master`` (HOST:PORT).

    Each fetches the run from the master into its own folder under ``folder``, connects from
    ``bind`` when given, and ends when the master ends the run (or when this process dies).
    """
    from mmeperf.load.benchmark import locustfile_path
    from mmeperf.load.spec import ENV_SPEC

    host, port = parse_master(master)
    if processes < 1:
        raise ConfigurationError(f"processes must be >= 1, received {processes}")
    env = {k: v for k, v in os.environ.items() if k != ENV_SPEC}
    env.update({ENV_MASTER: f"{host}:{port}", ENV_OWNER_PID: str(os.getpid()), "PYTHONUNBUFFERED": "1"})
    if bind:
        env[ENV_WORKER_BIND] = bind
    started: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(processes):
            own = folder / f"worker-{i}"
            own.mkdir(parents=True, exist_ok=True)
            cmd = [python or sys.executable, "-m", "locust", "-f", str(locustfile_path()), "--worker",
                   "--master-host", host, "--master-port", str(port), "--loglevel", loglevel]
            started.append(subprocess.Popen(cmd, env={**env, ENV_WORKER_DIR: str(own)}, stdin=subprocess.DEVNULL))
    except OSError:
        stop_workers(started)
        raise
    return started


def stop_workers(procs: list[subprocess.Popen[bytes]], *, grace: float = 10.0) -> None:
    """SIGTERM each worker by its pid, then SIGKILL what is left after ``grace`` seconds."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_workers(master: str, *, processes: int = 1, bind: str | None = None, loglevel: str = "INFO") -> int:
    """``mmeperf worker``: run the workers until the master's run ends; the worst exit code.

    Their files (the fetched spec, request table and trace) live in a temporary folder that is
    removed at the end.
    """
    folder = Path(tempfile.mkdtemp(prefix="mmeperf-worker-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs = start_workers(master, processes=processes, bind=bind, folder=folder, loglevel=loglevel)
        codes = [proc.wait() for proc in procs]
        return max(code if code >= 0 else 128 - code for code in codes)  # killed by signal N: 128 + N
    finally:
        stop_workers(procs)
        shutil.rmtree(folder, ignore_errors=True)
