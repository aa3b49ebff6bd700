"""HTTP answers of the local MME, and MMS's framing of the container API's JSON answers."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ERROR_METHOD_NOT_ALLOWED",
    "ERROR_NOT_FOUND",
    "Headers",
    "Reply",
    "method_not_allowed",
    "mms_error",
    "mms_json",
    "model_not_found",
    "not_found",
    "ping",
]

Headers = list[tuple[bytes, bytes]]

#: MMS's fixed messages (ResourceNotFoundException, MethodNotAllowedException).
ERROR_NOT_FOUND = "Requested resource is not found, please refer to API document."
ERROR_METHOD_NOT_ALLOWED = "Requested method is not allowed, please refer to API document."


@dataclass(slots=True)
class Reply:
    """An HTTP answer: status, headers (lower-case names) and body."""

    status: int
    headers: Headers
    body: bytes


# Gson escapes these inside strings unless told not to (MMS does not tell it).
_GSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "=": "\\u003d", "'": "\\u0027",
                 "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GSON_ESCAPE_RE = re.compile("[<>&='\u2028\u2029]")
_COMMON_HEADERS = (
    (b"pragma", b"no-cache"),
    (b"cache-control", b"no-cache; no-store, must-revalidate, private"),
    (b"expires", b"Thu, 01 Jan 1970 00:00:00 UTC"),
)


def mms_json(status: int, payload: Mapping[str, Any]) -> Reply:
    """A reply framed as MMS frames every JSON answer: Gson's pretty print and trailing newline,
    its cache headers, a request id, and ``Connection: close`` on errors."""
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    text = _GSON_ESCAPE_RE.sub(lambda m: _GSON_ESCAPES[m.group()], text) + "\n"
    headers = [
        (b"content-type", b"application/json"),
        (b"x-request-id", str(uuid.uuid4()).encode()),
        *_COMMON_HEADERS,
        (b"connection", b"close" if status >= 400 else b"keep-alive"),
    ]
    return Reply(status, headers, text.encode())


def mms_error(status: int, kind: str, message: str) -> Reply:
    """MMS's error body ``{"code", "type", "message"}`` (``type``: its Java exception's name)."""
    return mms_json(status, {"code": status, "type": kind, "message": message})


def not_found() -> Reply:
    """404 for a path no route serves."""
    return mms_error(404, "ResourceNotFoundException", ERROR_NOT_FOUND)


def method_not_allowed() -> Reply:
    """405 for a route that exists under another method."""
    return mms_error(405, "MethodNotAllowedException", ERROR_METHOD_NOT_ALLOWED)


def model_not_found(name: str) -> Reply:
    """404 for a model that is not loaded."""
    return mms_error(404, "ModelNotFoundException", f"Model not found: {name}")


def ping(ready: bool) -> Reply:
    """``/ping``: always 200, the health in the body (as MMS)."""
    return mms_json(200, {"status": "Healthy" if ready else "Unhealthy"})
