"""The ``tensorrt`` backend: light to import, the one-sentence fix without TensorRT, what works
without it (saving plans, engine profiles), and the conformance suite where TensorRT and a GPU are."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmeperf._types import Array, Batch
from mmeperf.backends.tensorrt import EngineProfile, TensorRTBackend
from mmeperf.errors import ConfigurationError, MissingDependencyError
from mmeperf.plugins import get_backend, get_backend_class

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def test_class_imports_without_tensorrt_or_torch() -> None:
    code = (
        "import sys; from mmeperf.plugins import get_backend_class; c = get_backend_class('tensorrt');"
        "print(c.triton_platform, c.artifact_patterns, 'torch' in sys.modules, 'tensorrt' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["tensorrt_plan", "('model.plan',)", "False", "False"]
    assert get_backend_class("tensorrt") is TensorRTBackend


@pytest.mark.skipif(HAVE_TENSORRT, reason="checks the message shown when tensorrt is NOT installed")
def test_missing_tensorrt_is_one_sentence_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(MissingDependencyError) as info:
        get_backend("tensorrt")
    assert str(info.value) == (
        "The 'tensorrt' backend needs tensorrt. Install it with: pip install 'mmeperf[tensorrt]'"
    )
    (tmp_path / "model.plan").write_bytes(b"plan")
    with pytest.raises(MissingDependencyError, match=r"pip install 'mmeperf\[tensorrt\]'"):
        TensorRTBackend().load(tmp_path)


def test_save_writes_a_plan_without_tensorrt(tmp_path: Path) -> None:
    path = TensorRTBackend().save(b"\x00serialized-engine", tmp_path)
    assert path.name == "model.plan" and path.read_bytes() == b"\x00serialized-engine"
    assert TensorRTBackend.claims(tmp_path)
    with pytest.raises(ConfigurationError, match="serialized engine"):
        TensorRTBackend().save(object(), tmp_path)
    with pytest.raises(ConfigurationError, match="No TensorRT plan"):
        TensorRTBackend().save(tmp_path / "missing.plan", tmp_path)


def test_engine_profile_is_validated_and_round_trips(tmp_path: Path) -> None:
    profile = EngineProfile(min_batch=1, opt_batch=64, max_batch=128, fp16=True)
    profile.save(tmp_path)
    assert EngineProfile.load(tmp_path) == profile
    assert EngineProfile.load(tmp_path / "empty") is None
    with pytest.raises(ValueError, match="min_batch <= opt_batch <= max_batch"):
        EngineProfile(min_batch=8, opt_batch=4, max_batch=16)


if HAVE_TENSORRT:
    from mmeperf.testing import BackendConformance

    class TestTensorRTBackendConformance(BackendConformance):
        """The shared suite on a tiny ResNet engine; needs TensorRT and a CUDA GPU."""

        backend = "tensorrt"
        atol = 1e-3
        rtol = 1e-3

        def make_model(self) -> Any:
            import tempfile

            torch = pytest.importorskip("torch")
            if not torch.cuda.is_available():
                pytest.skip("TensorRT needs a CUDA GPU")

            from mmeperf.exporters import TensorRTExporter
            from tests.exporters._shared import exported, tiny

            model = tiny("resnet50")
            out = Path(tempfile.mkdtemp()) / "trt"
            TensorRTExporter().export(
                exported("resnet50", "onnx"),
                model.example_inputs(1),
                out,
                opt_batch=2,
                max_batch=4,
                sampler=model.example_inputs,
            )
            return (out / "model.plan").read_bytes()

        def make_batch(self) -> Batch:
            from tests.exporters._shared import tiny

            return tiny("resnet50").example_inputs(3, seed=7)["INPUT__0"]

        def native_predict(self, model: Any, batch: Batch) -> Array:
            from tests.exporters._shared import tiny

            return tiny("resnet50").predict({"INPUT__0": np.asarray(batch)})


def test_shapes_outside_the_engine_profile_are_a_400() -> None:
    from mmeperf.backends.tensorrt import check_profile_shapes
    from mmeperf.errors import PayloadError

    # What get_tensor_profile_shape(name, 0) reports for a 1..32 batch, 3x64x64 engine.
    profile = {"INPUT__0": ((1, 3, 64, 64), (32, 3, 64, 64))}
    check_profile_shapes({"INPUT__0": (1, 3, 64, 64)}, profile)
    check_profile_shapes({"INPUT__0": (32, 3, 64, 64)}, profile)
    for shape in ((33, 3, 64, 64), (4, 3, 32, 32), (4, 3, 64)):
        with pytest.raises(PayloadError, match=r"optimization profile accepts \[1, 3, 64, 64\]") as info:
            check_profile_shapes({"INPUT__0": shape}, profile)
        assert info.value.http_status == 400
