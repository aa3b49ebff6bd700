"""Packaging into the SageMaker and Triton layouts: model folders, copies, names checked first."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

pb = pytest.importorskip("tritonclient.grpc.model_config_pb2")

from mmeperf.backends.tensorrt import EngineProfile  # noqa: E402
from mmeperf.errors import ConfigurationError  # noqa: E402
from mmeperf.repository import ModelRepository  # noqa: E402
from mmeperf.repository.triton import cv_config, parse_config  # noqa: E402
from mmeperf.repository.triton.packaging import package_model, triton_model_folder  # noqa: E402


def test_model_folder_needs_the_platforms_artifact(tmp_path: Path) -> None:
    artifact = tmp_path / "art"
    artifact.mkdir()
    (artifact / "model.onnx").write_bytes(b"onnx")
    with pytest.raises(ConfigurationError, match=r"loads model\.pt"):
        triton_model_folder(tmp_path / "m", cv_config("pytorch_libtorch"), artifact)
    assert not (tmp_path / "m").exists()
    folder = triton_model_folder(tmp_path / "m", cv_config("onnxruntime_onnx"), artifact)
    assert (folder / "config.pbtxt").is_file() and (
        folder / "1" / "model.onnx"
    ).read_bytes() == b"onnx"


def _plan_folder(tmp_path: Path, max_batch: int) -> Path:
    art = tmp_path / "plan"
    art.mkdir()
    (art / "model.plan").write_bytes(b"engine")
    EngineProfile(min_batch=1, opt_batch=min(64, max_batch), max_batch=max_batch).save(art)
    return art


def test_sagemaker_packaging_holds_name_folder_and_copies(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path / "repo")
    entries = package_model(
        repo,
        "resnet",
        _plan_folder(tmp_path, 32),
        cv_config("tensorrt_plan", max_batch_size=32),
        backend="tensorrt",
        copies=3,
    )
    assert [e.target for e in entries] == [
        "resnet.tar.gz",
        "resnet-v0.tar.gz",
        "resnet-v1.tar.gz",
        "resnet-v2.tar.gz",
    ]
    with tarfile.open(tmp_path / "repo" / "resnet-v2.tar.gz") as tar:
        names = sorted(tar.getnames())
        assert names == ["resnet/1/model.plan", "resnet/1/tensorrt.json", "resnet/config.pbtxt"]
        text = tar.extractfile("resnet/config.pbtxt").read().decode()  # type: ignore[union-attr]
    assert parse_config(text).platform == "tensorrt_plan"
    assert all(e.backend == "tensorrt" for e in entries)


def test_packaging_refuses_a_config_the_engine_cannot_serve_before_writing(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path / "repo")
    with pytest.raises(ConfigurationError, match="below the engine's profile max batch 128"):
        package_model(
            repo,
            "resnet",
            _plan_folder(tmp_path, 128),
            cv_config("tensorrt_plan", max_batch_size=12, preferred_batch_sizes=[12]),
            backend="tensorrt",
        )
    assert repo.names() == []
    with pytest.raises(ConfigurationError, match="served by Triton's onnxruntime_onnx"):
        package_model(repo, "m", tmp_path, cv_config("pytorch_libtorch"), backend="onnx")
    assert repo.names() == []


def test_triton_layout_packaging(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path / "triton", layout="triton")
    package_model(
        repo,
        "resnet",
        _plan_folder(tmp_path, 32),
        cv_config("tensorrt_plan", name="resnet", max_batch_size=32),
        backend="tensorrt",
        copies=1,
    )
    root = tmp_path / "triton"
    assert (root / "resnet" / "1" / "model.plan").is_file()
    assert parse_config((root / "resnet" / "config.pbtxt").read_text()).name == "resnet"
    # The repository renames the copy's config so Triton accepts the folder.
    assert parse_config((root / "resnet-v0" / "config.pbtxt").read_text()).name == "resnet-v0"


@pytest.mark.parametrize("name", ["../escaped", "a/../../escaped", ".."])
def test_packaging_validates_the_name_before_building_any_folder(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from mmeperf.errors import InvalidModelNameError

    # The staging folder is made under TMPDIR: a name used as a path there would land beside it.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    repo = ModelRepository(tmp_path / "repo")
    with pytest.raises(InvalidModelNameError):
        package_model(
            repo,
            name,
            _plan_folder(tmp_path, 32),
            cv_config("tensorrt_plan", max_batch_size=32),
            backend="tensorrt",
        )
    assert list(scratch.iterdir()) == []  # nothing written beside (or inside) the temp folder
    assert not (tmp_path / "escaped").exists()
    assert repo.names() == []
