"""Model-name validation: the gate the local MME puts in front of TargetModel."""

from __future__ import annotations

import pytest

from mmeperf.errors import InvalidModelNameError
from mmeperf.repository.names import key_under_root, validate_model_name

GOOD = [
    "churn-xgb-CA",
    "churn-xgb-CA.tar.gz",
    "bert_base-v12",
    "sub/model.tar.gz",
    "a" * 248,  # the longest segment: "<name>.tar.gz" is then exactly 255 bytes
    "é" * 124,  # 248 UTF-8 bytes
    "é" * 124 + ".tar.gz",  # its target: exactly 255 bytes
    "a" * 120 + "/" + "b" * 120,
    "model%20one",  # decodes to "model one": harmless
    "naïve-模型",
]

BAD = [
    "",
    "a" * 256,
    "a" * 249,  # "<name>.tar.gz" would be 256 bytes: the OS refuses such a file name
    "é" * 125,  # 125 characters but 250 UTF-8 bytes
    "sub/" + "x" * 249,
    "x" * 249 + ".tar.gz",  # 256 bytes as a file name
    "a\udc80b",  # a lone surrogate: no file name and no UTF-8 request carries one
    "..",
    "../x.tar.gz",
    "a/../../x",
    "a/..",
    "/etc/passwd",
    "C:/Windows/x",
    "a\\..\\b",
    "a\x00b",
    "a\nb",
    "a\tb",
    "\x7f",
    "a//b",
    "a/./b",
    "a/",
    "./a",
    ".hidden",
    " lead",
    "trail ",
    "%2e%2e%2fetc%2fpasswd",
    "%2E%2E/x",
    "..%2fx",
    "%252e%252e%252fx",  # double encoded
    "a%00b",
    "a%5c..%5cb",
    "%2fetc%2fpasswd",
    "%ff%fe",  # not UTF-8
    "mmeperf-manifest.json",
    "a\u2028b",  # line separator
    "%25252525252e",  # encoded more times than anyone needs
]


@pytest.mark.parametrize("name", GOOD)
def test_good_names_pass_unchanged(name: str) -> None:
    assert validate_model_name(name) == name


@pytest.mark.parametrize("name", BAD)
def test_bad_names_are_refused_with_400(name: str) -> None:
    with pytest.raises(InvalidModelNameError) as info:
        validate_model_name(name)
    assert info.value.http_status == 400
    assert "Invalid model name" in str(info.value) or "URL" in str(info.value)


def test_long_segment_message_counts_utf8_bytes() -> None:
    with pytest.raises(InvalidModelNameError, match="250 bytes long in UTF-8 \\(at most 248"):
        validate_model_name("é" * 125)


def test_non_strings_are_refused() -> None:
    with pytest.raises(InvalidModelNameError, match="string"):
        validate_model_name(b"model")


def test_message_says_what_was_decoded() -> None:
    with pytest.raises(InvalidModelNameError, match=r"decoded as '\.\./x'"):
        validate_model_name("%2e%2e/x")


@pytest.mark.parametrize(
    ("root", "key", "expected"),
    [
        ("/repo", "a.tar.gz", "/repo/a.tar.gz"),
        ("/repo/", "sub/a.tar.gz", "/repo/sub/a.tar.gz"),
        ("bucket/prefix", "a/", "bucket/prefix/a/"),
        ("", "a.tar.gz", "a.tar.gz"),
    ],
)
def test_key_under_root_joins(root: str, key: str, expected: str) -> None:
    assert key_under_root(root, key) == expected


@pytest.mark.parametrize(
    ("root", "key"),
    [("/repo", "../x"), ("/repo", "/etc/passwd"), ("/repo", "a/../../x"), ("/repo", "."), ("", "../x")],
)
def test_key_under_root_refuses_escapes(root: str, key: str) -> None:
    with pytest.raises(InvalidModelNameError):
        key_under_root(root, key)


def test_sibling_prefix_is_not_under_root() -> None:
    # "/repo-evil" starts with "/repo" as a string but is not inside it.
    with pytest.raises(InvalidModelNameError):
        key_under_root("/repo", "../repo-evil/x")
