"""Fixtures for the repository tests: tiny real artifacts built at test time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmeperf.repository import ModelRepository


@pytest.fixture(scope="session")
def booster() -> object:
    """A 5-tree XGBoost booster on 3 features (milliseconds to train)."""
    xgb = pytest.importorskip("xgboost")
    rng = np.random.default_rng(0)
    x = rng.random((64, 3))
    y = (x[:, 0] + 0.2 * x[:, 1] > 0.6).astype(int)
    return xgb.train({"objective": "binary:logistic", "nthread": 1}, xgb.DMatrix(x, label=y), 5)


@pytest.fixture
def model_dir(tmp_path: Path, booster: object) -> Path:
    """A folder holding one SageMaker-XGBoost artifact file, ``xgboost-model`` (UBJSON)."""
    folder = tmp_path / "artifact"
    folder.mkdir()
    booster.save_model(str(folder / "model.ubj"))  # type: ignore[attr-defined]
    (folder / "model.ubj").rename(folder / "xgboost-model")
    return folder


@pytest.fixture
def triton_dir(tmp_path: Path) -> Path:
    """A Triton model folder: config.pbtxt naming the model and a version folder with a model file."""
    folder = tmp_path / "triton-src"
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text(
        'name: "resnet"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n'
    )
    (folder / "1" / "model.onnx").write_bytes(b"\x08\x07" + bytes(range(256)) * 4)
    return folder


def listing(folder: Path) -> set[str]:
    """Every path under ``folder`` (relative), to prove nothing else was written."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def flip_byte(path: Path, offset: int = -20) -> None:
    """Corrupt one byte of a stored file (what a bad disk or a partial upload leaves)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(params=["local", "memory"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> ModelRepository:
    if request.param == "local":
        return ModelRepository(tmp_path / "repo")
    url = f"memory://mmeperf-tests/{tmp_path.name}"
    yield_repo = ModelRepository(url)
    request.addfinalizer(lambda: yield_repo.fs.rm(yield_repo.root, recursive=True))
    return yield_repo
