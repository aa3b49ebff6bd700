"""mmeperf.protocol: the request it builds is the one botocore builds, and every answer shape is
read as botocore reads it (its own rest-json parser is the reference here), plus attribution."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from mmeperf.protocol import (
    DEFAULT_ENDPOINT_NAME,
    HEADER_CACHE,
    HEADER_ERROR_TYPE,
    HEADER_INSTANCE,
    HEADER_LOAD_US,
    HEADER_MODEL_LATENCY_US,
    HEADER_WAIT_US,
    CacheState,
    InvokeResult,
    boto3_invoke_kwargs,
    error_code_of,
    invocation_path,
    lower_headers,
    parse_answer,
    request_headers,
    result_from_client_error,
)

ODD_NAMES = ["local-mme", "a b", "x/y", "é-ü", "100%", "a?b#c", "~tilde_.-", "a+b=c&d"]


def _botocore_request(endpoint_name: str, target: str, **extra: Any) -> Any:
    """The request botocore's serializer makes for invoke_endpoint (no network)."""
    import botocore.session
    from botocore.serialize import create_serializer

    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    operation = model.operation_model("InvokeEndpoint")
    params = {"EndpointName": endpoint_name, "TargetModel": target, "Body": b"1,2", **extra}
    return create_serializer(model.metadata["protocol"]).serialize_to_request(params, operation)


def _botocore_parse(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """What botocore makes of an InvokeEndpoint answer (its ClientError.response when failed)."""
    import botocore.session
    from botocore.parsers import create_parser

    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    operation = model.operation_model("InvokeEndpoint")
    parser = create_parser(model.metadata["protocol"])
    assert operation.output_shape is not None
    parsed: dict[str, Any] = parser.parse(
        {"status_code": status, "headers": headers, "body": body}, operation.output_shape
    )
    if status >= 300:
        # botocore's client fills the modeled members of the error shape from the body likewise
        code = parsed["Error"]["Code"]
        shape = model.shape_for_error_code(code) if isinstance(code, str) else None  # type: ignore[arg-type]
        if shape is not None:
            parsed.update(parser.parse({"status_code": status, "headers": headers, "body": body}, shape))
    return parsed


# --- building -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ODD_NAMES)
def test_invocation_path_quotes_as_botocore_does(name: str) -> None:
    assert invocation_path(name) == _botocore_request(name, "m.tar.gz")["url_path"]


def test_default_endpoint_name_is_a_valid_sagemaker_endpoint_name() -> None:
    import re

    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", DEFAULT_ENDPOINT_NAME) and len(DEFAULT_ENDPOINT_NAME) <= 63
    assert invocation_path(DEFAULT_ENDPOINT_NAME) == f"/endpoints/{DEFAULT_ENDPOINT_NAME}/invocations"


@pytest.mark.parametrize("target", ["churn-xgb-CA.tar.gz", "dir/sub/model.tar.gz", "model", "a b.tar.gz"])
def test_request_headers_match_botocores(target: str) -> None:
    ours = request_headers(target, content_type="text/csv", accept="application/json", custom_attributes="k=v")
    theirs = _botocore_request("ep", target, ContentType="text/csv", Accept="application/json",
                               CustomAttributes="k=v")["headers"]
    assert ours == {k: v for k, v in theirs.items() if k != "User-Agent"}
    # TargetModel goes verbatim (SageMaker joins it to the prefix literally): no .tar.gz added.
    assert request_headers(target)["X-Amzn-SageMaker-Target-Model"] == target
    assert "Accept" not in request_headers(target)


def test_boto3_kwargs_are_the_same_request() -> None:
    kwargs = boto3_invoke_kwargs("ep", "m.tar.gz", b"1", accept="text/csv")
    assert kwargs == {"EndpointName": "ep", "TargetModel": "m.tar.gz", "Body": b"1", "ContentType": "text/csv",
                      "Accept": "text/csv"}
    from botocore.session import get_session
    from botocore.validate import ParamValidator

    shape = get_session().get_service_model("sagemaker-runtime").operation_model("InvokeEndpoint").input_shape
    assert shape is not None
    report = ParamValidator().validate(boto3_invoke_kwargs("ep", "m", b"1", custom_attributes="c=1"), shape)
    assert not report.has_errors(), report.generate_report()


# --- reading: every error shape, with and without x-amzn-ErrorType ---------------------------

_SHAPES: list[tuple[str, int, dict[str, str], bytes]] = [
    ("ValidationError 400", 400, {HEADER_ERROR_TYPE: "ValidationError"},
     json.dumps({"Message": "Endpoint x of account local not found."}).encode()),
    ("ValidationError with coral suffix", 400,
     {HEADER_ERROR_TYPE: "ValidationError:http://internal.amazon.com/coral/com.amazon.sagemaker/"},
     json.dumps({"message": "bad"}).encode()),
    ("ModelError 424", 424, {HEADER_ERROR_TYPE: "ModelError"}, json.dumps({
        "ErrorCode": "CLIENT_ERROR_FROM_MODEL",
        "Message": 'Received client error (400) from model with message "bad row".',
        "OriginalStatusCode": 400, "OriginalMessage": "bad row",
        "LogStreamArn": "arn:aws:logs:local:000000000000:log-group:/aws/sagemaker/Endpoints/e"}).encode()),
    ("ModelNotReadyException 429", 429, {HEADER_ERROR_TYPE: "ModelNotReadyException"},
     json.dumps({"Message": "still loading"}).encode()),
    ("InternalFailure 500", 500, {HEADER_ERROR_TYPE: "InternalFailure"}, json.dumps({"Message": "oops"}).encode()),
    ("ServiceUnavailable 503", 503, {HEADER_ERROR_TYPE: "ServiceUnavailable"}, json.dumps({"Message": "busy"}).encode()),
    ("InternalDependencyException 530", 530, {HEADER_ERROR_TYPE: "InternalDependencyException"}, b"{}"),
    ("no error type, text body", 404, {}, b"No route for POST /nowhere\n"),
    ("no error type, empty body", 502, {}, b""),
    ("no error type, empty 4xx body", 413, {}, b""),
    ("proxy HTML page", 502, {}, b"<html><body><b>Bad Gateway</b></body></html>"),
    ("error type but empty 5xx body", 503, {HEADER_ERROR_TYPE: "ServiceUnavailable"}, b" "),
    ("no error type, MMS JSON body", 404, {},
     json.dumps({"code": 404, "type": "ModelNotFoundException", "message": "Model not found: x"}).encode()),
    ("no error type, __type", 400, {}, json.dumps({"__type": "com.amazon.coral#ThrottlingException",
                                                  "message": "slow down"}).encode()),
    ("no error type, Code", 400, {}, json.dumps({"Code": "ValidationError", "Message": "m"}).encode()),
    ("JSON that is not an object", 500, {}, b"[1, 2]"),
    ("non-UTF-8 text", 500, {}, b"\xff\xfe broken"),
]


@pytest.mark.parametrize(("status", "headers", "body"), [s[1:] for s in _SHAPES], ids=[s[0] for s in _SHAPES])
def test_every_error_shape_reads_as_botocore_reads_it(status: int, headers: dict[str, str], body: bytes) -> None:
    result = parse_answer(status, {**headers, "content-type": "application/json"}, body, 0.01)
    assert not result.ok and result.status == status
    if body.startswith(b"["):
        # botocore itself fails on a JSON array (AttributeError); ours reads it as text.
        assert (result.error_code, result.error_message) == ("500", "[1, 2]")
        return
    if body.startswith(b"\xff"):
        assert result.error_code == "500" and result.error_message and "broken" in result.error_message
        return
    theirs = _botocore_parse(status, {**headers, "content-type": "application/json"}, body)
    assert result.error_code == str(theirs["Error"]["Code"])
    assert (result.error_message or "") == theirs["Error"]["Message"]
    assert result.original_status_code == theirs.get("OriginalStatusCode")
    assert result.original_message == theirs.get("OriginalMessage")
    # And the boto3 route (ClientError.response) lands on the same result.
    via_boto3 = result_from_client_error({**theirs, "ResponseMetadata": {
        "HTTPStatusCode": status, "HTTPHeaders": {**headers, "content-type": "application/json"}}}, 0.01)
    assert (via_boto3.status, via_boto3.error_code, via_boto3.error_message) == (
        result.status, result.error_code, result.error_message)
    assert (via_boto3.original_status_code, via_boto3.original_message) == (
        result.original_status_code, result.original_message)


def test_a_reply_without_error_type_is_its_status_everywhere() -> None:
    """The rule for a missing x-amzn-ErrorType: botocore's, the status as text (never 'HTTP404')."""
    assert parse_answer(404, {}, b"nope", 0.0).error_code == "404"
    assert error_code_of(404, {}, None) == "404"
    assert error_code_of(404, {}, {"code": ""}) == "404"
    assert error_code_of(400, {HEADER_ERROR_TYPE: "a.b#Throttling:uri"}, {"code": "x"}) == "Throttling"
    assert result_from_client_error({"Error": {"Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": 404}},
                                    0.0).error_code == "404"


def test_modelerror_keeps_the_containers_status_and_message() -> None:
    body = json.dumps({"Message": "wrapped", "OriginalStatusCode": 415, "OriginalMessage": "no png"}).encode()
    result = parse_answer(424, {HEADER_ERROR_TYPE: "ModelError"}, body, 0.0)
    assert (result.error_code, result.error_message) == ("ModelError", "wrapped")
    assert (result.original_status_code, result.original_message) == (415, "no png")


def test_a_client_error_without_status_takes_its_shapes() -> None:
    result = result_from_client_error({"Error": {"Code": "ModelNotReadyException", "Message": "m"}}, 0.0)
    assert (result.status, result.error_code) == (429, "ModelNotReadyException")


# --- attribution ----------------------------------------------------------------------------


def test_attribution_headers_of_a_miss() -> None:
    headers = lower_headers([
        ("Content-Type", "text/csv"), ("X-MMEPERF-Cache", "MISS"), (HEADER_WAIT_US, "1500"),
        (HEADER_LOAD_US, "1200"), (HEADER_MODEL_LATENCY_US, "250"), (HEADER_INSTANCE, "host:42"),
    ])
    result = parse_answer(200, headers, b"0.5", 0.02)
    assert result.ok and result.error_code is None and result.error_message is None
    assert result.content_type == "text/csv" and result.body == b"0.5"
    assert result.cache is CacheState.MISS and result.cache.latency_kind == "cold"
    assert result.model_loading_wait_s == pytest.approx(0.0015)
    assert result.model_loading_s == pytest.approx(0.0012)
    assert result.model_latency_s == pytest.approx(0.00025)
    assert result.instance == "host:42"
    assert result.headers[HEADER_CACHE] == "MISS"


def test_attribution_also_on_errors_and_garbage_is_unknown() -> None:
    result = parse_answer(424, {HEADER_ERROR_TYPE: "ModelError", HEADER_CACHE: "hit", HEADER_WAIT_US: "0"}, b"{}", 0.0)
    assert result.cache is CacheState.HIT and result.model_loading_wait_s == 0
    odd = parse_answer(200, {HEADER_CACHE: "warm", HEADER_WAIT_US: "soon", HEADER_MODEL_LATENCY_US: "1e3"}, b"", 0.0)
    assert odd.cache is CacheState.UNKNOWN and odd.model_loading_wait_s is None
    assert odd.model_latency_s == pytest.approx(0.001)
    bare = parse_answer(200, {}, b"", 0.0)
    assert bare.cache is CacheState.UNKNOWN and bare.instance is None and bare.model_latency_s is None


def test_one_cache_vocabulary() -> None:
    assert [s.value for s in CacheState] == ["hit", "miss", "unknown"]
    assert [s.latency_kind for s in CacheState] == ["warm", "cold", "unknown"]
    assert CacheState.parse(" Hit ") is CacheState.HIT
    assert CacheState.parse(None) is CacheState.UNKNOWN and CacheState.parse(True) is CacheState.UNKNOWN


def test_invoke_result_is_the_public_one() -> None:
    import mmeperf
    from mmeperf.endpoints.base import InvokeResult as Reexported

    assert mmeperf.InvokeResult is InvokeResult is Reexported
    assert InvokeResult(204, b"", "", 0.0).ok and not InvokeResult(0, b"", "", 0.0).ok


# --- one owner ------------------------------------------------------------------------------

#: Literals that only the protocol module should need: runtime header names and the keys of
#: boto3's parsed answer. (file, literal) pairs are the known exceptions on the server side.
_ANSWER_KEYS = {"httpstatuscode", "httpheaders", "originalstatuscode", "originalmessage"}
_SERVER_SIDE = {
    ("endpoints/local/app.py", "x-amzn-sagemaker-target-model"),  # reads the request
    ("endpoints/local/app.py", "x-amzn-errortype"),  # answers a wrong endpoint name
    ("endpoints/local/service.py", "originalstatuscode"),  # builds the ModelError body
    ("endpoints/local/service.py", "originalmessage"),
}


def _string_literals(path: Any) -> Iterator[str]:
    import ast
    import tokenize

    with tokenize.open(path) as f:
        for token in tokenize.generate_tokens(f.readline):
            if token.type == tokenize.STRING:
                try:
                    value = ast.literal_eval(token.string)
                except (ValueError, SyntaxError):  # f-strings
                    continue
                if isinstance(value, bytes):
                    value = value.decode("latin-1")
                if isinstance(value, str):
                    yield value.lower()


def test_grep_finds_one_parser_of_the_runtime_answer() -> None:
    from pathlib import Path

    import mmeperf

    root = Path(mmeperf.__file__).parent
    strays = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel == "protocol.py":
            continue
        for literal in _string_literals(path):
            if (literal.startswith(("x-amzn-", "x-mmeperf-")) or literal in _ANSWER_KEYS) and (
                rel, literal) not in _SERVER_SIDE:
                strays.append(f"{rel}: {literal!r}")
    assert strays == [], "runtime protocol literals outside mmeperf.protocol"
