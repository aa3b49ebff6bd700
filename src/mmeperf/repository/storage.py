"""The storage under a repository: an fsspec file system and a root, with safe local I/O.

:class:`Storage` is what the layouts read and write through. On a local folder every read goes
through :mod:`mmeperf.repository.safeio` (no link is followed, writes are atomic); elsewhere
(S3, memory://) it is plain fsspec.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from mmeperf.errors import ConfigurationError, MissingDependencyError, RepositoryError
from mmeperf.repository import safeio
from mmeperf.repository.names import key_under_root

__all__ = ["Storage", "info_created", "open_fs"]


def open_fs(url: str, storage_options: dict[str, Any]) -> tuple[Any, str]:
    """The fsspec file system and path for ``url`` (a local path or an fsspec URL)."""
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


def info_created(info: dict[str, Any]) -> datetime | None:
    """When a stored file was written, from an fsspec info dict (S3, local or memory)."""
    for key in ("LastModified", "mtime", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
    return None


class Storage:
    """Files under ``root`` in ``fs``; ``url`` is what error messages show."""

    def __init__(self, url: str, fs: Any, root: str) -> None:
        from fsspec.implementations.local import LocalFileSystem

        self.url, self.fs, self.root = url, fs, root
        #: Whether ``root`` is a folder on this machine (reads then never follow links).
        self.local: bool = isinstance(fs, LocalFileSystem)

    def path(self, key: str) -> str:
        """The full path of a key under the root (keys never escape it)."""
        return key_under_root(self.root, key).rstrip("/")

    def rel(self, path: str) -> str | None:
        """``path`` relative to the root, or None when it lies outside."""
        path = self.fs._strip_protocol(path) if "://" in path else path
        prefix = self.root.rstrip("/") + "/"
        return path[len(prefix):] if path.startswith(prefix) else None

    def find(self, path: str) -> dict[str, dict[str, Any]]:
        """Every file under ``path`` with its info; locally without entering links."""
        if not self.local:
            found: dict[str, dict[str, Any]] = self.fs.find(path, detail=True)
            return found
        return safeio.walk(path)

    def guard(self, name: str, paths: Iterable[str]) -> None:
        """On local storage, refuse model ``name`` when a file is a link, special or outside root."""
        if self.local:
            safeio.refuse_unsafe(self.root, name, paths)

    def open_read(self, path: str) -> IO[bytes]:
        """Open a stored file; locally without following a link swapped in after :meth:`guard`."""
        if not self.local:
            fh: IO[bytes] = self.fs.open(path, "rb")
            return fh
        return safeio.open_nofollow(path)

    def open_checked(self, name: str, path: str) -> IO[bytes]:
        """:meth:`guard` then :meth:`open_read`, race-free where the OS allows (one pass)."""
        if self.local and safeio.SAFE_OPEN:
            return safeio.open_under_root(self.root, name, path)
        self.guard(name, [path])
        return self.open_read(path)

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write one file; on local storage atomically."""
        if self.local:
            safeio.atomic_write_bytes(Path(path), data)
        else:
            self.fs.pipe_file(path, data)

    def put_file(self, local: Path, path: str) -> None:
        """Upload one file; on local storage atomically (copy beside, then rename)."""
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        if self.local:
            safeio.atomic_copy(local, Path(path))
        else:
            self.fs.put_file(str(local), path)
