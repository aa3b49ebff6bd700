"""Reading a user's YAML or JSON file (a profile, a calibration, a catalog, a spec) into data.

One place, so every such file fails the same way: a ConfigurationError naming the file and what
it should have been, never a bare OSError, UnicodeDecodeError or parser exception.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmeperf._types import PathLike
from mmeperf.errors import ConfigurationError


def read_document(path: PathLike, what: str) -> Any:
    """Parse ``path`` as JSON when it ends in ``.json``, else as YAML (safe loader only).

    ``what`` names the file in errors ("load profile", "calibration", ...).
    """
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"Cannot read {what} {str(p)!r}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{what.capitalize()} {str(p)!r} is not UTF-8 text: {exc}") from exc
    try:
        return json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{what.capitalize()} {str(p)!r} is not valid YAML/JSON: {exc}") from exc


def read_mapping(path: PathLike, what: str) -> dict[str, Any]:
    """:func:`read_document` for a file whose top level must be a mapping."""
    data = read_document(path, what)
    if not isinstance(data, dict):
        raise ConfigurationError(f"Expected a mapping in {what} {str(path)!r}, received {type(data).__name__}")
    return data


def read_list(path: PathLike, what: str) -> list[Any]:
    """:func:`read_document` for a file whose top level must be a list."""
    data = read_document(path, what)
    if not isinstance(data, list):
        raise ConfigurationError(f"Expected a list in {what} {str(path)!r}, received {type(data).__name__}")
    return data
