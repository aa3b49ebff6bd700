"""TorchScript export of the sample models: parity with eager torch, and refusals before writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from mmeperf.backends.pytorch import TorchScriptBackend
from mmeperf.backends.tensors import Signature
from mmeperf.errors import ExportError, ParityError
from mmeperf.exporters import TorchScriptExporter
from tests.exporters._shared import exported, tiny


@pytest.mark.parametrize("name", ["resnet50", "vit", "bert"])
def test_sample_models_match_eager_torch_within_1e_4(name: str) -> None:
    result = exported(name, "pytorch")
    assert result.parity.passed
    assert result.parity.n_inputs == 3
    assert result.parity.max_abs_error <= 1e-4
    assert result.artifact.name == "model.pt" and result.artifact.is_file()
    assert result.size_bytes >= result.artifact.stat().st_size > 0
    assert result.load_time_s > 0
    assert result.details["method"] == "trace"


@pytest.mark.parametrize("name", ["resnet50", "bert"])
def test_loaded_artifact_answers_like_the_source_on_new_batch_sizes(name: str) -> None:
    model = tiny(name)
    runner = TorchScriptBackend().load(exported(name, "pytorch").directory, allow_pickle=True)
    inputs = model.example_inputs(5, seed=123)  # a batch size the export never saw
    np.testing.assert_allclose(runner.predict(inputs), model.predict(inputs), atol=1e-4, rtol=0)
    runner.close()


def test_signature_records_names_dtypes_and_a_dynamic_batch() -> None:
    signature = Signature.load(exported("bert", "pytorch").directory)
    assert signature is not None
    assert signature.input_names == ["input_ids", "attention_mask"]
    assert [s.dtype for s in signature.inputs] == ["int64", "int64"]
    assert signature.inputs[0].shape == [-1, 16]
    assert signature.outputs[0].name == "last_hidden_state"
    assert signature.outputs[0].shape == [-1, 16, 32]


def test_wrong_example_shape_fails_before_anything_is_written(tmp_path: Path) -> None:
    model = tiny("resnet50")
    target = tmp_path / "out"
    with pytest.raises(ExportError, match="cannot run the example input") as info:
        TorchScriptExporter().export(model.module, np.zeros((1, 5, 64, 64), np.float32), target)
    assert "[1, 5, 64, 64]" in str(info.value)
    assert not target.exists()


def test_too_many_example_tensors_is_refused(tmp_path: Path) -> None:
    model = tiny("resnet50")
    x = model.example_inputs(1)["INPUT__0"]
    with pytest.raises(ExportError, match="takes 1 inputs"):
        TorchScriptExporter().export(model.module, (x, x), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_non_module_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"torch\.nn\.Module"):
        TorchScriptExporter().export(object(), np.zeros((1, 3)), tmp_path / "out")


def test_parity_failure_writes_nothing(tmp_path: Path) -> None:
    import torch

    class BatchBakedIn(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # int() turns the batch size into a Python constant: the trace keeps the example's
            # 2, eager torch uses the real batch size, so batches of 1 and 3 diverge.
            return x * int(x.shape[0])

    target = tmp_path / "out"
    with pytest.raises(ParityError, match="differs from eager torch") as info:
        TorchScriptExporter().export(BatchBakedIn(), np.ones((2, 4), np.float32), target)
    assert "elements exceed" in str(info.value)
    assert not target.exists()


def test_existing_artifact_is_refused_before_tracing(tmp_path: Path) -> None:
    import torch

    calls: list[int] = []

    class Counting(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(1)
            return x + 1

    target = tmp_path / "out"
    target.mkdir()
    (target / "model.pt").write_bytes(b"keep me")
    with pytest.raises(ExportError, match="overwrite=True"):
        TorchScriptExporter().export(Counting(), np.ones((2, 3), np.float32), target)
    assert calls == []  # refused before the model ran or was traced
    assert (target / "model.pt").read_bytes() == b"keep me"


def test_existing_artifact_is_kept_unless_overwrite(tmp_path: Path) -> None:
    model = tiny("resnet50")
    target = tmp_path / "out"
    target.mkdir()
    (target / "model.pt").write_bytes(b"keep me")
    with pytest.raises(ExportError, match="overwrite=True"):
        TorchScriptExporter().export(model.module, model.example_inputs(1), target)
    assert (target / "model.pt").read_bytes() == b"keep me"
    result = TorchScriptExporter().export(
        model.module, model.example_inputs(1), target, overwrite=True
    )
    assert result.artifact.read_bytes() != b"keep me"


def test_script_method_exports_scriptable_modules(tmp_path: Path) -> None:
    import torch

    class Affine(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.linear(x))

    result = TorchScriptExporter().export(
        Affine(), np.ones((2, 4), np.float32), tmp_path / "out", method="script"
    )
    assert result.parity.passed and result.details["method"] == "script"


def test_unknown_option_is_refused(tmp_path: Path) -> None:
    model = tiny("resnet50")
    with pytest.raises(ExportError, match="Unknown TorchScript export options"):
        TorchScriptExporter().export(model.module, model.example_inputs(1), tmp_path, opset=17)
