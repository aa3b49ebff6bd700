"""The ``pytorch`` (TorchScript) backend: the conformance suite on a tiny ResNet, named tensors for
BERT, what save/load refuse (TorchScript without allow_pickle), and its error messages."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from mmeperf._types import Array, Batch
from mmeperf.backends.base import Backend, Runner
from mmeperf.backends.bodies import encode_request
from mmeperf.backends.pytorch import TorchScriptBackend
from mmeperf.backends.tensors import NPZ_TYPE
from mmeperf.errors import ConfigurationError, ModelLoadError, PayloadError, PredictionError
from mmeperf.plugins import get_backend
from mmeperf.testing import BackendConformance
from tests.exporters._shared import exported, tiny


def _npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


class TestTorchScriptConformance(BackendConformance):
    backend = "pytorch"
    atol = 1e-5
    rtol = 1e-5

    # TorchScript is refused without the opt-in (test_torchscript_needs_allow_pickle): the
    # suite's runner loads the archive it saved itself, so it opts in.
    @pytest.fixture
    def conformance_runner(
        self, conformance_backend: Backend, conformance_saved: tuple[Path, Path]
    ) -> Iterator[Runner]:
        runner = conformance_backend.load(conformance_saved[0], allow_pickle=True)
        yield runner
        runner.close()

    def test_corrupt_archive_is_a_model_load_error_with_the_opt_in(
        self, conformance_saved: tuple[Path, Path], tmp_path: Path
    ) -> None:
        directory, main = self._copy(conformance_saved, tmp_path)
        main.write_bytes(np.random.default_rng(0).bytes(256))
        with pytest.raises(ModelLoadError, match="is not a TorchScript archive") as info:
            TorchScriptBackend().load(directory, allow_pickle=True)
        assert main.name in str(info.value)

    def make_model(self) -> Any:
        import torch

        from mmeperf.exporters.torchscript import quiet_jit

        model = tiny("resnet50")
        with quiet_jit():
            return torch.jit.trace(
                model.module, (torch.from_numpy(model.example_inputs(2)["INPUT__0"]),)
            )

    def make_batch(self) -> Batch:
        return tiny("resnet50").example_inputs(3, seed=7)["INPUT__0"]

    def native_predict(self, model: Any, batch: Batch) -> Array:
        return tiny("resnet50").predict({"INPUT__0": np.asarray(batch)})

    def request_body(self, batch: Batch, content_type: str) -> bytes:
        if content_type == NPZ_TYPE:
            return _npz(pixel_values=np.asarray(batch))
        return super().request_body(batch, content_type)

    def malformed_payloads(self, n_features: int | None) -> list[tuple[str, bytes]]:
        # (A bare ScriptModule saved by save() records no shapes; wrong shapes are checked
        # with an exported model below.)
        wrong_shape = np.zeros((1, 3, 8, 8), np.float32)
        return [
            *super().malformed_payloads(n_features),
            (NPZ_TYPE, b"PK\x03\x04 not a zip"),
            (NPZ_TYPE, _npz(other=wrong_shape)),
            (
                "application/json",
                b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1]}]}',
            ),
        ]


def test_backend_describes_itself_for_triton() -> None:
    cls = type(get_backend("pytorch"))
    assert cls is TorchScriptBackend
    assert cls.triton_platform == "pytorch_libtorch"
    assert cls.artifact_patterns == ("model.pt",)
    assert cls.requires == ("torch",) and cls.extra == "torch"


def test_bert_takes_named_tensors_in_every_format() -> None:
    backend = TorchScriptBackend()
    runner = backend.load(exported("bert", "pytorch").directory, allow_pickle=True)
    model = tiny("bert")
    inputs = model.example_inputs(2, seed=3)
    expected = model.predict(inputs)
    int32 = {k: v.astype(np.int32) for k, v in inputs.items()}  # JSON clients often send int32
    bodies = {
        "application/json": encode_request(int32, "application/json"),
        NPZ_TYPE: encode_request(inputs, NPZ_TYPE),
        "application/json;plain": json.dumps({k: v.tolist() for k, v in inputs.items()}).encode(),
    }
    for content_type, body in bodies.items():
        batch = backend.decode(body, content_type.split(";")[0], runner)
        assert isinstance(batch, dict) and batch["input_ids"].dtype == np.int64
        np.testing.assert_allclose(runner.predict(batch), expected, atol=1e-5)
    with pytest.raises(PayloadError, match="missing"):
        backend.decode(
            json.dumps({"input_ids": inputs["input_ids"].tolist()}).encode(),
            "application/json",
            runner,
        )
    with pytest.raises(PayloadError, match="named inputs"):
        backend.decode(
            encode_request(inputs["input_ids"], "application/x-npy"), "application/x-npy", runner
        )
    with pytest.raises(PayloadError, match="must hold integers"):
        backend.decode(
            json.dumps({k: (v + 0.5).tolist() for k, v in inputs.items()}).encode(),
            "application/json",
            runner,
        )
    runner.close()


def test_exported_model_refuses_wrong_shapes_with_a_400() -> None:
    backend = TorchScriptBackend()
    runner = backend.load(exported("resnet50", "pytorch").directory, allow_pickle=True)
    body = json.dumps(np.zeros((1, 3, 8, 8)).tolist()).encode()
    with pytest.raises(PayloadError, match=r"axis 2 must be 64") as info:
        backend.decode(body, "application/json", runner)
    assert info.value.http_status == 400
    runner.close()


def test_memory_estimate_is_the_weights() -> None:
    runner = TorchScriptBackend().load(exported("bert", "pytorch").directory, allow_pickle=True)
    assert runner.memory_bytes == tiny("bert").parameter_bytes + sum(
        b.numel() * b.element_size() for b in tiny("bert").module.buffers()
    )
    runner.close()


def test_loads_from_a_triton_model_folder(tmp_path: Path) -> None:
    import shutil

    version = tmp_path / "resnet" / "1"
    shutil.copytree(exported("resnet50", "pytorch").directory, version)
    runner = TorchScriptBackend().load(tmp_path, allow_pickle=True)  # what an unpacked SageMaker Triton tarball holds
    x = tiny("resnet50").example_inputs(1)
    np.testing.assert_allclose(runner.predict(x), tiny("resnet50").predict(x), atol=1e-5)


def test_save_refuses_modules_it_cannot_script(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="TorchScriptExporter"):
        TorchScriptBackend().save(tiny("bert").module, tmp_path)


def test_torchscript_needs_allow_pickle() -> None:
    # TorchScript archives run their author's code: refused unless the caller opts in.
    directory = exported("resnet50", "pytorch").directory
    with pytest.raises(ModelLoadError) as info:
        TorchScriptBackend().load(directory)
    message = str(info.value)
    assert "allow_pickle=True" in message and "--allow-pickle" in message
    assert "LocalEndpoint(allow_pickle=True)" in message
    assert "model.pt" in message
    assert 400 <= info.value.http_status < 500
    runner = TorchScriptBackend().load(directory, allow_pickle=True)
    runner.close()


def test_prediction_errors_name_the_real_exception(tmp_path: Path) -> None:
    import torch

    from mmeperf.exporters.torchscript import quiet_jit

    class Project(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.mm(x, torch.ones(3, 2))

    with quiet_jit():
        traced = torch.jit.trace(Project(), (torch.ones(2, 3),))  # type: ignore[no-untyped-call]
    backend = TorchScriptBackend()
    backend.save(traced, tmp_path)
    runner = backend.load(tmp_path, allow_pickle=True)
    with pytest.raises(PredictionError) as info:
        runner.predict(np.ones((2, 5), np.float32))  # no signature.json: shapes reach torch
    # The first line is TorchScript's generic "The following operation failed..."
    assert "mat1 and mat2 shapes cannot be multiplied" in str(info.value)
    assert "following operation failed" not in str(info.value)
    runner.close()
