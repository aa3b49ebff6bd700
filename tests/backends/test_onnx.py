"""The ``onnx`` (ONNX Runtime) backend: the conformance suite on a tiny ViT, signature from the
session, execution providers."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from mmeperf._types import Array, Batch
from mmeperf.backends.onnx import OnnxBackend, default_providers
from mmeperf.backends.tensors import NPZ_TYPE
from mmeperf.errors import ConfigurationError, PayloadError
from mmeperf.plugins import get_backend
from mmeperf.testing import BackendConformance
from tests.exporters._shared import exported, tiny


class TestOnnxConformance(BackendConformance):
    backend = "onnx"
    atol = 1e-4
    rtol = 1e-4

    def make_model(self) -> Any:
        return exported("vit", "onnx").artifact.read_bytes()

    def make_batch(self) -> Batch:
        return tiny("vit").example_inputs(3, seed=5)["INPUT__0"]

    def native_predict(self, model: Any, batch: Batch) -> Array:
        return tiny("vit").predict({"INPUT__0": np.asarray(batch)})

    def request_body(self, batch: Batch, content_type: str) -> bytes:
        if content_type == NPZ_TYPE:
            buffer = io.BytesIO()
            np.savez(buffer, INPUT__0=np.asarray(batch))
            return buffer.getvalue()
        return super().request_body(batch, content_type)


def test_backend_describes_itself_for_triton() -> None:
    cls = type(get_backend("onnx"))
    assert cls is OnnxBackend
    assert cls.triton_platform == "onnxruntime_onnx"
    assert cls.artifact_patterns == ("model.onnx",)
    assert cls.extra == "onnx"


def test_signature_comes_from_the_model_itself() -> None:
    runner = OnnxBackend().load(exported("bert", "onnx").directory)
    sig = runner.signature
    assert sig.input_names == ["input_ids", "attention_mask"]
    assert [s.dtype for s in sig.inputs] == ["int64", "int64"]
    assert sig.inputs[0].shape == [-1, 16]
    assert sig.outputs[0].name == "last_hidden_state" and sig.outputs[0].shape == [-1, 16, 32]
    with pytest.raises(PayloadError, match="axis 1 must be 16"):
        runner.predict(
            {"input_ids": np.zeros((1, 8), np.int64), "attention_mask": np.ones((1, 8), np.int64)}
        )
    # The weights (initializers), the same basis as the TorchScript runner's estimate; the
    # exporter folds constants (only 16 of 128 position embeddings are used), so a bit less.
    weights = tiny("bert").parameter_bytes
    assert 0.8 * weights <= runner.memory_bytes <= exported("bert", "onnx").artifact.stat().st_size
    assert runner.providers == ["CPUExecutionProvider"]
    runner.close()


def test_save_copies_a_file_and_refuses_torch_modules(tmp_path: Path) -> None:
    path = OnnxBackend().save(exported("vit", "onnx").artifact, tmp_path / "a")
    assert path.read_bytes() == exported("vit", "onnx").artifact.read_bytes()
    with pytest.raises(ConfigurationError, match="OnnxExporter"):
        OnnxBackend().save(tiny("vit").module, tmp_path / "b")


def test_provider_override(monkeypatch: pytest.MonkeyPatch) -> None:
    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert default_providers(available) == available
    assert default_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    monkeypatch.setenv("MMEPERF_ORT_PROVIDERS", "TensorrtExecutionProvider,CPUExecutionProvider")
    with pytest.raises(ConfigurationError, match="TensorrtExecutionProvider"):
        default_providers(["CPUExecutionProvider"])
