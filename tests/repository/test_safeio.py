"""Links and special files never lead out of a local repository: fetch, verify, copies refuse them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mmeperf.errors import CorruptArtifactError
from mmeperf.repository import ModelRepository, pack


def _triton_model(root: Path, name: str = "m") -> None:
    (root / name / "1").mkdir(parents=True)
    (root / name / "config.pbtxt").write_text(f'name: "{name}"\n')
    (root / name / "1" / "model.onnx").write_bytes(b"onnx bytes")


def _plant(case: str, root: Path, outside: Path) -> None:
    """Replace part of model ``m`` with a link (or a FIFO) of the given kind."""
    model = root / "m"
    if case == "file-link-out":
        (model / "1" / "model.onnx").unlink()
        (model / "1" / "model.onnx").symlink_to(outside / "secret.txt")
    elif case == "folder-link-out":
        shutil.rmtree(model / "1")
        (model / "1").symlink_to(outside, target_is_directory=True)
    elif case == "model-link-out":
        shutil.rmtree(model)
        model.symlink_to(outside, target_is_directory=True)
    elif case == "file-link-in":
        _triton_model(root, "other")
        (model / "1" / "model.onnx").unlink()
        (model / "1" / "model.onnx").symlink_to(root / "other" / "1" / "model.onnx")
    else:  # a FIFO: reading it would block the server forever
        (model / "1" / "model.onnx").unlink()
        os.mkfifo(model / "1" / "model.onnx")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("manifest", [True, False], ids=["manifest", "foreign"])
@pytest.mark.parametrize("case", ["file-link-out", "folder-link-out", "model-link-out", "file-link-in", "fifo"])
def test_triton_model_with_links_is_refused(tmp_path: Path, triton_dir: Path, case: str, manifest: bool) -> None:
    root, outside = tmp_path / "triton", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("SECRET")
    (outside / "config.pbtxt").write_text('name: "m"\n')
    repo = ModelRepository(root, layout="triton")
    if manifest:
        repo.add("m", triton_dir)
    else:
        _triton_model(root)
    _plant(case, root, outside)
    repo = ModelRepository(root, layout="triton")

    assert "m" in repo.names()  # listed, so that verify names it
    with pytest.raises(CorruptArtifactError, match=r"Model 'm': .*refused") as info:
        repo.fetch("m", tmp_path / "cache")
    assert info.value.http_status == 424
    assert not any("SECRET" in p.read_text() for p in (tmp_path / "cache").rglob("*") if p.is_file())
    problems = repo.verify().problems
    assert set(problems) - {"other"} == {"m"} and "refused" in problems["m"]
    with pytest.raises(CorruptArtifactError, match="'m'"):
        repo.copies("m", 1)
    repo.remove("m")  # the links go; what they point at stays
    assert "m" not in repo.names() and (outside / "secret.txt").read_text() == "SECRET"


def test_sagemaker_archive_linked_from_outside_is_refused(tmp_path: Path, model_dir: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    pack(model_dir, outside / "private.tar.gz")  # a valid archive someone else owns
    root = tmp_path / "repo"
    repo = ModelRepository(root)
    repo.add("known", model_dir)
    (root / "known.tar.gz").unlink()
    (root / "known.tar.gz").symlink_to(outside / "private.tar.gz")
    (root / "foreign.tar.gz").symlink_to(outside / "private.tar.gz")

    for name in ("known", "foreign"):
        with pytest.raises(CorruptArtifactError, match=rf"Model '{name}': .*symbolic link"):
            repo.fetch(name, tmp_path / "cache")
    assert not any((tmp_path / "cache").rglob("xgboost-model"))
    report = repo.verify()
    assert set(report.problems) == {"known", "foreign"}
    with pytest.raises(CorruptArtifactError, match="'known'"):
        repo.copies("known", 1)
    repo.remove("foreign")
    assert (outside / "private.tar.gz").exists() and not (root / "foreign.tar.gz").is_symlink()


def test_link_on_a_folder_of_a_listed_archive_is_refused(tmp_path: Path, model_dir: Path) -> None:
    root, outside = tmp_path / "repo", tmp_path / "outside"
    repo = ModelRepository(root)
    repo.add("team/m", model_dir)
    shutil.move(root / "team", outside)
    (root / "team").symlink_to(outside, target_is_directory=True)
    with pytest.raises(CorruptArtifactError, match=r"Model 'team/m': .*symbolic link"):
        repo.fetch("team/m", tmp_path / "cache")
    assert not any((tmp_path / "cache").rglob("xgboost-model"))


@pytest.mark.timeout(30)
def test_fifo_in_place_of_a_listed_archive_is_refused_without_blocking(tmp_path: Path, model_dir: Path) -> None:
    root = tmp_path / "repo"
    repo = ModelRepository(root)
    repo.add("m", model_dir)
    (root / "m.tar.gz").unlink()
    os.mkfifo(root / "m.tar.gz")
    with pytest.raises(CorruptArtifactError, match=r"Model 'm': .*not a regular file"):
        repo.fetch("m", tmp_path / "cache")
