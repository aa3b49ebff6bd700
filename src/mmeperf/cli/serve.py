"""``mmeperf serve``: run the embedded local multi-model endpoint in the foreground.

A thin skin over :func:`mmeperf.endpoints.local.server.run`; the server and its options are
described in docs/local-mme.md.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mmeperf.cli import CLI
from mmeperf.protocol import DEFAULT_ENDPOINT_NAME

__all__ = ["register", "serve"]


def serve(
    repository: Annotated[str, typer.Argument(help="Model repository: a folder, s3:// or any fsspec URL of <name>.tar.gz files.")],
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port; 0 picks a free one.")] = 8080,
    memory_budget: Annotated[str | None, typer.Option(help="Bytes loaded models may hold, e.g. 512MiB (default: the profile's, else no limit).")] = None,
    instance_profile: Annotated[str | None, typer.Option(help="Emulate this SageMaker instance (memory budget, worker processes, CPU allowance), e.g. ml.c5.xlarge.")] = None,
    per_model_overhead: Annotated[str | None, typer.Option(help="Bytes charged per loaded model on top of its own, e.g. 200MiB.")] = None,
    workers: Annotated[int, typer.Option(help="Server processes (only 1: see docs/local-mme.md).")] = 1,
    max_payload: Annotated[str, typer.Option(help="Largest request body; larger ones get 413.")] = "6MiB",
    allow_pickle: Annotated[bool, typer.Option(help="Let backends load pickle-based artifacts (trusted repositories only).")] = False,
    endpoint_name: Annotated[str, typer.Option(help="EndpointName in /endpoints/{EndpointName}/invocations.")] = DEFAULT_ENDPOINT_NAME,
    max_batch_size: Annotated[int, typer.Option(help="Most rows of concurrent requests to one model predicted together.")] = 64,
    cache_dir: Annotated[str | None, typer.Option(help="Where downloaded artifacts are unpacked (default: a temporary folder).")] = None,
    disk_cache: Annotated[str, typer.Option(help="Most bytes of unpacked artifacts kept on disk for unloaded models ('none': no limit; 0: delete on unload).")] = "4GiB",
    worker_mode: Annotated[str | None, typer.Option(help="'process': a worker process per loaded model, as SageMaker's CPU containers (MMS); 'thread': in-process, fastest (default: process with --instance-profile, else thread).")] = None,
    workers_per_model: Annotated[int | None, typer.Option(help="Worker processes per model (default: $SAGEMAKER_MODEL_SERVER_WORKERS, else 1).")] = None,
    cpu_emulation: Annotated[str | None, typer.Option(help="CPU allowance of instance vCPUs x --cpu-scale: quota (cgroup), affinity (whole cores) or none (default: quota with --instance-profile, else none).")] = None,
    cpu_scale: Annotated[float | None, typer.Option(help="Emulated CPUs per instance vCPU (default: what fits this host, at most 1).")] = None,
    instance_count: Annotated[int, typer.Option(min=1, help="Instances behind a front that routes as SageMaker routes MME requests (each its own server process, cache and budget).")] = 1,
    ready_file: Annotated[str | None, typer.Option(hidden=True, help="Write {host, port, pid} here once serving.")] = None,
    log_level: Annotated[str, typer.Option(help="Server log level.")] = "warning",
    fast_path: Annotated[bool, typer.Option("--fast-path/--no-fast-path", help="Compile small XGBoost models' trees (verified bit-exact, kept only where measured faster).")] = True,
) -> None:
    """Serve REPOSITORY as a SageMaker-compatible multi-model endpoint until Ctrl-C."""
    from mmeperf.endpoints.local.config import ServerConfig
    from mmeperf.endpoints.local.server import run
    from mmeperf.errors import ConfigurationError
    from mmeperf.units import parse_size

    emulation: dict[str, Any] = {"worker_mode": worker_mode, "cpu_emulation": cpu_emulation}
    try:
        config = ServerConfig(
            repository=repository,
            host=host,
            port=port,
            memory_budget_bytes=None if memory_budget is None else parse_size(memory_budget),
            instance_profile=instance_profile,
            per_model_overhead_bytes=None if per_model_overhead is None else parse_size(per_model_overhead),
            workers=workers,
            max_payload_bytes=parse_size(max_payload),
            allow_pickle=allow_pickle,
            endpoint_name=endpoint_name,
            max_batch_size=max_batch_size,
            cache_dir=cache_dir,
            disk_cache_bytes=None if disk_cache.lower() == "none" else parse_size(disk_cache),
            fast_path=fast_path,
            workers_per_model=workers_per_model,
            cpu_scale=cpu_scale,
            **emulation,  # checked by pydantic: a bad name is a BadParameter
        ).check()
    except (ConfigurationError, ValueError) as exc:
        _fail(str(exc), exc)
    _check_repository(repository)
    _check_port(host, port)
    budget = config.effective_budget()
    typer.echo(
        f"mmeperf local MME starting on {host}:{port} serving {repository} "
        f"(endpoint {endpoint_name!r}, budget {'unlimited' if budget is None else budget} bytes"
        f"{', emulating ' + instance_profile if instance_profile else ''})",
        err=True,
    )
    announce = _announce_when_ready(ready_file, endpoint_name)
    try:
        if instance_count > 1:
            from mmeperf.endpoints.local.fleet import FleetConfig
            from mmeperf.endpoints.local.front import run as run_front

            run_front(FleetConfig(server=config, instance_count=instance_count), ready_file=announce, log_level=log_level)
            return
        run(config, ready_file=announce, log_level=log_level)
    except OSError as exc:
        _fail(f"Cannot serve on {host}:{port}: {exc.strerror or exc}", exc)


def _fail(message: str, exc: BaseException) -> None:
    """One line on stderr, exit 2 (``mmeperf --debug`` shows the traceback)."""
    from mmeperf.cli import debug_enabled

    if debug_enabled():
        raise exc
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2) from exc


def _check_repository(repository: str) -> None:
    """The repository must exist (one line otherwise); an empty one is warned about."""
    from mmeperf.errors import MmeperfError
    from mmeperf.repository import ModelRepository

    try:
        count = len(ModelRepository(repository, create=False).list())
    except MmeperfError as exc:
        _fail(str(exc), exc)
        return
    if count == 0:
        typer.secho(f"Warning: {repository!r} holds no models; every request will answer ModelError 404 "
                    "(expected <name>.tar.gz archives or model folders)", fg=typer.colors.YELLOW, err=True)


def _check_port(host: str, port: int) -> None:
    """Fail before starting when host:port cannot be bound (in use, or not an address here)."""
    import socket

    if port == 0:
        return
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        _fail(f"Cannot listen on {host}:{port}: expected a free port, received one that is "
              f"{exc.strerror.lower() if exc.strerror else exc} (try another --port, or --port 0 for any free one)", exc)


def _announce_when_ready(ready_file: str | None, endpoint_name: str) -> str:
    """The ready file to give the server; a thread prints the address it bound once it serves."""
    import json
    import tempfile
    import threading
    import time
    from pathlib import Path

    path = Path(ready_file) if ready_file else Path(tempfile.mkdtemp(prefix="mmeperf-serve-")) / "ready.json"

    def watch() -> None:
        while True:
            try:
                info = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                time.sleep(0.05)
                continue
            host = info["host"]
            shown = f"[{host}]" if ":" in host else host
            typer.echo(f"Serving on http://{shown}:{info['port']} (endpoint {endpoint_name!r}; Ctrl-C to stop)", err=True)
            return

    threading.Thread(target=watch, name="mmeperf-announce", daemon=True).start()
    return str(path)


def register(cli: CLI) -> None:
    """Add ``mmeperf serve``."""
    cli.app.command("serve")(serve)
