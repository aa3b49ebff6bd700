"""How a server expects models laid out in storage: one small strategy class per layout.

:class:`SageMakerLayout`: one ``<name>.tar.gz`` per model under one prefix (SageMaker MME).
:class:`TritonLayout`: ``<name>/config.pbtxt`` and ``<name>/<version>/model.*`` (Triton).
Each says where a model lives, and how it is listed, written, copied, fetched and verified;
:class:`~mmeperf.repository.ModelRepository` does the rest the same way for both.
"""

from __future__ import annotations

import hashlib
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from mmeperf._types import Layout as LayoutName
from mmeperf.errors import (
    ConfigurationError,
    CorruptArtifactError,
    InvalidModelNameError,
    ModelNotFoundError,
    UnsafeArchiveError,
)
from mmeperf.repository.archive import (
    artifact_files,
    check_archive,
    member_parts,
    pack,
    safe_extract,
)
from mmeperf.repository.hashing import (
    CHUNK,
    HashingReader,
    file_sha256,
    folder_digest,
    stream_sha256,
)
from mmeperf.repository.manifest import ModelEntry
from mmeperf.repository.names import validate_model_name
from mmeperf.repository.storage import Storage, info_created

__all__ = ["LAYOUTS", "Copier", "Found", "Layout", "SageMakerLayout", "TritonLayout", "layout_for"]

ARCHIVE_SUFFIX = ".tar.gz"
# Triton's config.pbtxt may name the model; a copy must carry its own folder's name.
_CONFIG_NAME_RE = re.compile(r'^(\s*name\s*:\s*)"[^"\n]*"', re.MULTILINE)


class Found(NamedTuple):
    """A model found in storage itself (no manifest entry): where it is, its size and date."""

    name: str
    key: str
    bytes: int
    created: datetime | None


class Copier(ABC):
    """Copies one source model to new names, storage-side (made per :meth:`Layout.copier` call)."""

    def reuses(self, existing: ModelEntry) -> bool:
        """Whether an existing model of the copy's name already is this copy."""
        return False

    @abstractmethod
    def copy(self, name: str, path: str) -> str | None:
        """Write the copy named ``name`` at ``path``; returns its sha256 (None when unknown)."""


class Layout(ABC):
    """Where a model lives in storage and how its artifact is written, read and checked."""

    name: ClassVar[LayoutName]
    #: Whether a model is a folder (else one file).
    folders: ClassVar[bool]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def name_of(self, name_or_target: str) -> str:
        """The model name a client's name or target means (InvalidModelNameError when unsafe)."""
        return validate_model_name(name_or_target)

    @abstractmethod
    def key(self, name: str) -> str:
        """The model's key under the repository root."""

    @abstractmethod
    def target(self, name: str) -> str:
        """What clients send to address the model (SageMaker's TargetModel)."""

    def folder_prefix(self, name: str) -> str | None:
        """Where a Triton model folder goes inside this layout's artifact (None: at its root)."""
        return None

    def check_add_options(self, arcname_prefix: str | None) -> None:
        """Refuse :meth:`ModelRepository.add` options this layout cannot honour (both take all)."""
        return None

    def unpacked_model(self, folder: Path, name: str) -> Path:
        """The model's files inside an unpacked archive that is being added."""
        return folder

    @abstractmethod
    def scan(self, store: Storage) -> Iterator[Found]:
        """Every model in storage itself (what a repository without manifest holds)."""

    @abstractmethod
    def probe(self, store: Storage, name: str, path: str, info: dict[str, Any]) -> tuple[int, datetime | None] | None:
        """(bytes, created) of model ``name`` at ``path`` (``info``: its fsspec info), or None."""

    @abstractmethod
    def write_model(
        self, store: Storage, folder: Path, path: str, *, archive: Path | None, scratch: Path,
        arcname_prefix: str | None, overwrite: bool,
    ) -> tuple[int, str]:
        """Store the model in ``folder`` (unpacked from ``archive`` when given) at ``path``.

        Returns the stored bytes and sha256. ``scratch`` is a temporary folder to work in.
        """

    @abstractmethod
    def copier(self, store: Storage, source: ModelEntry, source_path: str) -> Copier:
        """A :class:`Copier` of ``source``, stored at ``source_path``."""

    @abstractmethod
    def fetch(
        self, store: Storage, entry: ModelEntry, path: str, folder: Path, *, max_bytes: int, max_members: int
    ) -> int:
        """Write the model's files into the empty ``folder``; returns the bytes written.

        Raises ModelNotFoundError when the artifact is missing and CorruptArtifactError naming
        the model when it is unsafe, too big, or its sha256 differs from the entry's.
        """

    @abstractmethod
    def check(self, store: Storage, entry: ModelEntry, path: str) -> tuple[str | None, int, str | None]:
        """(problem or None, stored bytes, sha256) of one stored model."""


def _missing(store: Storage, entry: ModelEntry) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"Model {entry.name!r} is listed in the manifest of {store.url!r} but its artifact "
        f"{entry.key!r} is missing"
    )


def _mismatch(entry: ModelEntry, digest: str) -> CorruptArtifactError:
    return CorruptArtifactError(
        f"Model {entry.name!r}: sha256 mismatch (manifest {entry.sha256}, stored {digest})"
    )


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


class SageMakerLayout(Layout):
    """SageMaker MME: ``<name>.tar.gz`` under one prefix; the target is the archive's name."""

    name = "sagemaker"
    folders = False

    def name_of(self, name_or_target: str) -> str:
        name = validate_model_name(name_or_target)
        if name.endswith(ARCHIVE_SUFFIX):
            name = validate_model_name(name[: -len(ARCHIVE_SUFFIX)])
        return name

    def key(self, name: str) -> str:
        return name + ARCHIVE_SUFFIX

    def target(self, name: str) -> str:
        return name + ARCHIVE_SUFFIX

    def folder_prefix(self, name: str) -> str | None:
        # SageMaker's Triton container unpacks <name>/config.pbtxt and <name>/1/... from the archive.
        return name

    def scan(self, store: Storage) -> Iterator[Found]:
        for path, info in store.fs.find(store.root, detail=True).items():
            rel = store.rel(path)
            # "other": a link or special file; listed so that verify() names it.
            if rel is None or not rel.endswith(ARCHIVE_SUFFIX) or info.get("type") not in ("file", "other"):
                continue
            try:
                name = self.name_of(rel)
            except InvalidModelNameError:
                continue  # hidden uploads in progress, or names no client could target
            yield Found(name, rel, int(info.get("size") or 0), info_created(info))

    def probe(self, store: Storage, name: str, path: str, info: dict[str, Any]) -> tuple[int, datetime | None] | None:
        if info.get("type") not in ("file", "other"):
            return None
        store.guard(name, [path])
        return int(info.get("size") or 0), info_created(info)

    def write_model(
        self, store: Storage, folder: Path, path: str, *, archive: Path | None, scratch: Path,
        arcname_prefix: str | None, overwrite: bool,
    ) -> tuple[int, str]:
        if archive is None or not _is_gzip(archive):
            archive = scratch / "model.tar.gz"
            pack(folder, archive, arcname_prefix=arcname_prefix)
        size, sha = archive.stat().st_size, file_sha256(archive)
        store.put_file(archive, path)
        return size, sha

    def copier(self, store: Storage, source: ModelEntry, source_path: str) -> Copier:
        store.guard(source.name, [source_path])
        return _ArchiveCopier(store, source, source_path)

    def fetch(
        self, store: Storage, entry: ModelEntry, path: str, folder: Path, *, max_bytes: int, max_members: int
    ) -> int:
        try:
            fh = store.open_checked(entry.name, path)
        except FileNotFoundError as exc:
            raise _missing(store, entry) from exc
        written = 0
        with fh:
            reader = HashingReader(fh)
            failure: Exception | None = None
            try:
                summary = safe_extract(reader, folder, max_bytes=max_bytes, max_members=max_members, fresh=True)
                written = summary.bytes
                if not summary.files:
                    failure = CorruptArtifactError(f"Model {entry.name!r}: the archive holds no files")
            except (UnsafeArchiveError, CorruptArtifactError) as exc:
                failure = exc
            digest = reader.drain()
        if entry.sha256 is not None and digest != entry.sha256:
            raise _mismatch(entry, digest) from failure
        if isinstance(failure, UnsafeArchiveError):
            raise CorruptArtifactError(f"Model {entry.name!r}: unsafe archive: {failure}") from failure
        if failure is not None:
            if str(failure).startswith(f"Model {entry.name!r}"):
                raise failure
            raise CorruptArtifactError(f"Model {entry.name!r}: {failure}") from failure
        return written

    def check(self, store: Storage, entry: ModelEntry, path: str) -> tuple[str | None, int, str | None]:
        try:
            store.guard(entry.name, [path])
        except CorruptArtifactError as exc:
            return str(exc), 0, None
        try:
            fh = store.open_read(path)
        except FileNotFoundError:
            return "missing", 0, None
        with fh:
            reader = HashingReader(fh)
            reason: str | None = None
            try:
                summary = check_archive(reader)
                if not summary.files:
                    reason = "unreadable archive: it holds no files"
            except CorruptArtifactError as exc:
                reason = str(exc)
            except UnsafeArchiveError as exc:
                reason = f"unsafe archive: {exc}"
            digest = reader.drain()
        if entry.sha256 is not None and digest != entry.sha256:
            return "sha256 mismatch", reader.count, digest
        return reason, reader.count, digest


class _ArchiveCopier(Copier):
    def __init__(self, store: Storage, source: ModelEntry, source_path: str) -> None:
        self._store, self._source, self._source_path = store, source, source_path

    def reuses(self, existing: ModelEntry) -> bool:
        return bool(existing.sha256) and existing.sha256 == self._source.sha256

    def copy(self, name: str, path: str) -> str | None:
        self._store.fs.copy(self._source_path, path)
        return self._source.sha256


class TritonLayout(Layout):
    """Triton: one folder per model, ``<name>/config.pbtxt`` and ``<name>/<version>/model.*``."""

    name = "triton"
    folders = True

    def name_of(self, name_or_target: str) -> str:
        name = validate_model_name(name_or_target)
        if "/" in name:
            raise InvalidModelNameError(
                f"Invalid model name {name!r}: Triton model names are single folder names (no '/')"
            )
        return name

    def key(self, name: str) -> str:
        return name + "/"

    def target(self, name: str) -> str:
        return name

    def check_add_options(self, arcname_prefix: str | None) -> None:
        if arcname_prefix is not None:
            raise ConfigurationError("arcname_prefix applies to the sagemaker layout only")

    def unpacked_model(self, folder: Path, name: str) -> Path:
        # An archive of the model folder itself (<name>/config.pbtxt ...): its files are below.
        children = list(folder.iterdir())
        if len(children) == 1 and children[0].is_dir() and children[0].name == name:
            return children[0]
        return folder

    def scan(self, store: Storage) -> Iterator[Found]:
        for info in store.fs.ls(store.root, detail=True):
            rel = store.rel(info["name"])
            # A link to a folder is listed (not entered) so that verify() names it.
            linked = store.local and info.get("islink") and os.path.isdir(info["name"])
            if rel is None or not (info.get("type") == "directory" or linked):
                continue
            try:
                name = self.name_of(rel)
            except InvalidModelNameError:
                continue
            files = store.find(info["name"])
            if not files:
                continue
            size, created = _size_and_date(files)
            yield Found(name, name + "/", size, created)

    def probe(self, store: Storage, name: str, path: str, info: dict[str, Any]) -> tuple[int, datetime | None] | None:
        files = store.find(path)
        if not files:
            return None
        store.guard(name, files)
        return _size_and_date(files)

    def write_model(
        self, store: Storage, folder: Path, path: str, *, archive: Path | None, scratch: Path,
        arcname_prefix: str | None, overwrite: bool,
    ) -> tuple[int, str]:
        files = artifact_files(folder)
        if overwrite and store.fs.exists(path):
            store.fs.rm(path, recursive=True)
        hashes: dict[str, str] = {}
        size = 0
        for rel, local in files:
            hashes[rel] = file_sha256(local)
            size += local.stat().st_size
            store.put_file(local, f"{path}/{rel}")
        return size, folder_digest(hashes)

    def copier(self, store: Storage, source: ModelEntry, source_path: str) -> Copier:
        return _FolderCopier(store, source, source_path)

    def fetch(
        self, store: Storage, entry: ModelEntry, path: str, folder: Path, *, max_bytes: int, max_members: int
    ) -> int:
        files = sorted(store.find(path))
        if not files:
            raise _missing(store, entry)
        if len(files) > max_members:
            raise CorruptArtifactError(f"Model {entry.name!r} has more than {max_members} files")
        store.guard(entry.name, files)
        prefix = path.rstrip("/") + "/"
        hashes: dict[str, str] = {}
        total = 0
        for remote in files:
            rel_raw = remote[len(prefix):] if remote.startswith(prefix) else remote
            try:
                parts = member_parts(rel_raw)
            except UnsafeArchiveError as exc:
                raise CorruptArtifactError(f"Model {entry.name!r}: unsafe file name: {exc}") from exc
            rel = "/".join(parts)
            target = folder.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            sha = hashlib.sha256()
            with store.open_read(remote) as src, open(target, "xb") as out:
                while chunk := src.read(CHUNK):
                    total += len(chunk)
                    if total > max_bytes:
                        raise CorruptArtifactError(
                            f"Model {entry.name!r} is larger than the limit of {max_bytes} bytes"
                        )
                    sha.update(chunk)
                    out.write(chunk)
            hashes[rel] = sha.hexdigest()
        digest = folder_digest(hashes)
        if entry.sha256 is not None and digest != entry.sha256:
            raise _mismatch(entry, digest)
        return total

    def check(self, store: Storage, entry: ModelEntry, path: str) -> tuple[str | None, int, str | None]:
        try:
            hashes = _stored_file_hashes(store, entry.name, path)
        except FileNotFoundError:
            return "missing", 0, None
        except CorruptArtifactError as exc:  # a link or a file outside the repository folder
            return str(exc), 0, None
        if not hashes:
            return "missing", 0, None
        digest = folder_digest(hashes)
        size = sum(int(info.get("size") or 0) for info in store.find(path).values())
        if entry.sha256 is not None and digest != entry.sha256:
            return "sha256 mismatch", size, digest
        return None, size, digest


class _FolderCopier(Copier):
    def __init__(self, store: Storage, source: ModelEntry, source_path: str) -> None:
        self._store, self._source, self._source_path = store, source, source_path
        self._hashes: dict[str, str] | None = None  # the source's, read once at the first copy

    def copy(self, name: str, path: str) -> str | None:
        fs, src_path = self._store.fs, self._source_path
        if self._hashes is None:
            self._hashes = _stored_file_hashes(self._store, self._source.name, src_path)
        if fs.exists(path):
            fs.rm(path, recursive=True)
        hashes = dict(self._hashes)
        for rel in sorted(self._hashes):
            if rel == "config.pbtxt":
                text = fs.cat_file(f"{src_path}/{rel}").decode()
                data = _rename_config(text, name).encode()
                fs.makedirs(path, exist_ok=True)
                self._store.write_bytes(f"{path}/{rel}", data)
                hashes[rel] = hashlib.sha256(data).hexdigest()
            else:
                fs.makedirs(f"{path}/{rel}".rsplit("/", 1)[0], exist_ok=True)
                fs.copy(f"{src_path}/{rel}", f"{path}/{rel}")
        return folder_digest(hashes) if self._source.sha256 is not None else None


def _rename_config(text: str, name: str) -> str:
    return _CONFIG_NAME_RE.sub(lambda m: f'{m.group(1)}"{name}"', text)


def _size_and_date(files: dict[str, dict[str, Any]]) -> tuple[int, datetime | None]:
    size = sum(int(f.get("size") or 0) for f in files.values())
    stamps = [c for c in (info_created(f) for f in files.values()) if c is not None]
    return size, max(stamps) if stamps else None


def _stored_file_hashes(store: Storage, name: str, folder_path: str) -> dict[str, str]:
    """sha256 of every file of the model folder at ``folder_path``, by relative path."""
    hashes: dict[str, str] = {}
    prefix = folder_path.rstrip("/") + "/"
    files = sorted(store.find(folder_path))
    store.guard(name, files)
    for path in files:
        rel = path[len(prefix):] if path.startswith(prefix) else None
        if rel is None:
            continue
        with store.open_read(path) as fh:
            hashes[rel] = stream_sha256(fh)
    return hashes


#: The layouts by the name ``ModelRepository(layout=...)`` takes.
LAYOUTS: dict[str, type[Layout]] = {"sagemaker": SageMakerLayout, "triton": TritonLayout}


def layout_for(layout: LayoutName | Layout) -> Layout:
    """The strategy for ``"sagemaker"``, ``"triton"`` or a :class:`Layout` itself."""
    if isinstance(layout, Layout):
        return layout
    cls = LAYOUTS.get(layout) if isinstance(layout, str) else None
    if cls is None:
        raise ConfigurationError(f"Expected layout 'sagemaker' or 'triton', received {layout!r}")
    return cls()
