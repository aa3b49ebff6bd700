"""The one exception tree: statuses, codes, messages that say expected and received, a true drawing."""

from __future__ import annotations

import re

import pytest

import mmeperf.errors as errors
from mmeperf.errors import (
    ConfigurationError,
    InvocationError,
    MissingDependencyError,
    MmeperfError,
    ModelNotFoundError,
    UnknownPluginError,
    UnsupportedAcceptError,
    UnsupportedContentTypeError,
)

ALL = [getattr(errors, name) for name in errors.__all__]


def test_every_public_error_is_an_mmeperf_error() -> None:
    for cls in ALL:
        assert issubclass(cls, MmeperfError), cls
        assert isinstance(cls.http_status, int) and 400 <= cls.http_status < 600, cls
        assert re.fullmatch(r"[A-Z][A-Za-z]+", cls.error_code), cls


def test_the_docstring_draws_the_real_tree() -> None:
    """Every class is drawn under its real parent, and nothing drawn is missing from the module."""
    drawn: dict[str, str] = {}
    stack: list[str] = ["MmeperfError"]
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^\s*((?:│   |    )*)(?:├── |└── )(\w+)", line)
        if not match:
            continue
        depth = len(match.group(1)) // 4
        del stack[depth + 1 :]
        drawn[match.group(2)] = stack[depth]
        stack.append(match.group(2))
    public = {cls.__name__ for cls in ALL} - {"MmeperfError"}
    assert set(drawn) == public, "drawn vs public classes differ"
    for name, parent in drawn.items():
        assert getattr(errors, name).__mro__[1].__name__ == parent, f"{name} is drawn under {parent}"


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (errors.ConfigurationError, 400),
        (errors.PayloadError, 400),
        (errors.UnsupportedContentTypeError, 415),
        (errors.UnsupportedAcceptError, 406),
        (errors.InvalidModelNameError, 400),
        (errors.UnsafeArchiveError, 400),
        (errors.ModelNotFoundError, 404),
        (errors.ModelExistsError, 409),
        (errors.InsufficientMemoryError, 507),
        (errors.EndpointNotReadyError, 503),
        (errors.ModelLoadError, 424),
        (errors.PredictionError, 424),
        (errors.MmeperfError, 500),
    ],
)
def test_http_status(cls: type[MmeperfError], status: int) -> None:
    assert cls.http_status == status


def test_caller_mistakes_are_also_the_builtin_errors_python_code_expects() -> None:
    assert issubclass(errors.ConfigurationError, ValueError)
    assert issubclass(errors.PayloadError, ValueError)
    assert issubclass(errors.UnknownPluginError, LookupError)
    assert issubclass(errors.MissingDependencyError, ImportError)
    assert issubclass(errors.ModelNotFoundError, KeyError)
    assert issubclass(errors.PluginNotImplementedError, NotImplementedError)


def test_unknown_plugin_lists_the_known_ones_sorted() -> None:
    err = UnknownPluginError("backend", "xgb", ["xgboost", "onnx", "pytorch"])
    assert str(err) == "Unknown backend plugin 'xgb'; expected one of: onnx, pytorch, xgboost"
    assert err.known == ["onnx", "pytorch", "xgboost"]
    assert "(none)" in str(UnknownPluginError("endpoint", "x", []))


def test_missing_dependency_says_the_exact_fix() -> None:
    err = MissingDependencyError("The 'onnx' backend", "onnxruntime", "onnx")
    assert str(err) == "The 'onnx' backend needs onnxruntime. Install it with: pip install 'mmeperf[onnx]'"
    assert (err.package, err.extra) == ("onnxruntime", "onnx")


def test_content_type_errors_say_received_and_accepted() -> None:
    err = UnsupportedContentTypeError("image/png", ["text/csv", "application/json"])
    assert str(err) == "Unsupported content type 'image/png'; expected one of: text/csv, application/json"
    assert (err.received, err.accepted, err.http_status) == ("image/png", ["text/csv", "application/json"], 415)
    accept = UnsupportedAcceptError("text/html", ("text/csv",))
    assert str(accept) == "Unsupported accept type 'text/html'; expected one of: text/csv"
    assert accept.http_status == 406 and isinstance(accept, UnsupportedContentTypeError)


def test_model_not_found_message_is_not_quoted_like_a_key_error() -> None:
    err = ModelNotFoundError("No model 'churn-xgb-ZZ' in the repository; it has 51 models")
    assert str(err) == "No model 'churn-xgb-ZZ' in the repository; it has 51 models"
    assert str(ModelNotFoundError()) == ""


def test_invocation_error_carries_what_the_endpoint_answered() -> None:
    err = InvocationError("boom", status=424, code="ModelError")
    assert (err.status, err.code, str(err)) == (424, "ModelError", "boom")


def test_errors_can_be_raised_from_their_cause() -> None:
    try:
        try:
            raise KeyError("x")
        except KeyError as exc:
            raise ConfigurationError("Expected a known key, received 'x'") from exc
    except ConfigurationError as err:
        assert isinstance(err.__cause__, KeyError)
