"""The public namespace is curated: adding or removing a name is a decision, pinned here."""

import subprocess
import sys

import mmeperf

EXPECTED = {
    "Backend",
    "Benchmark",
    "BenchmarkResult",
    "Endpoint",
    "EndpointInfo",
    "ExportResult",
    "Exporter",
    "InstanceProfile",
    "InvokeResult",
    "LoadProfile",
    "MmeperfError",
    "ModelRepository",
    "Runner",
    "ServerMetrics",
    "__version__",
    "get_backend",
    "get_endpoint_class",
}


def test_all_is_pinned() -> None:
    assert set(mmeperf.__all__) == EXPECTED


def test_every_public_name_resolves() -> None:
    for name in mmeperf.__all__:
        assert getattr(mmeperf, name) is not None, name


def test_the_five_concepts_import() -> None:
    from mmeperf import Backend, Endpoint, Exporter, LoadProfile, ModelRepository  # noqa: F401


def test_import_is_light() -> None:
    code = (
        "import sys, mmeperf; "
        "heavy = [m for m in ('pandas', 'xgboost', 'torch', 'locust', 'gevent', 'boto3', 'onnxruntime') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        mmeperf.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
