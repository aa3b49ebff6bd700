"""The two layouts: SageMaker MME archives and Triton model folders, as stored, copied and read."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from mmeperf.errors import ConfigurationError, CorruptArtifactError, InvalidModelNameError
from mmeperf.repository import MANIFEST_NAME, ModelRepository, pack
from mmeperf.repository.layouts import SageMakerLayout, TritonLayout, layout_for
from tests.repository.conftest import flip_byte, listing


def test_stored_archive_has_members_at_the_root(tmp_path: Path, model_dir: Path) -> None:
    repo = ModelRepository(tmp_path / "repo")
    repo.add("m", model_dir)
    with tarfile.open(tmp_path / "repo" / "m.tar.gz") as tf:
        assert tf.getnames() == ["xgboost-model"]


def test_triton_packaging_for_sagemaker_puts_members_under_the_name(tmp_path: Path, triton_dir: Path) -> None:
    repo = ModelRepository(tmp_path / "repo")
    entry = repo.add("resnet", triton_dir, arcname_prefix="resnet", backend="onnx")
    with tarfile.open(tmp_path / "repo" / "resnet.tar.gz") as tf:
        assert tf.getnames() == ["resnet/1/model.onnx", "resnet/config.pbtxt"]
    folder = repo.fetch(entry.target, tmp_path / "cache")
    assert listing(folder) == {"resnet", "resnet/config.pbtxt", "resnet/1", "resnet/1/model.onnx"}


def test_existing_archive_is_stored_as_is(repo: ModelRepository, model_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:  # written by another tool: real mtimes, owners
        tf.add(model_dir / "xgboost-model", arcname="xgboost-model")
    entry = repo.add("m", archive)
    assert repo.fs.cat_file(repo.root + "/m.tar.gz") == archive.read_bytes()
    assert entry.bytes == archive.stat().st_size and entry.backend == "xgboost"


def test_plain_tar_is_stored_gzipped(repo: ModelRepository, model_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "model.tar"
    with tarfile.open(archive, "w") as tf:
        tf.add(model_dir / "xgboost-model", arcname="xgboost-model")
    repo.add("m", archive)
    assert repo.fs.cat_file(repo.root + "/m.tar.gz")[:2] == b"\x1f\x8b"  # what SageMaker unpacks
    assert listing(repo.fetch("m", tmp_path / "cache")) == {"xgboost-model"}


def test_unsafe_stored_archive_is_a_corrupt_artifact(tmp_path: Path) -> None:
    root = tmp_path / "foreign"
    root.mkdir()
    with tarfile.open(root / "evil.tar.gz", "w:gz") as tf:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    repo = ModelRepository(root)
    with pytest.raises(CorruptArtifactError, match=r"'evil'.*unsafe archive"):
        repo.fetch("evil.tar.gz", tmp_path / "cache")
    assert repo.verify().problems["evil"].startswith("unsafe archive")


def test_triton_layout(tmp_path: Path, triton_dir: Path) -> None:
    repo = ModelRepository(tmp_path / "triton", layout="triton")
    entry = repo.add("resnet", triton_dir, backend="onnx")
    assert (entry.target, entry.key) == ("resnet", "resnet/")
    assert listing(tmp_path / "triton") == {
        MANIFEST_NAME, "resnet", "resnet/config.pbtxt", "resnet/1", "resnet/1/model.onnx"
    }
    folder = repo.fetch("resnet", tmp_path / "cache")
    assert listing(folder) == {"config.pbtxt", "1", "1/model.onnx"}
    assert repo.verify().ok

    with pytest.raises(InvalidModelNameError, match="single folder"):
        repo.get("a/b")
    flip_byte(tmp_path / "triton" / "resnet" / "1" / "model.onnx", 5)
    assert repo.verify().problems == {"resnet": "sha256 mismatch"}
    with pytest.raises(CorruptArtifactError, match="resnet"):
        repo.fetch("resnet", tmp_path / "cache")


def test_triton_layout_from_an_archive_and_without_manifest(tmp_path: Path, triton_dir: Path) -> None:
    archive = tmp_path / "bert.tar.gz"
    pack(triton_dir, archive, arcname_prefix="bert")  # SageMaker's Triton packaging
    repo = ModelRepository(tmp_path / "triton", layout="triton")
    repo.add("bert", archive)
    assert listing(tmp_path / "triton" / "bert") == {"config.pbtxt", "1", "1/model.onnx"}

    (tmp_path / "triton" / MANIFEST_NAME).unlink()
    (tmp_path / "triton" / "notes.txt").write_text("ignored: not a folder")
    foreign = ModelRepository(tmp_path / "triton", layout="triton")
    assert foreign.names() == ["bert"] and foreign.get("bert").backend is None
    assert foreign.verify().ok


def test_triton_copies_carry_their_own_name(tmp_path: Path, triton_dir: Path) -> None:
    repo = ModelRepository(tmp_path / "triton", layout="triton")
    repo.add("resnet", triton_dir)
    copies = repo.copies("resnet", 2, template="{name}_{i}")
    assert [c.name for c in copies] == ["resnet_0", "resnet_1"]
    config = (tmp_path / "triton" / "resnet_1" / "config.pbtxt").read_text()
    assert config.startswith('name: "resnet_1"\n') and "max_batch_size: 8" in config
    assert (tmp_path / "triton" / "resnet_1" / "1" / "model.onnx").read_bytes() == (
        triton_dir / "1" / "model.onnx"
    ).read_bytes()
    assert repo.verify().ok


def test_layout_strategies_name_keys_and_targets(tmp_path: Path) -> None:
    sagemaker, triton = layout_for("sagemaker"), layout_for("triton")
    assert isinstance(sagemaker, SageMakerLayout) and isinstance(triton, TritonLayout)
    assert (sagemaker.key("m"), sagemaker.target("m"), sagemaker.name_of("m.tar.gz")) == ("m.tar.gz", "m.tar.gz", "m")
    assert (triton.key("m"), triton.target("m"), triton.name_of("m")) == ("m/", "m", "m")
    assert (sagemaker.folder_prefix("m"), triton.folder_prefix("m")) == ("m", None)
    # The repository takes a layout's name or its strategy; ``layout`` stays the name.
    repo = ModelRepository(tmp_path / "repo", layout=TritonLayout())
    assert repo.layout == "triton" and repo.layout_strategy.folders
    with pytest.raises(ConfigurationError, match="'sagemaker' or 'triton'"):
        layout_for("kserve")  # type: ignore[arg-type]
