"""Model-name validation: the one gate every name and TargetModel passes before it touches storage.

A name is a relative, printable path of at most 255 characters, each segment short enough to be a
file name with ``.tar.gz`` appended, that cannot escape the repository root in any URL-decoded form.
The local MME uses this to answer 400 to hostile targets.
"""

from __future__ import annotations

import posixpath
import unicodedata
from urllib.parse import unquote

from mmeperf.errors import InvalidModelNameError

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_SEGMENT_BYTES",
    "RESERVED_NAMES",
    "key_under_root",
    "validate_model_name",
]

#: Longest model name accepted (the SageMaker MME limit on one path segment is of that order).
MAX_NAME_LENGTH = 255
#: Longest path segment in UTF-8 bytes: file systems allow 255 per segment, and the SageMaker
#: layout stores ``<name>.tar.gz``, so the last segment needs room for the suffix.
MAX_SEGMENT_BYTES = 255 - len(".tar.gz")
_SUFFIX = ".tar.gz"
#: Names that belong to the repository itself and can never be models.
RESERVED_NAMES = frozenset({"mmeperf-manifest.json"})
# A name is decoded at most this many times: "%252e" -> "%2e" -> "."; beyond that it is refused.
_MAX_DECODE_ROUNDS = 4


def _problem(form: str) -> str | None:
    """Why ``form`` (one decoded spelling of a name) is unsafe, or None when it is fine."""
    if not form:
        return "it is empty"
    if len(form) > MAX_NAME_LENGTH:
        return f"it is {len(form)} characters long (at most {MAX_NAME_LENGTH})"
    for ch in form:
        # Cc: control characters incl. NUL, DEL; Cf/Zl/Zp: invisible format and line separators.
        # Cs: lone surrogates, which no file system name and no UTF-8 request can carry.
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            return f"it contains the control character {ch!r}"
    if "\\" in form:
        return "it contains a backslash"
    if form != form.strip():
        return "it starts or ends with whitespace"
    if form.startswith("/") or (len(form) >= 2 and form[1] == ":" and form[0].isalpha()):
        return "it is an absolute path"
    segments = form.split("/")
    if any(seg in ("", ".", "..") for seg in segments):
        return "it has an empty, '.' or '..' path segment"
    if any(seg.startswith(".") for seg in segments):
        # Hidden names are where the repository keeps temporary uploads.
        return "a path segment starts with '.'"
    for seg in segments:
        size = len(seg.encode())
        # A target already carries its suffix: "<248 bytes>.tar.gz" is the longest file name.
        limit = MAX_SEGMENT_BYTES + len(_SUFFIX) if seg.endswith(_SUFFIX) else MAX_SEGMENT_BYTES
        if size > limit:
            return (
                f"a path segment is {size} bytes long in UTF-8 (at most {MAX_SEGMENT_BYTES}, so "
                "that '<segment>.tar.gz' fits the 255-byte limit of a file name)"
            )
    if form in RESERVED_NAMES:
        return "it is reserved for the repository manifest"
    return None


def validate_model_name(name: object) -> str:
    """Return ``name`` unchanged when it is a safe model name; raise InvalidModelNameError (400).

    Refused: non-strings, empty, longer than 255 characters or with a path segment longer than
    248 UTF-8 bytes (255 less ``.tar.gz``), control characters (NUL included), lone surrogates,
    backslashes, absolute paths, empty/``.``/``..`` segments, hidden segments, the manifest's
    name, and any of these hidden behind URL encoding (``%2e%2e%2f``, double encoding too).
    """
    if not isinstance(name, str):
        raise InvalidModelNameError(f"Expected a model name as a string, received {name!r}")
    form = name
    for _ in range(_MAX_DECODE_ROUNDS + 1):
        why = _problem(form)
        if why is not None:
            shown = name if len(name) <= 80 else name[:77] + "..."
            decoded = "" if form == name else f" (decoded as {form[:80]!r})"
            raise InvalidModelNameError(
                f"Invalid model name {shown!r}{decoded}: {why}. Expected a relative name such as "
                "'churn-xgb-CA' or 'churn-xgb-CA.tar.gz'"
            )
        try:
            decoded_form = unquote(form, errors="strict") if "%" in form else form
        except UnicodeDecodeError as exc:
            raise InvalidModelNameError(
                f"Invalid model name {name[:80]!r}: its URL encoding is not UTF-8 ({exc.reason})"
            ) from exc
        if decoded_form == form:
            return name
        form = decoded_form
    raise InvalidModelNameError(
        f"Invalid model name {name[:80]!r}: it is URL-encoded more than {_MAX_DECODE_ROUNDS} times"
    )


def key_under_root(root: str, key: str) -> str:
    """Join ``root`` and a relative ``key``; raise InvalidModelNameError if the result leaves root.

    The last line of defence after :func:`validate_model_name`: whatever a name looks like, the
    storage path it resolves to must stay under the repository root.
    """
    joined = posixpath.normpath(posixpath.join(root, key)) if root else posixpath.normpath(key)
    if root:
        prefix = posixpath.normpath(root).rstrip("/") + "/"
        inside = joined.startswith(prefix) and len(joined) > len(prefix)
    else:
        inside = not (joined.startswith("/") or joined == ".." or joined.startswith("../"))
    if not inside or joined == ".":
        raise InvalidModelNameError(f"Model key {key!r} resolves outside the repository root {root!r}")
    return joined + ("/" if key.endswith("/") else "")
