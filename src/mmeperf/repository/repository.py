"""ModelRepository: named model artifacts in any fsspec storage, in a layout a server understands.

The layout (:mod:`~mmeperf.repository.layouts`: SageMaker MME archives or Triton folders) says
where each model lives and how it is written and read; storage I/O is
:mod:`~mmeperf.repository.storage`'s. A manifest beside the models records backend, size and
sha256; repositories written by other tools open and list without one.
"""

from __future__ import annotations

import builtins
import errno
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mmeperf._types import Layout as LayoutName
from mmeperf._types import PathLike
from mmeperf.errors import (
    ConfigurationError,
    CorruptArtifactError,
    InvalidModelNameError,
    ModelExistsError,
    ModelNotFoundError,
    RepositoryError,
    UnknownPluginError,
)
from mmeperf.repository.archive import DEFAULT_MAX_BYTES, DEFAULT_MAX_MEMBERS, safe_extract
from mmeperf.repository.detect import detect_backend
from mmeperf.repository.layouts import Layout, layout_for
from mmeperf.repository.manifest import MANIFEST_NAME, Manifest, ModelEntry, VerifyReport
from mmeperf.repository.storage import Storage, open_fs

__all__ = ["ModelRepository"]

# Errors of a path the caller's name made unusable (too long, not encodable): a 400, not ours.
_NAME_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ})
# Checked names get() remembers (a bound: clients may send any number of distinct spellings).
_MAX_RESOLVED = 8192


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
        layout: LayoutName | Layout = "sagemaker",
        storage_options: dict[str, Any] | None = None,
        create: bool = True,
    ) -> None:
        #: The layout's strategy: where models live and how they are written and read.
        self.layout_strategy: Layout = layout_for(layout)
        self.url: str = os.fspath(url)
        #: The layout's name, ``"sagemaker"`` or ``"triton"``.
        self.layout: LayoutName = self.layout_strategy.name
        self.fs, path = open_fs(self.url, dict(storage_options or {}))
        self.root: str = path.rstrip("/") or path
        self._store = Storage(self.url, self.fs, self.root)
        self._local = self._store.local
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
        return self.layout_strategy.name_of(name_or_target)

    def _key(self, name: str) -> str:
        return self.layout_strategy.key(name)

    def _target(self, name: str) -> str:
        return self.layout_strategy.target(name)

    def _path(self, key: str) -> str:
        return self._store.path(key)

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
            self._store.write_bytes(self.manifest_path, updated.to_bytes())
            self._set_manifest(updated)

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
        # fsspec caches listings (s3fs does); another writer's uploads must show up here.
        self.fs.invalidate_cache(self.root)
        return {
            found.name: self._foreign(found.name, found.key, found.bytes, found.created)
            for found in self.layout_strategy.scan(self._store)
        }

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
            found = self.layout_strategy.probe(self._store, name, path, info)
        except FileNotFoundError:
            return None
        except OSError as exc:
            # Checked names can still make a path the OS refuses (a deep root plus a long name).
            if exc.errno in _NAME_ERRNOS:
                raise InvalidModelNameError(
                    f"Invalid model name {name[:80]!r}: storage refuses its path ({exc.strerror})"
                ) from exc
            raise RepositoryError(f"Model {name!r}: cannot read {path!r} ({exc})") from exc
        if found is None:
            return None
        size, created = found
        return self._foreign(name, self._key(name), size, created)

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
        self.layout_strategy.check_add_options(arcname_prefix)

        with tempfile.TemporaryDirectory(prefix="mmeperf-add-") as tmp_dir:
            tmp = Path(tmp_dir)
            folder = src
            if is_archive:
                # Unpacked once: proves the archive safe and lets the backend be detected.
                folder = tmp / "unpacked"
                safe_extract(src, folder)
                folder = self.layout_strategy.unpacked_model(folder, name)
            backend = detect_backend(folder, hint=backend)
            size, sha = self.layout_strategy.write_model(
                self._store, folder, path, archive=src if is_archive else None, scratch=tmp,
                arcname_prefix=arcname_prefix, overwrite=overwrite,
            )
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
        copier = self.layout_strategy.copier(self._store, src, self._path(src.key))
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
            if copy_name in self:
                existing = self.get(copy_name)
                if copier.reuses(existing):
                    out.append(existing)
                    continue
                if not overwrite:
                    raise ModelExistsError(
                        f"Model {copy_name!r} already exists in {self.url!r} and differs from "
                        f"{src.name!r}; pass overwrite=True to replace it"
                    )
            sha = copier.copy(copy_name, self._path(key))
            entry = ModelEntry(
                name=copy_name, target=self._target(copy_name), key=key, backend=src.backend,
                bytes=src.bytes, sha256=sha, created=datetime.now(UTC),
            )
            new_entries.append(entry)
            out.append(entry)
        if new_entries:
            self._update_manifest(put=new_entries)
        return out

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
                self.fs.rm(path, recursive=self.layout_strategy.folders)
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
            written = self.layout_strategy.fetch(
                self._store, entry, path, folder, max_bytes=max_bytes, max_members=max_members
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return folder, written

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
            reason, size, digest = self.layout_strategy.check(self._store, entry, self._path(entry.key))
            if reason is not None:
                problems[entry.name] = reason
                continue
            if entry.name not in recorded and digest is not None:
                self._computed[entry.key] = (size, digest)
                adopted.append(entry.model_copy(update={"sha256": digest, "bytes": size}))
        if update_manifest and adopted:
            self._update_manifest(put=adopted)
        return VerifyReport(checked=len(entries), problems=problems)
