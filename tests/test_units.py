"""Sizes and durations as the CLI and YAML specs write them."""

from __future__ import annotations

import pytest

from mmeperf.errors import ConfigurationError
from mmeperf.units import format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512MiB", 512 * 2**20),
        ("512mib", 512 * 2**20),
        (" 512 MiB ", 512 * 2**20),
        ("2GB", 2_000_000_000),
        ("2G", 2_000_000_000),
        ("1.5GiB", int(1.5 * 2**30)),
        (".5KiB", 512),
        ("1k", 1000),
        ("10b", 10),
        ("1048576", 1048576),
        ("0", 0),
        (1024, 1024),
        (2.0, 2),
    ],
)
def test_parse_size(text: str | int | float, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "MiB", "-1", "1e3", "1.5.2", "12 parsecs", "5 Mo"])
def test_parse_size_rejects_with_what_it_received(bad: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_size(bad)
    assert repr(bad) in str(info.value)
    assert "512MiB" in str(info.value)  # says what a valid size looks like


@pytest.mark.parametrize("bad", [True, -1, -0.5])
def test_parse_size_rejects_bools_and_negatives(bad: bool | int | float) -> None:
    with pytest.raises(ConfigurationError, match=repr(bad)):
        parse_size(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", 900.0),
        ("15 m", 900.0),
        ("5min", 300.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("1m30", 90.0),
        ("250ms", 0.25),
        ("0.5h", 1800.0),
        ("90", 90.0),
        ("90s", 90.0),
        ("0", 0.0),
        (12, 12.0),
        (1.5, 1.5),
    ],
)
def test_parse_duration(text: str | int | float, expected: float) -> None:
    assert parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["", "m", "1x", "15 minutes", "1 30", "1h-30m", "ten seconds"])
def test_parse_duration_rejects_with_what_it_received(bad: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_duration(bad)
    assert repr(bad) in str(info.value)
    assert "15m" in str(info.value)


@pytest.mark.parametrize("bad", [False, -1, -0.1])
def test_parse_duration_rejects_bools_and_negatives(bad: bool | int | float) -> None:
    with pytest.raises(ConfigurationError):
        parse_duration(bad)


def test_configuration_error_is_a_value_error_and_a_400() -> None:
    with pytest.raises(ValueError):
        parse_size("nonsense")
    assert ConfigurationError.http_status == 400


@pytest.mark.parametrize(
    ("num_bytes", "text"),
    [(0, "0 B"), (512, "512 B"), (1536, "1.5 KiB"), (200 * 2**20, "200.0 MiB"), (2**31, "2.0 GiB"), (5 * 2**40, "5120.0 GiB")],
)
def test_format_size(num_bytes: int, text: str) -> None:
    assert format_size(num_bytes) == text


def test_format_and_parse_agree() -> None:
    assert parse_size(format_size(3 * 2**30).replace(" ", "")) == 3 * 2**30
