"""Parse and format byte sizes and durations the way the CLI and YAML specs write them."""

from __future__ import annotations

import re

from mmeperf.errors import ConfigurationError

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12, "tb": 10**12,
    "ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20, "gi": 2**30, "gib": 2**30, "ti": 2**40, "tib": 2**40,
}
_DURATION_UNITS = {"": 1.0, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")
# Parts may be spaced ("1h 30m"); only the last part may omit its unit ("1m30").
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|min|[hms]?)\s*")


def parse_size(value: str | int | float) -> int:
    """``"512MiB"`` -> 536870912; ``"2GB"`` -> 2000000000; ints pass through."""
    if isinstance(value, bool):
        raise ConfigurationError(f"Expected a size such as 512MiB, received {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigurationError(f"Expected a non-negative size, received {value!r}")
        return int(value)
    match = _SIZE_RE.match(value)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise ConfigurationError(
            f"Expected a size such as 1048576, 512MiB or 2GB, received {value!r}"
        )
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_duration(value: str | int | float) -> float:
    """``"15m"`` -> 900.0; ``"1h30m"`` -> 5400.0; ``"250ms"`` -> 0.25; numbers are seconds."""
    if isinstance(value, bool):
        raise ConfigurationError(f"Expected a duration such as 90s or 15m, received {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigurationError(f"Expected a non-negative duration, received {value!r}")
        return float(value)
    text = value.strip().lower()
    total, pos = 0.0, 0
    for match in _DURATION_PART_RE.finditer(text):
        if match.start() != pos or not match.group(0):
            break
        if not match.group(2) and match.end() != len(text):
            break  # "1 30" is ambiguous: a unitless number must be the last part
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ConfigurationError(
            f"Expected a duration such as 90, 90s, 15m or 1h30m, received {value!r}"
        )
    return total


def format_size(num_bytes: int) -> str:
    """2147483648 -> '2.0 GiB'."""
    size = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
