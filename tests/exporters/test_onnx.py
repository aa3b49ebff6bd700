"""ONNX export of the sample models (dynamo exporter): parity through ONNX Runtime, dynamic batch,
opset, and refusals before anything is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

from mmeperf.backends.onnx import OnnxBackend  # noqa: E402
from mmeperf.errors import ExportError  # noqa: E402
from mmeperf.exporters import OnnxExporter  # noqa: E402
from tests.exporters._shared import exported, tiny  # noqa: E402


@pytest.mark.parametrize("name", ["resnet50", "vit", "bert"])
def test_sample_models_match_eager_torch_within_1e_4(name: str) -> None:
    result = exported(name, "onnx")
    assert result.parity.passed
    assert result.parity.max_abs_error <= 1e-4
    assert result.artifact.name == "model.onnx"
    assert result.details["dynamic_batch"] is True
    assert isinstance(result.details["opset"], int) and result.details["opset"] >= 17
    assert "CPUExecutionProvider" in result.details["providers"]


def test_inputs_and_outputs_carry_triton_names_and_a_symbolic_batch() -> None:
    cv = onnx.load(str(exported("resnet50", "onnx").artifact))
    assert [i.name for i in cv.graph.input] == ["INPUT__0"]
    assert [o.name for o in cv.graph.output] == ["OUTPUT__0"]
    batch = cv.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.dim_value  # symbolic, not fixed

    nlp = onnx.load(str(exported("bert", "onnx").artifact))
    assert [i.name for i in nlp.graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in nlp.graph.output] == ["last_hidden_state"]


def test_runs_batch_sizes_it_was_not_exported_with() -> None:
    model = tiny("vit")
    runner = OnnxBackend().load(exported("vit", "onnx").directory)
    for rows in (1, 7):
        inputs = model.example_inputs(rows, seed=rows)
        np.testing.assert_allclose(runner.predict(inputs), model.predict(inputs), atol=1e-4, rtol=0)
    runner.close()


def test_opset_is_configurable(tmp_path: Path) -> None:
    import torch

    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh())
    # 17 is below what the dynamo exporter writes (18): it converts, and the file says 17.
    result = OnnxExporter().export(module, np.ones((2, 4), np.float32), tmp_path / "o", opset=17)
    assert result.details["opset"] == 17
    imports = onnx.load(str(result.artifact)).opset_import
    assert [o.version for o in imports if o.domain in ("", "ai.onnx")] == [17]
    assert result.parity.passed


def test_an_opset_the_exporter_cannot_write_is_refused(tmp_path: Path) -> None:
    import torch

    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh())
    target = tmp_path / "o"
    # No adapter takes Gemm down to opset 12: the exporter would keep 18 and only warn.
    with pytest.raises(ExportError, match="could not write opset 12: it wrote opset 18"):
        OnnxExporter().export(module, np.ones((2, 4), np.float32), target, opset=12)
    assert not target.exists()


def test_existing_artifact_is_refused_before_exporting(tmp_path: Path) -> None:
    import torch

    calls: list[int] = []

    class Counting(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(1)
            return x + 1

    target = tmp_path / "out"
    target.mkdir()
    (target / "model.onnx").write_bytes(b"keep me")
    with pytest.raises(ExportError, match="overwrite=True"):
        OnnxExporter().export(Counting(), np.ones((2, 3), np.float32), target)
    assert calls == []
    assert (target / "model.onnx").read_bytes() == b"keep me"


def test_unsupported_op_fails_before_anything_is_written(tmp_path: Path) -> None:
    import torch

    class DataDependent(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # Output length depends on the values: no static graph for it without guards.
            return torch.nonzero(x > 0).float().sum(dim=1) if x.sum() > 0 else x[:, 0]

    target = tmp_path / "out"
    with pytest.raises(ExportError, match=r"torch\.onnx\.export failed"):
        OnnxExporter().export(DataDependent(), np.ones((2, 3), np.float32), target)
    assert not target.exists()


def test_wrong_example_shape_fails_before_anything_is_written(tmp_path: Path) -> None:
    model = tiny("bert")
    bad = {"input_ids": np.zeros((1, 400), np.int64), "attention_mask": np.ones((1, 400), np.int64)}
    target = tmp_path / "out"
    with pytest.raises(ExportError, match="cannot run the example input"):
        OnnxExporter().export(model.module, bad, target)
    assert not target.exists()


def test_bad_opset_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="opset"):
        OnnxExporter().export(tiny("resnet50").module, np.zeros((1, 3, 64, 64)), tmp_path, opset=3)
