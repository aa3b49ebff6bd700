"""ModelRepository: named model artifacts in any fsspec storage, in a layout a server understands.

SageMaker MME layout: one ``<name>.tar.gz`` per model under one prefix. Triton layout:
``<name>/config.pbtxt`` and ``<name>/<version>/model.*``. A manifest beside the models records
backend, size and sha256; repositories written by other tools open and list without one.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import os
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from mmeperf._types import Layout, PathLike
from mmeperf.errors import (
    ConfigurationError,
    CorruptArtifactError,
    InvalidModelNameError,
    MissingDependencyError,
    ModelExistsError,
    ModelNotFoundError,
    RepositoryError,
    UnknownPluginError,
    UnsafeArchiveError,
)
from mmeperf.repository.archive import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_MEMBERS,
    artifact_files,
    check_archive,
    pack,
    safe_extract,
)
from mmeperf.repository.detect import detect_backend
from mmeperf.repository.manifest import MANIFEST_NAME, Manifest, ModelEntry, VerifyReport
from mmeperf.repository.names import key_under_root, validate_model_name

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["ModelRepository"]

LayoutName = Layout
_ARCHIVE_SUFFIX = ".tar.gz"
_CHUNK = 1 << 20
# Triton's config.pbtxt may name the model; a copy must carry its own folder's name.
# Errors of a path the caller's name made unusable (too long, not encodable): a 400, not ours.
_NAME_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ})
_CONFIG_NAME_RE = re.compile(r'^(\s*name\s*:\s*)"[^"\n]*"', re.MULTILINE)
_O_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
# Checked names get() remembers (a bound: clients may send any number of distinct spellings).
_MAX_RESOLVED = 8192
_O_DIRECTORY: int = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC: int = getattr(os, "O_CLOEXEC", 0)
# Local archives open segment by segment from descriptors, without following links (see
# _open_local); elsewhere (Windows) _guard's realpath check runs first.
_SAFE_OPEN = bool(_O_NOFOLLOW and _O_DIRECTORY) and os.open in os.supports_dir_fd and hasattr(os, "O_NONBLOCK")


class _HashingReader:
    """Hashes and counts the bytes read through it, so one pass both checks and extracts."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner, self.sha, self.count = inner, hashlib.sha256(), 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._inner.read(size)
        self.sha.update(data)
        self.count += len(data)
        return data

    def drain(self) -> str:
        """Read to the end (bytes past the tar's end still count) and return the hex digest."""
        while self.read(_CHUNK):
            pass
        return self.sha.hexdigest()


def _partial_name(target: Path) -> Path:
    """A hidden temporary name beside ``target``, short enough for any name a model may have."""
    return target.with_name(f".{target.name[:64]}.partial-{os.getpid()}-{threading.get_ident()}")


def _rename_config(text: str, name: str) -> str:
    return _CONFIG_NAME_RE.sub(lambda m: f'{m.group(1)}"{name}"', text)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def _folder_digest(file_hashes: dict[str, str]) -> str:
    """Digest of a folder: sha256 of its ``sha256sum``-style listing, sorted by relative path."""
    listing = "".join(f"{digest}  {rel}\n" for rel, digest in sorted(file_hashes.items()))
    return hashlib.sha256(listing.encode()).hexdigest()


def _created(info: dict[str, Any]) -> datetime | None:
    for key in ("LastModified", "mtime", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
    return None


def _open_fs(url: str, storage_options: dict[str, Any]) -> tuple[Any, str]:
    from fsspec.core import url_to_fs

    protocol = url.split("://", 1)[0] if "://" in url else "file"
    try:
        return url_to_fs(url, **storage_options)  # type: ignore[no-any-return]
    except ImportError as exc:
        if protocol in ("s3", "s3a"):
            raise MissingDependencyError("S3 model repositories", "s3fs", "aws") from exc
        raise RepositoryError(f"Cannot open {url!r}: {exc}") from exc
    except ValueError as exc:
        raise ConfigurationError(
            f"Expected a local path or an fsspec URL (s3://, memory://, ...), received {url!r}: {exc}"
        ) from exc


class ModelRepository:
    """A named set of model artifacts in storage (local folder, ``s3://``, any fsspec URL).

    Example::

        repo = ModelRepository("./models")               # SageMaker MME layout
        repo.add("churn-xgb-CA", "build/CA/")             # packs build/CA/* into churn-xgb-CA.tar.gz
        folder = repo.fetch("churn-xgb-CA.tar.gz", "/tmp/cache")
    """

    def __init__(
        self,
        url: PathLike,
        *,
        layout: LayoutName = "sagemaker",
        storage_options: dict[str, Any] | None = None,
        create: bool = True,
    ) -> None:
        if layout not in ("sagemaker", "triton"):
            raise ConfigurationError(f"Expected layout 'sagemaker' or 'triton', received {layout!r}")
        self.url: str = os.fspath(url)
        self.layout: LayoutName = layout
        self.fs, path = _open_fs(self.url, dict(storage_options or {}))
        self.root: str = path.rstrip("/") or path
        from fsspec.implementations.local import LocalFileSystem

        self._local = isinstance(self.fs, LocalFileSystem)
        if self._local and Path(self.root).exists() and not Path(self.root).is_dir():
            raise ConfigurationError(f"Expected a folder for the repository, received the file {self.root}")
        if create:
            self.fs.makedirs(self.root, exist_ok=True)
        elif not self.fs.exists(self.root):
            raise RepositoryError(
                f"No model repository at {self.url!r}; expected an existing folder or prefix "
                "(create=True makes one)"
            )
        self._lock = threading.RLock()
        self._manifest: Manifest | None = None
        self._by_name: dict[str, ModelEntry] = {}  # the manifest's entries by name (read-only)
        # Exact names and targets get() already checked and found in the manifest: a cache miss
        # of the server then skips re-validating its target (reset with the manifest).
        self._resolved: dict[str, ModelEntry] = {}
        # key -> (bytes, sha256) that verify computed for models the manifest does not know.
        self._computed: dict[str, tuple[int, str]] = {}
        self.refresh()

    # --- names and paths ----------------------------------------------------------------

    def _name_of(self, name_or_target: str) -> str:
        name = validate_model_name(name_or_target)
        if self.layout == "sagemaker" and name.endswith(_ARCHIVE_SUFFIX):
            name = validate_model_name(name[: -len(_ARCHIVE_SUFFIX)])
        if self.layout == "triton" and "/" in name:
            raise InvalidModelNameError(
                f"Invalid model name {name!r}: Triton model names are single folder names (no '/')"
            )
        return name

    def _key(self, name: str) -> str:
        return name + _ARCHIVE_SUFFIX if self.layout == "sagemaker" else name + "/"

    def _target(self, name: str) -> str:
        return name + _ARCHIVE_SUFFIX if self.layout == "sagemaker" else name

    def _path(self, key: str) -> str:
        return key_under_root(self.root, key).rstrip("/")

    def _rel(self, path: str) -> str | None:
        path = self.fs._strip_protocol(path) if "://" in path else path
        prefix = self.root.rstrip("/") + "/"
        return path[len(prefix):] if path.startswith(prefix) else None

    # --- local storage: links never lead out of the root ----------------------------------

    def _find(self, path: str) -> dict[str, dict[str, Any]]:
        """Every file under ``path`` with its info, like ``fs.find(detail=True)``.

        On local storage the walk follows no link (fsspec's does: a model folder holding
        ``1 -> /`` would walk the machine); links and special files are listed, not entered,
        so :meth:`_guard` can name them.
        """
        if not self._local:
            found: dict[str, dict[str, Any]] = self.fs.find(path, detail=True)
            return found
        out: dict[str, dict[str, Any]] = {}
        top = path.rstrip("/") or path
        try:
            st = os.lstat(top)
        except FileNotFoundError:
            return out
        if not stat.S_ISDIR(st.st_mode):
            out[top] = self._local_info(top, st)
            return out
        for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
            # os.walk sorts links to folders into dirnames but never enters them: list them.
            for name in [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))] + filenames:
                full = os.path.join(dirpath, name)
                try:
                    out[full] = self._local_info(full, os.lstat(full))
                except FileNotFoundError:
                    continue  # removed while we walked
        return out

    @staticmethod
    def _local_info(path: str, st: os.stat_result) -> dict[str, Any]:
        kind = "file" if stat.S_ISREG(st.st_mode) else "other"
        return {"name": path, "size": st.st_size, "type": kind, "mtime": st.st_mtime,
                "islink": stat.S_ISLNK(st.st_mode)}

    def _guard(self, name: str, paths: Iterable[str]) -> None:
        """On local storage, refuse a model whose files are links, special files or lie outside root.

        Raises CorruptArtifactError naming the model: a symlink ``m/1/model.onnx -> /etc/passwd``
        would otherwise copy any file this process can read into the cache, hashes and all.
        """
        if not self._local:
            return
        root_real = os.path.realpath(self.root)
        prefix = self.root.rstrip("/") + "/"
        for path in paths:
            rel = path[len(prefix):] if path.startswith(prefix) else None
            why: str | None = None
            if rel is None:
                why = "lies outside the repository folder"
            else:
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    continue  # reported as missing by whoever reads it
                # realpath differs from root/rel exactly when a link sits on any segment of the way.
                if os.path.realpath(path) != os.path.join(root_real, rel):
                    why = "is or passes through a symbolic link"
                elif not stat.S_ISREG(st.st_mode):
                    why = "is not a regular file"
            if why is not None:
                shown = rel if rel is not None else path
                raise CorruptArtifactError(
                    f"Model {name!r}: {shown!r} {why}; refused (artifacts must be regular files "
                    f"inside the repository folder {self.root!r})"
                )

    def _open_local(self, name: str, path: str) -> IO[bytes]:
        """Open a stored file under the local root as :meth:`_guard` then :meth:`_open_read` would,
        in one race-free pass: each segment below the root is opened from its parent's descriptor
        without following links, and the file is checked regular on the open descriptor.

        Raises CorruptArtifactError naming the model (a link on the way, not a regular file, or
        outside the root) and FileNotFoundError when it is missing.
        """
        prefix = self.root.rstrip("/") + "/"
        rel = path[len(prefix):] if path.startswith(prefix) else None
        if not rel:
            raise CorruptArtifactError(f"Model {name!r}: {path!r} lies outside the repository folder; refused")
        parts = rel.split("/")
        why: str | None = None
        # The root itself may be reached through links (as its realpath is in _guard).
        fd = os.open(self.root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        try:
            for part in parts[:-1]:
                try:
                    nxt = os.open(part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    why = "is or passes through a symbolic link"
                    break
                os.close(fd)
                fd = nxt
            if why is None:
                # Special files are refused before any open (opening a device can act on it);
                # the open below still checks the descriptor, in case of a swap in between.
                st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    why = "is or passes through a symbolic link"
                elif not stat.S_ISREG(st.st_mode):
                    why = "is not a regular file"
            if why is None:
                try:
                    # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
                    file_fd = os.open(
                        parts[-1], os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | os.O_NONBLOCK, dir_fd=fd
                    )
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EOPNOTSUPP):
                        raise
                    why = "is or passes through a symbolic link" if exc.errno == errno.ELOOP else "is not a regular file"
                else:
                    if stat.S_ISREG(os.fstat(file_fd).st_mode):
                        return os.fdopen(file_fd, "rb")
                    os.close(file_fd)
                    why = "is not a regular file"
        finally:
            os.close(fd)
        raise CorruptArtifactError(
            f"Model {name!r}: {rel!r} {why}; refused (artifacts must be regular files "
            f"inside the repository folder {self.root!r})"
        )

    def _open_read(self, path: str) -> IO[bytes]:
        """Open a stored file; on local storage without following a link swapped in after the guard."""
        if not self._local:
            fh: IO[bytes] = self.fs.open(path, "rb")
            return fh
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise CorruptArtifactError(f"{path!r} is a symbolic link; refused") from exc
            raise
        return os.fdopen(fd, "rb")

    # --- manifest -------------------------------------------------------------------------

    @property
    def manifest_path(self) -> str:
        """Where the manifest lives in ``fs``."""
        return self.root.rstrip("/") + "/" + MANIFEST_NAME

    @property
    def is_local(self) -> bool:
        """Whether the repository is a folder on this machine (``root`` is then a real path)."""
        return self._local

    @property
    def has_manifest(self) -> bool:
        """Whether the repository has a manifest (False for repositories written by other tools)."""
        return self._manifest is not None

    def refresh(self) -> None:
        """Re-read the manifest (another process may have added models)."""
        with self._lock:
            self._set_manifest(self._read_manifest())

    def _set_manifest(self, manifest: Manifest | None) -> None:
        # Swapped whole (never mutated), so readers need no lock: get() runs on every cache miss.
        self._by_name = {m.name: m for m in manifest.models} if manifest else {}
        self._resolved = {}
        self._manifest = manifest

    def _read_manifest(self) -> Manifest | None:
        try:
            raw = self.fs.cat_file(self.manifest_path)
        except FileNotFoundError:
            return None
        manifest = Manifest.from_bytes(raw, where=f"{self.url}/{MANIFEST_NAME}")
        if manifest.layout != self.layout:
            raise ConfigurationError(
                f"Repository {self.url!r} was written in the {manifest.layout!r} layout; "
                f"received layout={self.layout!r}"
            )
        return manifest

    def _update_manifest(
        self, *, put: Sequence[ModelEntry] = (), drop: Sequence[str] = ()
    ) -> None:
        """Read-modify-write the manifest (fresh read, so other writers' entries survive)."""
        with self._lock:
            current = self._read_manifest() or Manifest(layout=self.layout)
            models = {m.name: m for m in current.models}
            for name in drop:
                models.pop(name, None)
            for entry in put:
                models[entry.name] = entry
            updated = Manifest(layout=self.layout, models=sorted(models.values(), key=lambda m: m.name))
            self._write_bytes(self.manifest_path, updated.to_bytes())
            self._set_manifest(updated)

    def _write_bytes(self, path: str, data: bytes) -> None:
        if self._local:
            target = Path(path)
            tmp = _partial_name(target)
            try:
                tmp.write_bytes(data)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            self.fs.pipe_file(path, data)

    def _put_file(self, local: Path, path: str) -> None:
        """Upload one file; on local storage atomically (copy beside, then rename)."""
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        if self._local:
            target = Path(path)
            tmp = _partial_name(target)
            try:
                shutil.copyfile(local, tmp)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            self.fs.put_file(str(local), path)

    # --- listing --------------------------------------------------------------------------

    def _manifest_entries(self) -> dict[str, ModelEntry]:
        """The manifest's entries by name (shared: callers must not modify it)."""
        return self._by_name

    def _foreign(self, name: str, key: str, size: int, created: datetime | None) -> ModelEntry:
        known = self._computed.get(key)
        sha = known[1] if known is not None and known[0] == size else None
        return ModelEntry(
            name=name, target=self._target(name), key=key, backend=None, bytes=size,
            sha256=sha, created=created,
        )

    def _scan(self) -> dict[str, ModelEntry]:
        """Models found in storage itself (what a repository without manifest holds)."""
        found: dict[str, ModelEntry] = {}
        # fsspec caches listings (s3fs does); another writer's uploads must show up here.
        self.fs.invalidate_cache(self.root)
        if self.layout == "sagemaker":
            for path, info in self.fs.find(self.root, detail=True).items():
                rel = self._rel(path)
                # "other": a link or special file; listed so that verify() names it.
                if rel is None or not rel.endswith(_ARCHIVE_SUFFIX) or info.get("type") not in ("file", "other"):
                    continue
                try:
                    name = self._name_of(rel)
                except InvalidModelNameError:
                    continue  # hidden uploads in progress, or names no client could target
                found[name] = self._foreign(name, rel, int(info.get("size") or 0), _created(info))
        else:
            for info in self.fs.ls(self.root, detail=True):
                rel = self._rel(info["name"])
                # A link to a folder is listed (not entered) so that verify() names it.
                linked = self._local and info.get("islink") and os.path.isdir(info["name"])
                if rel is None or not (info.get("type") == "directory" or linked):
                    continue
                try:
                    name = self._name_of(rel)
                except InvalidModelNameError:
                    continue
                files = self._find(info["name"])
                if not files:
                    continue
                size = sum(int(f.get("size") or 0) for f in files.values())
                stamps = [c for c in (_created(f) for f in files.values()) if c is not None]
                found[name] = self._foreign(name, name + "/", size, max(stamps) if stamps else None)
        return found

    def list(self) -> list[ModelEntry]:
        """Every model, sorted by name: manifest entries, plus artifacts found without one."""
        models = self._scan()
        models.update(self._manifest_entries())
        return [models[name] for name in sorted(models)]

    def names(self) -> builtins.list[str]:
        """Every model's name, sorted."""
        return [entry.name for entry in self.list()]

    def __len__(self) -> int:
        return len(self.list())

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self.list())

    def __contains__(self, name_or_target: object) -> bool:
        if not isinstance(name_or_target, str):
            return False
        try:
            self.get(name_or_target)
        except (ModelNotFoundError, InvalidModelNameError):
            return False
        return True

    def __repr__(self) -> str:
        return f"ModelRepository({self.url!r}, layout={self.layout!r})"

    def get(self, name_or_target: str) -> ModelEntry:
        """The entry for ``churn-xgb-CA`` or its target ``churn-xgb-CA.tar.gz``.

        Raises InvalidModelNameError (400) for unsafe names, ModelNotFoundError (404) otherwise.
        """
        entry = self._resolved.get(name_or_target) if isinstance(name_or_target, str) else None
        if entry is not None:
            return entry
        name = self._name_of(name_or_target)
        entry = self._by_name.get(name)
        if entry is None:
            self.refresh()  # another process may have added it since we read the manifest
            entry = self._by_name.get(name)
        if entry is not None:
            resolved = self._resolved
            if len(resolved) >= _MAX_RESOLVED:
                resolved.clear()
            resolved[name_or_target] = entry
            return entry
        found = self._probe(name, self._path(self._key(name)))
        if found is None:
            raise ModelNotFoundError(
                f"Model {name_or_target!r} is not in repository {self.url!r} "
                f"(expected {self._target(name)!r} there)"
            )
        return found

    def _probe(self, name: str, path: str) -> ModelEntry | None:
        """Look for a model the manifest does not know, straight in storage."""
        self.fs.invalidate_cache(path)
        try:
            info = self.fs.info(path)
            if self.layout == "sagemaker":
                if info.get("type") not in ("file", "other"):
                    return None
                self._guard(name, [path])
                return self._foreign(name, self._key(name), int(info.get("size") or 0), _created(info))
            files = self._find(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            # Checked names can still make a path the OS refuses (a deep root plus a long name).
            if exc.errno in _NAME_ERRNOS:
                raise InvalidModelNameError(
                    f"Invalid model name {name[:80]!r}: storage refuses its path ({exc.strerror})"
                ) from exc
            raise RepositoryError(f"Model {name!r}: cannot read {path!r} ({exc})") from exc
        if not files:
            return None
        self._guard(name, files)
        size = sum(int(f.get("size") or 0) for f in files.values())
        stamps = [c for c in (_created(f) for f in files.values()) if c is not None]
        return self._foreign(name, self._key(name), size, max(stamps) if stamps else None)

    # --- adding ---------------------------------------------------------------------------

    def add(
        self,
        name: str,
        source: PathLike,
        *,
        backend: str | None = None,
        overwrite: bool = False,
        arcname_prefix: str | None = None,
    ) -> ModelEntry:
        """Add a model from a folder of artifact files or an existing ``.tar.gz``.

        SageMaker layout: a folder is packed into ``<name>.tar.gz`` with its files at the
        archive root (or under ``arcname_prefix/``, e.g. the model name for SageMaker's Triton
        packaging); an archive is checked safe and stored as is. Triton layout: the files are
        copied to ``<name>/...``. ``backend`` is detected from the files when not given.
        Raises ModelExistsError (409) unless ``overwrite``.
        """
        name = self._name_of(name)
        if backend is not None:
            from mmeperf.plugins import BACKENDS, available

            known = available(BACKENDS)
            if backend not in known:
                raise UnknownPluginError("backend", backend, known)
        src = Path(source)
        key = self._key(name)
        path = self._path(key)
        if not overwrite and name in self:
            raise ModelExistsError(
                f"Model {name!r} already exists in {self.url!r}; pass overwrite=True to replace it"
            )
        is_archive = src.is_file() and (src.name.endswith((".tar.gz", ".tgz", ".tar")))
        if not (src.is_dir() or is_archive):
            raise ConfigurationError(
                f"Expected a folder of artifact files or a .tar.gz archive, received {src}"
            )
        if is_archive and arcname_prefix is not None:
            raise ConfigurationError("arcname_prefix applies when packing a folder, not to an archive")
        if self.layout == "triton" and arcname_prefix is not None:
            raise ConfigurationError("arcname_prefix applies to the sagemaker layout only")

        with tempfile.TemporaryDirectory(prefix="mmeperf-add-") as tmp_dir:
            tmp = Path(tmp_dir)
            folder = src
            if is_archive:
                # Unpacked once: proves the archive safe and lets the backend be detected.
                folder = tmp / "unpacked"
                safe_extract(src, folder)
                if self.layout == "triton":
                    children = list(folder.iterdir())
                    if len(children) == 1 and children[0].is_dir() and children[0].name == name:
                        folder = children[0]
            backend = detect_backend(folder, hint=backend)
            if self.layout == "sagemaker":
                if is_archive and _is_gzip(src):
                    archive = src
                else:
                    archive = tmp / "model.tar.gz"
                    pack(folder, archive, arcname_prefix=arcname_prefix)
                size, sha = archive.stat().st_size, _file_sha256(archive)
                self._put_file(archive, path)
            else:
                files = artifact_files(folder)
                if overwrite and self.fs.exists(path):
                    self.fs.rm(path, recursive=True)
                hashes: dict[str, str] = {}
                size = 0
                for rel, local in files:
                    hashes[rel] = _file_sha256(local)
                    size += local.stat().st_size
                    self._put_file(local, f"{path}/{rel}")
                sha = _folder_digest(hashes)
        entry = ModelEntry(
            name=name, target=self._target(name), key=key, backend=backend, bytes=size,
            sha256=sha, created=datetime.now(UTC),
        )
        self._computed.pop(key, None)
        self._update_manifest(put=[entry])
        return entry

    def add_model(
        self,
        name: str,
        model: Any,
        *,
        backend: str,
        overwrite: bool = False,
        arcname_prefix: str | None = None,
    ) -> ModelEntry:
        """Save a native ``model`` with backend plugin ``backend`` and add the artifact."""
        from mmeperf.plugins import get_backend

        plugin = get_backend(backend)
        with tempfile.TemporaryDirectory(prefix="mmeperf-save-") as tmp:
            plugin.save(model, Path(tmp))
            return self.add(
                name, tmp, backend=backend, overwrite=overwrite, arcname_prefix=arcname_prefix
            )

    def copies(
        self,
        name: str,
        n: int,
        *,
        template: str = "{name}-v{i}",
        overwrite: bool = False,
    ) -> builtins.list[ModelEntry]:
        """``n`` copies of one model, named ``template.format(name=..., i=0..n-1)``.

        How the GPU workflow fills memory: each copy is loaded as a separate model. Copies are
        storage-side (S3 copies without download); a copy that already exists with the same
        sha256 is reused, any other existing name raises ModelExistsError unless ``overwrite``.
        In the Triton layout a ``name:`` line in config.pbtxt is rewritten to the copy's name.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigurationError(f"Expected a non-negative number of copies, received {n!r}")
        if "{i" not in template:
            raise ConfigurationError(f"Expected a template with an {{i}} field, received {template!r}")
        src = self.get(name)
        src_path = self._path(src.key)
        if self.layout == "sagemaker":
            self._guard(src.name, [src_path])
        triton_hashes: dict[str, str] | None = None
        out: builtins.list[ModelEntry] = []
        new_entries: builtins.list[ModelEntry] = []
        for i in range(n):
            try:
                copy_name = self._name_of(template.format(name=src.name, i=i))
            except (KeyError, IndexError, ValueError) as exc:
                if isinstance(exc, InvalidModelNameError):
                    raise
                raise ConfigurationError(
                    f"Expected a template using {{name}} and {{i}}, received {template!r}: {exc}"
                ) from exc
            if copy_name == src.name:
                raise ConfigurationError(f"Template {template!r} gives the source's own name")
            key = self._key(copy_name)
            path = self._path(key)
            if copy_name in self:
                existing = self.get(copy_name)
                if self.layout == "sagemaker" and existing.sha256 and existing.sha256 == src.sha256:
                    out.append(existing)
                    continue
                if not overwrite:
                    raise ModelExistsError(
                        f"Model {copy_name!r} already exists in {self.url!r} and differs from "
                        f"{src.name!r}; pass overwrite=True to replace it"
                    )
            if self.layout == "sagemaker":
                self.fs.copy(src_path, path)
                sha = src.sha256
            else:
                if triton_hashes is None:
                    triton_hashes = self._remote_file_hashes(src.name, src_path)
                if self.fs.exists(path):
                    self.fs.rm(path, recursive=True)
                hashes = dict(triton_hashes)
                for rel in sorted(triton_hashes):
                    if rel == "config.pbtxt":
                        text = self.fs.cat_file(f"{src_path}/{rel}").decode()
                        data = _rename_config(text, copy_name).encode()
                        self.fs.makedirs(path, exist_ok=True)
                        self._write_bytes(f"{path}/{rel}", data)
                        hashes[rel] = hashlib.sha256(data).hexdigest()
                    else:
                        self.fs.makedirs(f"{path}/{rel}".rsplit("/", 1)[0], exist_ok=True)
                        self.fs.copy(f"{src_path}/{rel}", f"{path}/{rel}")
                sha = _folder_digest(hashes) if src.sha256 is not None else None
            entry = ModelEntry(
                name=copy_name, target=self._target(copy_name), key=key, backend=src.backend,
                bytes=src.bytes, sha256=sha, created=datetime.now(UTC),
            )
            new_entries.append(entry)
            out.append(entry)
        if new_entries:
            self._update_manifest(put=new_entries)
        return out

    def _remote_file_hashes(self, name: str, folder_path: str) -> dict[str, str]:
        hashes: dict[str, str] = {}
        prefix = folder_path.rstrip("/") + "/"
        files = sorted(self._find(folder_path))
        self._guard(name, files)
        for path in files:
            rel = path[len(prefix):] if path.startswith(prefix) else None
            if rel is None:
                continue
            sha = hashlib.sha256()
            with self._open_read(path) as fh:
                while chunk := fh.read(_CHUNK):
                    sha.update(chunk)
            hashes[rel] = sha.hexdigest()
        return hashes

    def remove(self, name: str) -> None:
        """Delete a model's artifact and its manifest entry. ModelNotFoundError when absent."""
        try:
            entry = self.get(name)
            model, key = entry.name, entry.key
        except CorruptArtifactError:
            # Refused for its links, but still removable: only the links go, never their targets.
            model = self._name_of(name)
            key = self._key(model)
        self._resolved = {}
        # Manifest first: a crash in between leaves an unlisted file, never a listed hole.
        if model in self._manifest_entries():
            self._update_manifest(drop=[model])
        path = self._path(key)
        try:
            if self._local and os.path.islink(path):
                os.unlink(path)  # rmtree refuses links; rm must not reach the folder behind one
            else:
                self.fs.rm(path, recursive=self.layout == "triton")
        except FileNotFoundError:
            pass
        self._computed.pop(key, None)

    # --- reading --------------------------------------------------------------------------

    def fetch(
        self,
        name_or_target: str,
        dest: PathLike,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_members: int = DEFAULT_MAX_MEMBERS,
    ) -> Path:
        """Copy a model out of storage into a new folder under ``dest`` and return that folder.

        The folder holds the artifact files (a SageMaker archive is safely extracted). The
        sha256 is checked when the manifest has it. Raises ModelNotFoundError, or
        CorruptArtifactError naming the model: checksum mismatch, unreadable or unsafe archive.
        """
        return self.fetch_counted(name_or_target, dest, max_bytes=max_bytes, max_members=max_members)[0]

    def fetch_counted(
        self,
        name_or_target: str,
        dest: PathLike,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_members: int = DEFAULT_MAX_MEMBERS,
    ) -> tuple[Path, int]:
        """:meth:`fetch`, also returning the bytes of the files written (no second walk)."""
        entry = self.get(name_or_target)
        path = self._path(entry.key)
        base = Path(dest)
        # The prefix is for people reading the cache; bounded so a long name stays a valid file name.
        prefix = entry.name.replace("/", "_").encode()[:100].decode(errors="ignore") + "-"
        try:
            folder = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
        except FileNotFoundError:  # the first fetch into ``dest``: make it (once, not per fetch)
            base.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
        try:
            if self.layout == "sagemaker":
                written = self._fetch_archive(entry, path, folder, max_bytes=max_bytes, max_members=max_members)
            else:
                written = self._fetch_folder(entry, path, folder, max_bytes=max_bytes, max_members=max_members)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return folder, written

    def _missing(self, entry: ModelEntry) -> ModelNotFoundError:
        return ModelNotFoundError(
            f"Model {entry.name!r} is listed in the manifest of {self.url!r} but its artifact "
            f"{entry.key!r} is missing"
        )

    def _fetch_archive(
        self, entry: ModelEntry, path: str, folder: Path, *, max_bytes: int, max_members: int
    ) -> int:
        try:
            if self._local and _SAFE_OPEN:
                fh = self._open_local(entry.name, path)
            else:
                self._guard(entry.name, [path])
                fh = self._open_read(path)
        except FileNotFoundError as exc:
            raise self._missing(entry) from exc
        written = 0
        with fh:
            reader = _HashingReader(fh)
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
            raise CorruptArtifactError(
                f"Model {entry.name!r}: sha256 mismatch (manifest {entry.sha256}, stored {digest})"
            ) from failure
        if isinstance(failure, UnsafeArchiveError):
            raise CorruptArtifactError(f"Model {entry.name!r}: unsafe archive: {failure}") from failure
        if failure is not None:
            if str(failure).startswith(f"Model {entry.name!r}"):
                raise failure
            raise CorruptArtifactError(f"Model {entry.name!r}: {failure}") from failure
        return written

    def _fetch_folder(
        self, entry: ModelEntry, path: str, folder: Path, *, max_bytes: int, max_members: int
    ) -> int:
        from mmeperf.repository.archive import member_parts

        files = sorted(self._find(path))
        if not files:
            raise self._missing(entry)
        if len(files) > max_members:
            raise CorruptArtifactError(f"Model {entry.name!r} has more than {max_members} files")
        self._guard(entry.name, files)
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
            with self._open_read(remote) as src, open(target, "xb") as out:
                while chunk := src.read(_CHUNK):
                    total += len(chunk)
                    if total > max_bytes:
                        raise CorruptArtifactError(
                            f"Model {entry.name!r} is larger than the limit of {max_bytes} bytes"
                        )
                    sha.update(chunk)
                    out.write(chunk)
            hashes[rel] = sha.hexdigest()
        digest = _folder_digest(hashes)
        if entry.sha256 is not None and digest != entry.sha256:
            raise CorruptArtifactError(
                f"Model {entry.name!r}: sha256 mismatch (manifest {entry.sha256}, stored {digest})"
            )
        return total

    def detect_backend(self, directory: PathLike, *, entry: ModelEntry | None = None) -> str | None:
        """The backend of an unpacked model: the entry's recorded backend, else detected by files."""
        return detect_backend(directory, hint=entry.backend if entry is not None else None)

    # --- verification ---------------------------------------------------------------------

    def verify(self, *, update_manifest: bool = False) -> VerifyReport:
        """Check every model; the report names each corrupt, missing or unreadable artifact.

        Models without a recorded sha256 get one computed (shown by ``list`` afterwards);
        ``update_manifest=True`` also writes them into the manifest.
        """
        self.refresh()
        problems: dict[str, str] = {}
        adopted: builtins.list[ModelEntry] = []
        entries = self.list()
        recorded = self._manifest_entries()
        for entry in entries:
            reason, size, digest = self._check(entry)
            if reason is not None:
                problems[entry.name] = reason
                continue
            if entry.name not in recorded and digest is not None:
                self._computed[entry.key] = (size, digest)
                adopted.append(entry.model_copy(update={"sha256": digest, "bytes": size}))
        if update_manifest and adopted:
            self._update_manifest(put=adopted)
        return VerifyReport(checked=len(entries), problems=problems)

    def _check(self, entry: ModelEntry) -> tuple[str | None, int, str | None]:
        """(problem or None, stored bytes, sha256) of one model."""
        path = self._path(entry.key)
        if self.layout == "sagemaker":
            try:
                self._guard(entry.name, [path])
            except CorruptArtifactError as exc:
                return str(exc), 0, None
            try:
                fh = self._open_read(path)
            except FileNotFoundError:
                return "missing", 0, None
            with fh:
                reader = _HashingReader(fh)
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
        try:
            hashes = self._remote_file_hashes(entry.name, path)
        except FileNotFoundError:
            return "missing", 0, None
        except CorruptArtifactError as exc:  # a link or a file outside the repository folder
            return str(exc), 0, None
        if not hashes:
            return "missing", 0, None
        digest = _folder_digest(hashes)
        size = sum(int(info.get("size") or 0) for info in self._find(path).values())
        if entry.sha256 is not None and digest != entry.sha256:
            return "sha256 mismatch", size, digest
        return None, size, digest
