"""Safe archives: deterministic packing, and hostile archives refused with nothing written outside."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from mmeperf.errors import ConfigurationError, CorruptArtifactError, UnsafeArchiveError
from mmeperf.repository.archive import check_archive, pack, safe_extract
from tests.repository.conftest import listing


def _file(name: str, data: bytes = b"payload") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, b""


def _build(path: Path, members: list[tuple[tarfile.TarInfo, bytes]], *, gz: bool = True) -> Path:
    """Write an archive member by member through the tarfile API (hostile members included)."""
    with tarfile.open(path, "w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A parent folder whose contents before/after prove nothing escaped ``sandbox/dest``."""
    box = tmp_path / "box"
    box.mkdir()
    (box / "existing.txt").write_text("keep me")
    return box


HOSTILE: dict[str, Callable[[Path], list[tuple[tarfile.TarInfo, bytes]]]] = {
    "dotdot": lambda box: [_file("ok.txt"), _file("../evil.txt")],
    "dotdot-nested": lambda box: [_file("a/b/../../../evil.txt")],
    "absolute": lambda box: [_file("ok.txt"), _file(str(box / "evil.txt"))],
    "symlink": lambda box: [_file("ok.txt"), _special("link", tarfile.SYMTYPE, "..")],
    "symlink-then-write-through": lambda box: [
        _special("link", tarfile.SYMTYPE, str(box)),
        _file("link/evil.txt"),
    ],
    "symlink-inside": lambda box: [_file("ok.txt"), _special("alias", tarfile.SYMTYPE, "ok.txt")],
    "hardlink": lambda box: [_special("hl", tarfile.LNKTYPE, str(box / "existing.txt"))],
    "hardlink-inside": lambda box: [_file("ok.txt"), _special("hl", tarfile.LNKTYPE, "ok.txt")],
    "char-device": lambda box: [_special("null", tarfile.CHRTYPE)],
    "block-device": lambda box: [_special("sda", tarfile.BLKTYPE)],
    "fifo": lambda box: [_special("pipe", tarfile.FIFOTYPE)],
    "duplicate": lambda box: [_file("ok.txt"), _file("./ok.txt", b"other")],
    "backslash": lambda box: [_file("..\\evil.txt")],
    # Members that cannot all exist on a file system: extraction would fail half-way.
    "file-then-child": lambda box: [_file("a"), _file("a/b")],
    "file-then-deep-child": lambda box: [_file("a"), _file("a/b/c")],
    "child-then-file": lambda box: [_file("a/b"), _file("a")],
    "file-then-folder": lambda box: [_file("a"), _special("a", tarfile.DIRTYPE)],
    "folder-then-file": lambda box: [_special("a", tarfile.DIRTYPE), _file("a")],
    "segment-too-long": lambda box: [_file("x" * 256)],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_and_leave_nothing(sandbox: Path, tmp_path: Path, case: str) -> None:
    archive = _build(tmp_path / f"{case}.tar.gz", HOSTILE[case](sandbox))
    before = listing(sandbox)
    with pytest.raises(UnsafeArchiveError) as info:
        safe_extract(archive, sandbox / "dest")
    assert info.value.http_status == 400
    # The partially extracted folder is gone and nothing else appeared or changed.
    assert listing(sandbox) == before
    assert (sandbox / "existing.txt").read_text() == "keep me"
    assert not (tmp_path / "evil.txt").exists()
    # check_archive applies the same rules without writing.
    with pytest.raises(UnsafeArchiveError):
        check_archive(archive)


def test_write_errors_during_extraction_are_typed(sandbox: Path, tmp_path: Path) -> None:
    # Every segment is a valid file name, but the whole path is longer than the OS takes.
    deep = "/".join(["d" * 200] * 25) + "/model.bin"
    archive = _build(tmp_path / "deep.tar.gz", [_file("ok.txt"), _file(deep)])
    before = listing(sandbox)
    with pytest.raises(UnsafeArchiveError, match="cannot be extracted") as info:
        safe_extract(archive, sandbox / "dest")
    assert info.value.http_status == 400 and listing(sandbox) == before


def test_folders_may_repeat_and_files_may_share_a_parent(tmp_path: Path) -> None:
    members = [
        _special("a", tarfile.DIRTYPE), _file("a/x"), _special("a/", tarfile.DIRTYPE), _file("a/y"),
        _file("b/c/z"), _special("b/c", tarfile.DIRTYPE), _file("b/w"),
    ]
    archive = _build(tmp_path / "ok.tar.gz", members)
    assert check_archive(archive).files == ("a/x", "a/y", "b/c/z", "b/w")
    safe_extract(archive, tmp_path / "dest")
    assert {p for p in listing(tmp_path / "dest") if (tmp_path / "dest" / p).is_file()} == {
        "a/x", "a/y", "b/c/z", "b/w"
    }


def test_refusal_empties_a_pre_existing_empty_dest(sandbox: Path, tmp_path: Path) -> None:
    dest = sandbox / "dest"
    dest.mkdir()
    archive = _build(tmp_path / "a.tar.gz", [_file("first.txt"), _file("../evil.txt")])
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, dest)
    assert dest.is_dir() and not any(dest.iterdir())


def test_oversize_archive_is_refused(sandbox: Path, tmp_path: Path) -> None:
    archive = _build(tmp_path / "big.tar.gz", [_file("a.bin", b"x" * 600), _file("b.bin", b"y" * 600)])
    before = listing(sandbox)
    with pytest.raises(UnsafeArchiveError, match="limit"):
        safe_extract(archive, sandbox / "dest", max_bytes=1000)
    assert listing(sandbox) == before
    assert safe_extract(archive, sandbox / "ok", max_bytes=1200).bytes == 1200


def test_gzip_bomb_is_refused_without_inflating(sandbox: Path, tmp_path: Path) -> None:
    # 64 MiB of zeros compresses to ~64 KiB; the limit stops it at the header, before writing.
    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("zeros.bin")
        info.size = 64 * 2**20
        tf.addfile(info, io.BytesIO(bytes(info.size)))
    assert path.stat().st_size < 2**20
    before = listing(sandbox)
    with pytest.raises(UnsafeArchiveError):
        safe_extract(path, sandbox / "dest", max_bytes=2**20)
    assert listing(sandbox) == before


def test_header_sizes_are_not_trusted_alone(sandbox: Path, tmp_path: Path) -> None:
    # A pax header is data tarfile reads into memory; its size is not a member size, so only
    # counting the stream catches a huge one.
    path = tmp_path / "pax.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("small.txt")
        info.size = 4
        info.pax_headers = {"comment": "z" * (3 * 2**20)}
        tf.addfile(info, io.BytesIO(b"tiny"))
    with pytest.raises(UnsafeArchiveError, match="limit"):
        safe_extract(path, sandbox / "dest", max_bytes=1000, max_members=2)
    assert not (sandbox / "dest").exists()


def test_too_many_members_are_refused(sandbox: Path, tmp_path: Path) -> None:
    archive = _build(tmp_path / "many.tar.gz", [_file(f"f{i}.txt") for i in range(6)])
    with pytest.raises(UnsafeArchiveError, match="more than 5 members"):
        safe_extract(archive, sandbox / "dest", max_members=5)
    assert not (sandbox / "dest").exists()


@pytest.mark.parametrize("gz", [True, False])
def test_good_archive_extracts_files_and_folders(tmp_path: Path, gz: bool) -> None:
    folder = tarfile.TarInfo("./1")
    folder.type = tarfile.DIRTYPE
    root = tarfile.TarInfo("./")
    root.type = tarfile.DIRTYPE
    archive = _build(
        tmp_path / "good.tar", [(root, b""), (folder, b""), _file("./1/model.onnx", b"m" * 10), _file("config.pbtxt")], gz=gz
    )
    summary = safe_extract(archive, tmp_path / "out")
    assert summary.files == ("1/model.onnx", "config.pbtxt") and summary.bytes == 17
    assert (tmp_path / "out" / "1" / "model.onnx").read_bytes() == b"m" * 10
    assert listing(tmp_path / "out") == {"1", "1/model.onnx", "config.pbtxt"}


def test_extracts_from_a_stream(tmp_path: Path) -> None:
    archive = _build(tmp_path / "a.tar.gz", [_file("xgboost-model", b"abc")])
    with open(archive, "rb") as fh:
        safe_extract(fh, tmp_path / "out")
    assert (tmp_path / "out" / "xgboost-model").read_bytes() == b"abc"


@pytest.mark.parametrize(
    "content",
    [b"", b"not an archive at all" * 50, gzip.compress(b"\x01" * 2000)],
    ids=["empty", "garbage", "gzip-of-garbage"],
)
def test_unreadable_archives_are_corrupt(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.tar.gz"
    path.write_bytes(content)
    with pytest.raises(CorruptArtifactError, match="unreadable archive"):
        safe_extract(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_archive_is_corrupt(tmp_path: Path) -> None:
    good = _build(tmp_path / "a.tar.gz", [_file("a.bin", bytes(range(256)) * 400)])
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CorruptArtifactError):
        safe_extract(cut, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_dest_must_be_new_or_empty(tmp_path: Path) -> None:
    archive = _build(tmp_path / "a.tar.gz", [_file("a.txt")])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ConfigurationError, match="new or empty"):
        safe_extract(archive, tmp_path / "full")
    assert listing(tmp_path / "full") == {"x"}


def _artifact(root: Path) -> Path:
    (root / "1").mkdir(parents=True)
    (root / "config.pbtxt").write_text('name: "m"\n')
    (root / "1" / "model.pt").write_bytes(b"weights" * 100)
    return root


def test_pack_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    src = _artifact(tmp_path / "src")
    pack(src, tmp_path / "a.tar.gz")
    # Touch the files: a different mtime must not change the archive.
    for p in src.rglob("*"):
        p.touch()
    pack(src, tmp_path / "b.tar.gz")
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
    with tarfile.open(tmp_path / "a.tar.gz") as tf:
        members = tf.getmembers()
    assert [m.name for m in members] == ["1/model.pt", "config.pbtxt"]  # at the root, sorted
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}


def test_pack_with_prefix_puts_members_under_the_model_folder(tmp_path: Path) -> None:
    src = _artifact(tmp_path / "src")
    summary = pack(src, tmp_path / "m.tar.gz", arcname_prefix="bert-base")
    assert summary.files == ("bert-base/1/model.pt", "bert-base/config.pbtxt")
    out = safe_extract(tmp_path / "m.tar.gz", tmp_path / "out")
    assert out.files == summary.files
    with pytest.raises(Exception, match="Invalid model name"):
        pack(src, tmp_path / "x.tar.gz", arcname_prefix="../up")


def test_pack_refuses_symlinks_and_empty_folders(tmp_path: Path) -> None:
    src = _artifact(tmp_path / "src")
    (tmp_path / "secret").write_text("secret")
    (src / "leak").symlink_to(tmp_path / "secret")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        pack(src, tmp_path / "x.tar.gz")
    assert not (tmp_path / "x.tar.gz").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match="found none"):
        pack(tmp_path / "empty", tmp_path / "y.tar.gz")


# --- extraction relative to folder descriptors ---------------------------------------------------


def test_a_link_planted_in_the_destination_is_never_followed(tmp_path: Path) -> None:
    # fresh=True skips the emptiness check (the caller just made the folder), so a link that a
    # racing process planted there is met by the writer itself: it must refuse, not follow.
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a").symlink_to(outside, target_is_directory=True)
    archive = _build(tmp_path / "ok.tar.gz", [_file("a/x.bin", b"evil")])
    with pytest.raises(UnsafeArchiveError, match="cannot be extracted"):
        safe_extract(archive, dest, fresh=True)
    assert list(outside.iterdir()) == [] and not dest.exists()


def test_many_folders_extract_with_a_bounded_number_of_open_folders(tmp_path: Path) -> None:
    # More folders than the extractor keeps open: evicted ones are reopened, none is lost.
    names = [f"d{i % 7}/e{i}/f{i % 3}/x{i}.bin" for i in range(80)]
    archive = _build(tmp_path / "many.tar.gz", [_file(n, n.encode()) for n in names])
    summary = safe_extract(archive, tmp_path / "dest")
    assert sorted(summary.files) == sorted(names)
    assert summary.bytes == sum(len(n) for n in names)
    for n in names:
        assert (tmp_path / "dest" / n).read_bytes() == n.encode()
