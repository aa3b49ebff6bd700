"""Reading and writing model files in a local repository folder without following links.

Stored artifacts are untrusted: a link ``m/1/model.onnx -> /etc/passwd`` must not copy any file
this process can read into the cache. Files open segment by segment from folder descriptors,
links and special files are refused (CorruptArtifactError naming the model), writes are atomic.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from mmeperf.errors import CorruptArtifactError

__all__ = [
    "SAFE_OPEN",
    "atomic_copy",
    "atomic_write_bytes",
    "file_info",
    "open_nofollow",
    "open_under_root",
    "partial_name",
    "refuse_unsafe",
    "walk",
]

_O_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY: int = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC: int = getattr(os, "O_CLOEXEC", 0)
_LINK = "is or passes through a symbolic link"
_NOT_REGULAR = "is not a regular file"
#: Whether files open segment by segment from descriptors without following links
#: (:func:`open_under_root`); elsewhere (Windows) :func:`refuse_unsafe`'s realpath check runs first.
SAFE_OPEN = bool(_O_NOFOLLOW and _O_DIRECTORY) and os.open in os.supports_dir_fd and hasattr(os, "O_NONBLOCK")


def _refused(name: str, shown: str, why: str, root: str) -> CorruptArtifactError:
    return CorruptArtifactError(
        f"Model {name!r}: {shown!r} {why}; refused (artifacts must be regular files "
        f"inside the repository folder {root!r})"
    )


def file_info(path: str, st: os.stat_result) -> dict[str, Any]:
    """An fsspec-style info dict for a local path from its ``lstat``."""
    kind = "file" if stat.S_ISREG(st.st_mode) else "other"
    return {"name": path, "size": st.st_size, "type": kind, "mtime": st.st_mtime,
            "islink": stat.S_ISLNK(st.st_mode)}


def walk(top: str) -> dict[str, dict[str, Any]]:
    """Every file under ``top`` with its info, like fsspec's ``find(detail=True)``.

    The walk follows no link (fsspec's does: a model folder holding ``1 -> /`` would walk the
    machine); links and special files are listed, not entered, so :func:`refuse_unsafe` can
    name them.
    """
    out: dict[str, dict[str, Any]] = {}
    top = top.rstrip("/") or top
    try:
        st = os.lstat(top)
    except FileNotFoundError:
        return out
    if not stat.S_ISDIR(st.st_mode):
        out[top] = file_info(top, st)
        return out
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        # os.walk sorts links to folders into dirnames but never enters them: list them.
        for name in [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))] + filenames:
            full = os.path.join(dirpath, name)
            try:
                out[full] = file_info(full, os.lstat(full))
            except FileNotFoundError:
                continue  # removed while we walked
    return out


def refuse_unsafe(root: str, name: str, paths: Iterable[str]) -> None:
    """Refuse model ``name`` when one of its files is a link, a special file or outside ``root``.

    Raises CorruptArtifactError naming the model; missing files pass (whoever reads them reports
    them missing).
    """
    root_real = os.path.realpath(root)
    prefix = root.rstrip("/") + "/"
    for path in paths:
        rel = path[len(prefix):] if path.startswith(prefix) else None
        why: str | None = None
        if rel is None:
            why = "lies outside the repository folder"
        else:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            # realpath differs from root/rel exactly when a link sits on any segment of the way.
            if os.path.realpath(path) != os.path.join(root_real, rel):
                why = _LINK
            elif not stat.S_ISREG(st.st_mode):
                why = _NOT_REGULAR
        if why is not None:
            raise _refused(name, rel if rel is not None else path, why, root)


def open_under_root(root: str, name: str, path: str) -> IO[bytes]:
    """Open a file under ``root`` as :func:`refuse_unsafe` then :func:`open_nofollow` would, in
    one race-free pass: each segment below the root is opened from its parent's descriptor
    without following links, and the file is checked regular on the open descriptor.

    Needs :data:`SAFE_OPEN`. Raises CorruptArtifactError naming the model (a link on the way,
    not a regular file, or outside the root) and FileNotFoundError when it is missing.
    """
    prefix = root.rstrip("/") + "/"
    rel = path[len(prefix):] if path.startswith(prefix) else None
    if not rel:
        raise CorruptArtifactError(f"Model {name!r}: {path!r} lies outside the repository folder; refused")
    parts = rel.split("/")
    why: str | None = None
    # The root itself may be reached through links (as its realpath is in refuse_unsafe).
    fd = os.open(root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                why = _LINK
                break
            os.close(fd)
            fd = nxt
        if why is None:
            # Special files are refused before any open (opening a device can act on it);
            # the open below still checks the descriptor, in case of a swap in between.
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                why = _LINK
            elif not stat.S_ISREG(st.st_mode):
                why = _NOT_REGULAR
        if why is None:
            try:
                # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
                file_fd = os.open(
                    parts[-1], os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | os.O_NONBLOCK, dir_fd=fd
                )
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EOPNOTSUPP):
                    raise
                why = _LINK if exc.errno == errno.ELOOP else _NOT_REGULAR
            else:
                if stat.S_ISREG(os.fstat(file_fd).st_mode):
                    return os.fdopen(file_fd, "rb")
                os.close(file_fd)
                why = _NOT_REGULAR
    finally:
        os.close(fd)
    raise _refused(name, rel, why, root)


def open_nofollow(path: str) -> IO[bytes]:
    """Open a local file for reading, refusing it (CorruptArtifactError) when it is a link."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CorruptArtifactError(f"{path!r} is a symbolic link; refused") from exc
        raise
    return os.fdopen(fd, "rb")


def partial_name(target: Path) -> Path:
    """A hidden temporary name beside ``target``, short enough for any name a model may have."""
    return target.with_name(f".{target.name[:64]}.partial-{os.getpid()}-{threading.get_ident()}")


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Write ``data`` beside ``target``, then rename it into place (readers never see half)."""
    tmp = partial_name(target)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_copy(source: Path, target: Path) -> None:
    """Copy ``source`` beside ``target``, then rename it into place."""
    tmp = partial_name(target)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
