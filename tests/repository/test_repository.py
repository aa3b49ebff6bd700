"""ModelRepository on real storage: local folders, fsspec memory://, both layouts, foreign repos."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from mmeperf.errors import (
    ConfigurationError,
    CorruptArtifactError,
    InvalidModelNameError,
    ModelExistsError,
    ModelNotFoundError,
    RepositoryError,
    UnknownPluginError,
    UnsafeArchiveError,
)
from mmeperf.repository import MANIFEST_NAME, ModelRepository, detect_backend
from tests.repository.conftest import flip_byte, listing


def test_add_list_get_fetch_remove(repo: ModelRepository, model_dir: Path, tmp_path: Path) -> None:
    entry = repo.add("churn-xgb-CA", model_dir)
    assert (entry.name, entry.target, entry.key) == ("churn-xgb-CA", "churn-xgb-CA.tar.gz", "churn-xgb-CA.tar.gz")
    assert entry.backend == "xgboost"  # detected from the file name
    assert entry.sha256 is not None and len(entry.sha256) == 64 and entry.bytes > 0
    assert entry.created is not None
    repo.add("churn-xgb-TX", model_dir)

    assert repo.names() == ["churn-xgb-CA", "churn-xgb-TX"]
    assert len(repo) == 2 and [e.name for e in repo] == repo.names()
    assert MANIFEST_NAME not in repo and "churn-xgb-CA.tar.gz" in repo and "nope" not in repo
    assert repo.get("churn-xgb-CA.tar.gz") == repo.get("churn-xgb-CA") == entry

    folder = repo.fetch("churn-xgb-CA.tar.gz", tmp_path / "cache")
    assert listing(folder) == {"xgboost-model"}
    assert (folder / "xgboost-model").read_bytes() == (model_dir / "xgboost-model").read_bytes()
    # Each fetch gets its own fresh folder.
    assert repo.fetch("churn-xgb-CA", tmp_path / "cache") != folder

    repo.remove("churn-xgb-CA")
    assert repo.names() == ["churn-xgb-TX"]
    with pytest.raises(ModelNotFoundError):
        repo.remove("churn-xgb-CA")
    assert repo.verify().ok


def test_manifest_records_every_field(tmp_path: Path, model_dir: Path) -> None:
    repo = ModelRepository(tmp_path / "repo")
    entry = repo.add("m", model_dir)
    data = json.loads((tmp_path / "repo" / MANIFEST_NAME).read_text())
    assert data["layout"] == "sagemaker"
    assert data["models"] == [json.loads(entry.model_dump_json())]
    assert set(data["models"][0]) == {"name", "target", "key", "backend", "bytes", "sha256", "created"}
    # The manifest is the only non-model file and a second instance reads it back.
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["m.tar.gz", MANIFEST_NAME]
    assert ModelRepository(tmp_path / "repo").get("m") == entry


def test_name_errors_are_typed(repo: ModelRepository, model_dir: Path, tmp_path: Path) -> None:
    repo.add("m", model_dir)
    for bad in ["../m.tar.gz", "%2e%2e%2fm.tar.gz", "/etc/passwd", "m\x00", ""]:
        with pytest.raises(InvalidModelNameError) as info:
            repo.get(bad)
        assert info.value.http_status == 400
        with pytest.raises(InvalidModelNameError):
            repo.fetch(bad, tmp_path / "cache")
        assert bad not in repo
    with pytest.raises(ModelNotFoundError) as missing:
        repo.get("other.tar.gz")
    assert missing.value.http_status == 404 and "other.tar.gz" in str(missing.value)
    with pytest.raises(InvalidModelNameError):
        repo.add("../escape", model_dir)


def test_add_refuses_existing_names_unless_overwrite(repo: ModelRepository, model_dir: Path, triton_dir: Path) -> None:
    first = repo.add("m", model_dir)
    with pytest.raises(ModelExistsError) as info:
        repo.add("m.tar.gz", triton_dir)
    assert info.value.http_status == 409 and "overwrite=True" in str(info.value)
    second = repo.add("m", triton_dir, overwrite=True)
    assert second.sha256 != first.sha256 and repo.get("m") == second


def test_add_rejects_what_is_not_an_artifact(repo: ModelRepository, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigurationError, match="folder of artifact files"):
        repo.add("m", tmp_path / "notes.txt")
    with pytest.raises(ConfigurationError, match="folder of artifact files"):
        repo.add("m", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError):
        repo.add("m", tmp_path / "empty")
    with pytest.raises(UnknownPluginError, match="xgboost"):
        repo.add("m", tmp_path, backend="xgbost")
    assert repo.names() == []


def test_hostile_archive_is_not_added(repo: ModelRepository, tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("../../evil.txt")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"evil"))
    before = listing(tmp_path)
    with pytest.raises(UnsafeArchiveError):
        repo.add("evil", archive)
    assert "evil" not in repo and listing(tmp_path) == before


def test_verify_names_exactly_the_corrupt_model(tmp_path: Path, model_dir: Path) -> None:
    repo = ModelRepository(tmp_path / "repo")
    for state in ("CA", "NY", "TX"):
        repo.add(f"churn-xgb-{state}", model_dir)
    assert repo.verify().ok and repo.verify().checked == 3

    flip_byte(tmp_path / "repo" / "churn-xgb-NY.tar.gz")
    report = repo.verify()
    assert not report.ok and report.checked == 3
    assert report.problems == {"churn-xgb-NY": "sha256 mismatch"}
    assert "churn-xgb-NY" in str(report)
    with pytest.raises(CorruptArtifactError, match=r"churn-xgb-NY.*sha256 mismatch") as info:
        repo.fetch("churn-xgb-NY", tmp_path / "cache")
    assert info.value.http_status == 424
    assert list((tmp_path / "cache").iterdir()) == []  # the half-extracted folder is gone

    (tmp_path / "repo" / "churn-xgb-TX.tar.gz").unlink()
    assert repo.verify().problems == {"churn-xgb-NY": "sha256 mismatch", "churn-xgb-TX": "missing"}
    with pytest.raises(ModelNotFoundError, match="missing"):
        repo.fetch("churn-xgb-TX", tmp_path / "cache")


def test_foreign_repository_without_manifest(tmp_path: Path, model_dir: Path) -> None:
    root = tmp_path / "foreign"
    root.mkdir()
    for name in ("a", "b"):  # what `aws s3 cp model.tar.gz s3://.../a.tar.gz` leaves behind
        with tarfile.open(root / f"{name}.tar.gz", "w:gz") as tf:
            tf.add(model_dir / "xgboost-model", arcname="xgboost-model")
    (root / "broken.tar.gz").write_bytes(b"this is not gzip")
    (root / "README.txt").write_text("not a model")
    before = listing(root)

    repo = ModelRepository(root, create=False)
    assert not repo.has_manifest
    assert repo.names() == ["a", "b", "broken"]
    entry = repo.get("a.tar.gz")
    assert entry.backend is None and entry.sha256 is None and entry.bytes == (root / "a.tar.gz").stat().st_size
    folder = repo.fetch("a", tmp_path / "cache")
    assert repo.detect_backend(folder) == "xgboost" == detect_backend(folder)
    assert listing(root) == before  # reading never writes

    report = repo.verify()
    assert set(report.problems) == {"broken"} and report.problems["broken"].startswith("unreadable archive")
    assert repo.get("a").sha256 is not None  # computed by verify, kept in memory
    assert listing(root) == before
    repo.verify(update_manifest=True)
    assert ModelRepository(root).get("b").sha256 is not None and (root / MANIFEST_NAME).exists()


def test_copies_fill_a_repository(repo: ModelRepository, model_dir: Path) -> None:
    src = repo.add("bert", model_dir)
    made = repo.copies("bert", 3)
    assert [e.name for e in made] == ["bert-v0", "bert-v1", "bert-v2"]
    assert {e.sha256 for e in made} == {src.sha256} and {e.backend for e in made} == {src.backend}
    assert repo.names() == ["bert", "bert-v0", "bert-v1", "bert-v2"]
    # Asking for more reuses the identical copies already there.
    assert [e.name for e in repo.copies("bert", 4)] == ["bert-v0", "bert-v1", "bert-v2", "bert-v3"]
    assert repo.verify().ok
    with pytest.raises(ConfigurationError, match=r"\{i\}"):
        repo.copies("bert", 2, template="{name}-copy")
    with pytest.raises(ConfigurationError):
        repo.copies("bert", -1)


def test_layout_mismatch_and_missing_repository(tmp_path: Path, model_dir: Path) -> None:
    ModelRepository(tmp_path / "repo").add("m", model_dir)
    with pytest.raises(ConfigurationError, match="sagemaker"):
        ModelRepository(tmp_path / "repo", layout="triton")
    with pytest.raises(RepositoryError, match="No model repository"):
        ModelRepository(tmp_path / "absent", create=False)
    assert not (tmp_path / "absent").exists()
    with pytest.raises(ConfigurationError, match="layout"):
        ModelRepository(tmp_path / "repo", layout="kserve")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="fsspec URL"):
        ModelRepository("nosuchprotocol://x/y")


def test_corrupt_manifest_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(RepositoryError, match="not valid JSON"):
        ModelRepository(root)
    (root / MANIFEST_NAME).write_text(json.dumps({"format": "mmeperf-manifest", "version": 99, "layout": "sagemaker"}))
    with pytest.raises(RepositoryError, match="version 99"):
        ModelRepository(root)


def test_add_model_round_trips_through_the_xgboost_backend(tmp_path: Path, booster: object) -> None:
    from mmeperf import get_backend

    repo = ModelRepository(tmp_path / "repo")
    entry = repo.add_model("m", booster, backend="xgboost")
    assert entry.backend == "xgboost"
    folder = repo.fetch("m.tar.gz", tmp_path / "cache")
    assert listing(folder) == {"xgboost-model"}
    rows = np.random.default_rng(1).random((4, 3))
    runner = get_backend(repo.detect_backend(folder, entry=entry) or "").load(folder)
    import xgboost

    expected = booster.predict(xgboost.DMatrix(rows))  # type: ignore[attr-defined]
    np.testing.assert_array_equal(runner.predict(rows), expected)


def test_repository_files_are_unchanged_by_reads(tmp_path: Path, model_dir: Path) -> None:
    repo = ModelRepository(tmp_path / "repo")
    repo.add("m", model_dir)
    before = {p: p.read_bytes() for p in (tmp_path / "repo").iterdir()}
    repo.list()
    repo.fetch("m", tmp_path / "cache")
    repo.verify()
    assert {p: p.read_bytes() for p in (tmp_path / "repo").iterdir()} == before


# --- names the file system refuses are the caller's mistake (400), not a server error ---------


def test_names_too_long_for_a_file_name_are_400(tmp_path: Path, model_dir: Path) -> None:
    repo = ModelRepository(tmp_path / "repo")
    for bad in ["x" * 255, "é" * 200, "x" * 249 + ".tar.gz"]:
        with pytest.raises(InvalidModelNameError) as info:
            repo.get(bad)
        assert info.value.http_status == 400
        assert bad not in repo
    # The longest accepted name round-trips: temporary upload names and cache folders fit too.
    longest = "é" * 124
    repo.add(longest, model_dir)
    assert listing(repo.fetch(longest + ".tar.gz", tmp_path / "cache")) == {"xgboost-model"}
    triton = ModelRepository(tmp_path / "triton", layout="triton")
    triton.add("t" * 248, model_dir)
    assert triton.verify().ok


def test_path_the_os_refuses_under_a_deep_root_is_400(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["d" * 200] * ((3900 - len(str(tmp_path))) // 201))
    repo = ModelRepository(deep)
    name = "x" * 240  # a valid name, but root + name passes the OS's limit on a whole path
    assert len(str(deep)) + len(name) > 4096
    with pytest.raises(InvalidModelNameError, match="storage refuses its path") as info:
        repo.get(name)
    assert info.value.http_status == 400 and name not in repo


def test_fetch_counted_returns_the_bytes_written(tmp_path: Path, model_dir: Path) -> None:
    repo = ModelRepository(tmp_path / "repo")
    repo.add("m", model_dir)
    folder, written = repo.fetch_counted("m.tar.gz", tmp_path / "cache" / "new")  # dest made on demand
    assert listing(folder) == {"xgboost-model"}
    assert written == (model_dir / "xgboost-model").stat().st_size == (folder / "xgboost-model").stat().st_size


def test_resolved_names_are_forgotten_when_a_model_goes(tmp_path: Path, model_dir: Path) -> None:
    repo = ModelRepository(tmp_path / "repo")
    repo.add("m", model_dir)
    assert repo.get("m.tar.gz").name == "m"  # now remembered
    repo.remove("m")
    assert "m.tar.gz" not in repo and "m" not in repo
