"""ONNX -> TensorRT: what runs without TensorRT (option and ONNX checks, the one-sentence fix) and,
behind importorskip, the real engine build with parity against ONNX Runtime."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from mmeperf.errors import ExportError, MissingDependencyError
from mmeperf.exporters import TensorRTExporter
from tests.exporters._shared import exported, tiny

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


#: Building an engine needs the package and a CUDA GPU; neither is on our CI machines.
needs_tensorrt_and_gpu = pytest.mark.skipif(
    not HAVE_TENSORRT or not _cuda(),
    reason="needs tensorrt (no wheel for this machine) and a CUDA GPU",
)


@pytest.mark.skipif(HAVE_TENSORRT, reason="checks the message shown when tensorrt is NOT installed")
def test_missing_tensorrt_gives_the_pip_fix_and_writes_nothing(tmp_path: Path) -> None:
    model = tiny("resnet50")
    target = tmp_path / "trt"
    with pytest.raises(MissingDependencyError) as info:
        TensorRTExporter().export(exported("resnet50", "onnx"), model.example_inputs(1), target)
    assert str(info.value) == (
        "The 'tensorrt' backend needs tensorrt. Install it with: pip install 'mmeperf[tensorrt]'"
    )
    assert not target.exists()


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"min_batch": 4, "opt_batch": 2, "max_batch": 8}, "min_batch <= opt_batch <= max_batch"),
        ({"min_batch": 0, "opt_batch": 1, "max_batch": 8}, "1 <= min_batch"),
    ],
)
def test_bad_profiles_are_refused_before_anything(
    tmp_path: Path, profile: dict[str, int], message: str
) -> None:
    with pytest.raises(ExportError, match=message):
        TensorRTExporter().export(
            exported("resnet50", "onnx"), np.zeros((1, 3, 64, 64)), tmp_path / "t", **profile
        )
    assert not (tmp_path / "t").exists()


def test_example_must_fit_the_onnx_inputs(tmp_path: Path) -> None:
    source = exported("resnet50", "onnx")
    with pytest.raises(ExportError, match="axis 2 is 32; the ONNX input fixes it to 64"):
        TensorRTExporter().export(source, np.zeros((1, 3, 32, 64), np.float32), tmp_path / "t")
    with pytest.raises(ExportError, match="takes 2 inputs"):
        TensorRTExporter().export(
            exported("bert", "onnx"), {"input_ids": np.zeros((1, 16), np.int64)}, tmp_path / "t"
        )
    assert not (tmp_path / "t").exists()


def test_source_must_be_onnx(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="export torch modules to ONNX first"):
        TensorRTExporter().export(tiny("resnet50").module, np.zeros((1, 3, 64, 64)), tmp_path)
    with pytest.raises(ExportError, match="builds from an ONNX export"):
        TensorRTExporter().export(
            exported("resnet50", "pytorch"), np.zeros((1, 3, 64, 64)), tmp_path
        )
    with pytest.raises(ExportError, match="No ONNX file"):
        TensorRTExporter().export(tmp_path / "missing.onnx", np.zeros((1, 3, 64, 64)), tmp_path)


@needs_tensorrt_and_gpu
@pytest.mark.parametrize("name", ["resnet50", "bert"])
def test_engine_matches_onnx_runtime(tmp_path: Path, name: str) -> None:
    model = tiny(name)
    result = TensorRTExporter().export(
        exported(name, "onnx"),
        model.example_inputs(1),
        tmp_path / "trt",
        min_batch=1,
        opt_batch=4,
        max_batch=8,
        sampler=model.example_inputs,
    )
    assert result.parity.passed, result.parity
    assert result.artifact.name == "model.plan"
    assert result.details["profile"]["max_batch"] == 8
    assert (tmp_path / "trt" / "tensorrt.json").is_file()


@needs_tensorrt_and_gpu
def test_fp16_engine_within_fp16_tolerance(tmp_path: Path) -> None:
    model = tiny("resnet50")
    result = TensorRTExporter().export(
        exported("resnet50", "onnx"),
        model.example_inputs(1),
        tmp_path / "trt",
        fp16=True,
        opt_batch=2,
        max_batch=4,
        sampler=model.example_inputs,
    )
    assert result.parity.passed and result.details["profile"]["fp16"] is True
