"""Triton's model-repository API (``--model-control-mode=explicit``): the index of the server's
own repository, loading a model by name or by sending its config and files, readiness, unloading.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mmeperf.endpoints._http import NO_ANSWER, HttpClient
from mmeperf.endpoints.triton.kserve import JSON, error_message
from mmeperf.errors import ConfigurationError, EndpointError

if TYPE_CHECKING:
    from mmeperf.repository import ModelRepository

__all__ = ["RepositoryControl", "load_parameters"]


def load_parameters(folder: Path, name: str) -> dict[str, str]:
    """Triton's load parameters: the config as JSON (named ``name``) and every file base64."""
    from mmeperf._deps import require
    from mmeperf.repository.triton import CONFIG_FILE, parse_config

    json_format = require(
        "google.protobuf.json_format", what="Sending Triton configs", extra="triton", package="protobuf"
    )

    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise ConfigurationError(f"Model {name!r} has no {CONFIG_FILE} (not a Triton model folder)")
    config = parse_config(config_path.read_text())
    config.name = name  # copies share one config file; Triton wants the loaded name
    params = {"config": json_format.MessageToJson(config)}
    for file in sorted(folder.rglob("*")):
        if file.is_file() and file != config_path:
            rel = file.relative_to(folder).as_posix()
            params[f"file:{rel}"] = base64.b64encode(file.read_bytes()).decode("ascii")
    return params


class RepositoryControl:
    """The control-plane calls of one Triton server; every failure is an EndpointError."""

    def __init__(self, http: HttpClient, *, load_timeout_s: float = 600.0) -> None:
        self.http = http
        self.load_timeout_s = load_timeout_s

    def call(self, method: str, path: str, doc: Any = None, *, timeout: float | None = None, what: str) -> Any:
        """A control-plane JSON call; EndpointError naming ``what`` on any failure."""
        body = None if doc is None else json.dumps(doc).encode()
        headers = {"Content-Type": JSON} if body is not None else {}
        try:
            status, _, data = self.http.request(method, path, body, headers, timeout=timeout)
        except NO_ANSWER as exc:
            raise EndpointError(f"{what}: Triton at {self.http.url} did not answer ({exc})") from exc
        if status != 200:
            raise EndpointError(f"{what}: Triton answered {status}: {error_message(data)}")
        return json.loads(data) if data.strip() else None

    def server_metadata(self) -> dict[str, Any]:
        """``GET /v2``: Triton's name, version and extensions."""
        doc: dict[str, Any] = self.call("GET", "/v2", what="Reading Triton's server metadata")
        return doc

    def index(self, *, ready: bool = False) -> list[dict[str, Any]]:
        """``POST /v2/repository/index``: the models in the server's own repository folders."""
        doc = self.call("POST", "/v2/repository/index", {"ready": ready} if ready else {},
                        what="Reading Triton's repository index")
        return list(doc or [])

    def is_ready(self, name: str, *, timeout: float = 30) -> bool:
        """``GET /v2/models/{name}/ready``; raises what :data:`NO_ANSWER` names when no answer."""
        status, _, _ = self.http.request("GET", f"/v2/models/{quote(name, safe='')}/ready", timeout=timeout)
        return status == 200

    def load(self, repository: ModelRepository, name: str, *, send_files: bool) -> None:
        """Load ``name`` (from the server's repository, or sending its files) and check it is ready."""
        path = f"/v2/repository/models/{quote(name, safe='')}/load"
        doc: dict[str, Any] = {}
        if send_files:
            with TemporaryDirectory(prefix="mmeperf-triton-") as tmp:
                doc = {"parameters": load_parameters(repository.fetch(name, tmp), name)}
        self.call("POST", path, doc, timeout=self.load_timeout_s, what=f"Loading model {name!r}")
        status, _, data = self.http.request("GET", f"/v2/models/{quote(name, safe='')}/ready", timeout=30)
        if status != 200:
            raise EndpointError(f"Model {name!r} loaded but is not ready ({status}): {error_message(data)}")

    def unload(self, name: str) -> bool:
        """Unload ``name``; False when the server is gone (nothing left to unload there)."""
        try:
            status, _, data = self.http.request(
                "POST", f"/v2/repository/models/{quote(name, safe='')}/unload", b"{}",
                {"Content-Type": JSON}, timeout=self.load_timeout_s,
            )
        except NO_ANSWER:
            return False
        if status != 200 and "not found" not in error_message(data).lower():
            raise EndpointError(f"Unloading model {name!r}: Triton answered {status}: {error_message(data)}")
        return True
