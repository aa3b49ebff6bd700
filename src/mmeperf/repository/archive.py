"""Deterministic packing and safe unpacking of model archives (``model.tar.gz``).

Artifacts are untrusted: :func:`safe_extract` refuses escaping paths, links, devices and archives
over a size or member limit, counting bytes as they stream, and leaves nothing behind on refusal.
"""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from mmeperf._types import PathLike
from mmeperf.errors import (
    ArchiveTooLargeError,
    ConfigurationError,
    CorruptArtifactError,
    UnsafeArchiveError,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_MEMBERS",
    "ArchiveSummary",
    "Readable",
    "artifact_files",
    "check_archive",
    "member_parts",
    "pack",
    "safe_extract",
]

#: Largest total uncompressed size safe_extract accepts by default (the largest GPU models,
#: TensorRT plans of ViT-L and friends, are a few GiB; a bomb is far bigger).
DEFAULT_MAX_BYTES = 32 * 2**30
#: Most members an archive may hold by default (a model is a handful of files).
DEFAULT_MAX_MEMBERS = 10_000
_CHUNK = 1 << 20
# Bytes of tar headers, pax records and padding allowed on top of the members' data.
_HEADER_SLACK_PER_MEMBER = 4096
_HEADER_SLACK = 1 << 20
# Longest member path segment, in bytes: what a file system takes as one file name.
_MAX_SEGMENT_BYTES = 255
# Write errors that are the machine's, not the archive's: they stay OSError.
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE})
# Where the standard library's data filter pretends to extract: a fixed path that does not
# exist, so its checks are lexical and cost two short realpath calls, never the destination's.
_FILTER_ROOT = os.path.join(os.path.abspath(os.sep), ".mmeperf-archive-check")
_O_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY: int = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC: int = getattr(os, "O_CLOEXEC", 0)
# Extraction relative to open folder descriptors, never following a link on any segment: race
# free, and one system call per file. Where the OS lacks it (Windows), paths are checked instead.
_DIR_FD = bool(_O_NOFOLLOW and _O_DIRECTORY) and os.open in os.supports_dir_fd and os.mkdir in os.supports_dir_fd
# Folder descriptors kept open while extracting one archive (more are reopened as needed).
_MAX_OPEN_DIRS = 32


class Readable(Protocol):
    """A binary stream: anything with ``read(size)`` (files, fsspec files, wrappers)."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ArchiveSummary:
    """What an archive holds: its regular files (relative POSIX paths) and their total bytes."""

    files: tuple[str, ...]
    bytes: int

    @property
    def members(self) -> int:
        """Number of regular files."""
        return len(self.files)


class _PrefixedReader:
    """Gives back bytes peeked from a stream before reading on from the stream itself."""

    def __init__(self, prefix: bytes, rest: Readable) -> None:
        self._prefix, self._rest = prefix, rest

    def read(self, size: int = -1, /) -> bytes:
        if not self._prefix:
            return self._rest.read(size)
        if size is None or size < 0:
            out, self._prefix = self._prefix + self._rest.read(), b""
            return out
        out, self._prefix = self._prefix[:size], self._prefix[size:]
        if len(out) < size:
            out += self._rest.read(size - len(out))
        return out


class _LimitedReader:
    """Counts the decompressed bytes tarfile consumes and stops a bomb before it lands.

    Header sizes alone cannot be trusted (a pax header can announce gigabytes that tarfile then
    reads into memory), so the limit applies to the stream itself.
    """

    def __init__(self, inner: Readable, limit: int) -> None:
        self._inner, self._limit, self.consumed = inner, limit, 0

    def read(self, size: int = -1, /) -> bytes:
        want = self._limit + 1 - self.consumed if size is None or size < 0 else min(size, self._limit + 1 - self.consumed)
        data = self._inner.read(max(want, 0)) if want > 0 else b""
        self.consumed += len(data)
        if self.consumed > self._limit:
            raise ArchiveTooLargeError(
                f"Archive expands beyond its limit of {self._limit} bytes of tar data; refused"
            )
        return data


def member_parts(name: str) -> list[str]:
    """The path segments of a member name, or UnsafeArchiveError when it could escape."""
    if "\x00" in name or "\\" in name:
        raise UnsafeArchiveError(f"Archive member {name!r} has a NUL or backslash in its name")
    if name.startswith("/") or (len(name) >= 2 and name[1] == ":" and name[0].isalpha()):
        raise UnsafeArchiveError(f"Archive member {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"Archive member {name!r} has a '..' segment that escapes the folder")
    return parts


def _kind(member: tarfile.TarInfo) -> str | None:
    """Why a member's type is refused, or None for regular files and directories."""
    if member.issym():
        return f"a symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"a hard link (to {member.linkname!r})"
    if member.ischr() or member.isblk():
        return "a device"
    if member.isfifo():
        return "a FIFO"
    if member.issparse():
        return "a sparse file"
    if member.isreg() or member.isdir():
        return None
    return f"of unsupported type {member.type!r}"


def _walk(
    source: PathLike | Readable,
    *,
    max_bytes: int,
    max_members: int,
    on_dir: Callable[[list[str]], None] | None,
    on_file: Callable[[list[str], tarfile.TarInfo, Readable], int] | None,
) -> ArchiveSummary:
    """Stream every member through the checks, handing accepted ones to the callbacks."""
    if max_bytes < 0 or max_members < 0:
        raise ConfigurationError(
            f"Expected non-negative limits, received max_bytes={max_bytes}, max_members={max_members}"
        )
    own_file: IO[bytes] | None = None
    raw: Readable
    if isinstance(source, str | os.PathLike):
        try:
            own_file = open(source, "rb")
        except FileNotFoundError as exc:
            raise CorruptArtifactError(f"Archive {os.fspath(source)!r} does not exist") from exc
        raw = own_file
    else:
        raw = source
    try:
        magic = raw.read(2)
        stream: Readable = _PrefixedReader(magic, raw)
        if magic == b"\x1f\x8b":
            stream = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[call-overload]
        limit = max_bytes + _HEADER_SLACK + _HEADER_SLACK_PER_MEMBER * max_members
        limited = _LimitedReader(stream, limit)
        files: list[str] = []
        seen: set[str] = set()
        # Folders the members imply ("a" for "a/b"): a file may not take one's name, nor sit
        # under a file seen before; both would make extraction fail half-way.
        folders: set[str] = set()
        total = 0
        try:
            with tarfile.open(fileobj=limited, mode="r|") as tf:  # type: ignore[call-overload]
                count = 0
                for member in tf:
                    count += 1
                    if count > max_members:
                        raise UnsafeArchiveError(f"Archive has more than {max_members} members; refused")
                    parts = member_parts(member.name)
                    why = _kind(member)
                    if why is not None:
                        raise UnsafeArchiveError(f"Archive member {member.name!r} is {why}; refused")
                    if not parts:
                        if member.isdir():
                            continue  # "./" itself
                        raise UnsafeArchiveError(f"Archive member {member.name!r} has no file name")
                    # Second line of defence: the standard library's own rules for data archives
                    # (the writers below never follow a link, so the root it checks against
                    # need not be the real destination).
                    try:
                        tarfile.data_filter(member, _FILTER_ROOT)
                    except tarfile.FilterError as exc:
                        raise UnsafeArchiveError(
                            f"Archive member {member.name!r} refused: {exc}"
                        ) from exc
                    rel = "/".join(parts)
                    _check_layout(rel, parts, is_dir=member.isdir(), files=seen, folders=folders)
                    if member.isdir():
                        folders.add(rel)
                        if on_dir is not None:
                            on_dir(parts)
                        continue
                    seen.add(rel)
                    if total + member.size > max_bytes:
                        raise ArchiveTooLargeError(
                            f"Archive expands beyond its limit of {max_bytes} bytes "
                            f"(member {rel!r} alone declares {member.size}); refused"
                        )
                    data = tf.extractfile(member)
                    if data is None:  # pragma: no cover - regular files always have data
                        raise CorruptArtifactError(f"Archive member {rel!r} has no data")
                    counted = _CountingReader(data, max_bytes - total, rel)
                    if on_file is not None:
                        on_file(parts, member, counted)
                    # Drain what the callback left so the count covers every byte.
                    while counted.read(_CHUNK):
                        pass
                    total += counted.count
                    files.append(rel)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise CorruptArtifactError(f"unreadable archive: {exc}") from exc
        return ArchiveSummary(files=tuple(files), bytes=total)
    finally:
        if own_file is not None:
            own_file.close()


def _check_layout(
    rel: str, parts: list[str], *, is_dir: bool, files: set[str], folders: set[str]
) -> None:
    """Refuse a member that cannot coexist with those before it on a file system."""
    for part in parts:
        if len(part.encode("utf-8", "surrogateescape")) > _MAX_SEGMENT_BYTES:
            raise UnsafeArchiveError(
                f"Archive member {rel[:80]!r} has a path segment over {_MAX_SEGMENT_BYTES} bytes; refused"
            )
    for depth in range(1, len(parts)):
        parent = "/".join(parts[:depth])
        if parent in files:
            raise UnsafeArchiveError(
                f"Archive member {rel!r} lies under {parent!r}, which is a file in the archive; refused"
            )
        folders.add(parent)
    if rel in files:
        what = "is both a file and a folder" if is_dir else "appears twice"
        raise UnsafeArchiveError(f"Archive member {rel!r} {what}; refused")
    if not is_dir and rel in folders:
        raise UnsafeArchiveError(f"Archive member {rel!r} is both a folder and a file; refused")


class _CountingReader:
    """Reads one member's data, refusing once more than ``budget`` bytes have come out."""

    def __init__(self, inner: Readable, budget: int, name: str) -> None:
        self._inner, self._budget, self._name, self.count = inner, budget, name, 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._inner.read(size)
        self.count += len(data)
        if self.count > self._budget:
            raise ArchiveTooLargeError(
                f"Archive expands beyond its size limit while reading member {self._name!r}; refused"
            )
        return data


def check_archive(
    source: PathLike | Readable,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> ArchiveSummary:
    """Read an archive through every safety check without writing anything.

    Raises UnsafeArchiveError (escaping path, link, device, too big) or CorruptArtifactError
    (not a readable tar or tar.gz).
    """
    return _walk(
        source,
        max_bytes=max_bytes,
        max_members=max_members,
        on_dir=None,
        on_file=None,
    )


def _path_max() -> int:
    """The longest path, in bytes, the OS opens by name (PATH_MAX; 4096 where it cannot say)."""
    global _PATH_MAX
    if _PATH_MAX is None:
        try:
            _PATH_MAX = int(os.pathconf("/", "PC_PATH_MAX"))
        except (OSError, ValueError, AttributeError):
            _PATH_MAX = 4096
    return _PATH_MAX


_PATH_MAX: int | None = None


def _file_mode(member: tarfile.TarInfo) -> int:
    """Permissions of an extracted file: executable for everyone or for no one, never writable by others."""
    return 0o755 if member.mode & stat.S_IXUSR else 0o644


class _FolderTree:
    """Folders under one extraction root, each opened relative to its parent, never via a link.

    Every segment is created with ``mkdir(dir_fd=)`` and opened ``O_NOFOLLOW | O_DIRECTORY``
    from its parent's descriptor: a link planted anywhere below the root (by a racing process)
    makes the open fail instead of leading the write elsewhere. A few descriptors stay open.
    """

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self._fds: dict[str, int] = {}

    def folder(self, parts: list[str]) -> int:
        """The descriptor of the folder ``parts`` (created as needed; [] is the root)."""
        if not parts:
            return self.root_fd
        key = "/".join(parts)
        fd = self._fds.get(key)
        if fd is not None:
            return fd
        if len(self._fds) >= _MAX_OPEN_DIRS:
            self.close()
        # Start from the deepest folder already open, then create and open the rest in turn.
        depth, cur = 0, self.root_fd
        for d in range(len(parts) - 1, 0, -1):
            held = self._fds.get("/".join(parts[:d]))
            if held is not None:
                depth, cur = d, held
                break
        owned = False  # whether ``cur`` is an intermediate descriptor this call must close
        try:
            for part in parts[depth:]:
                try:
                    os.mkdir(part, 0o755, dir_fd=cur)
                except FileExistsError:
                    pass  # made for an earlier member (a file or link of that name fails below)
                nxt = os.open(part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=cur)
                if owned:
                    os.close(cur)
                cur, owned = nxt, True
        except BaseException:
            if owned:
                os.close(cur)
            raise
        self._fds[key] = cur
        return cur

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def safe_extract(
    source: PathLike | Readable,
    dest: PathLike,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
    fresh: bool = False,
) -> ArchiveSummary:
    """Extract a tar or tar.gz (path or binary stream) into ``dest``, which must be new or empty.

    Only regular files and directories are written, never outside ``dest``: every folder and
    file is created relative to its parent's open descriptor without following links (where the
    OS offers it; elsewhere each target's resolved folder is checked). Refused with
    UnsafeArchiveError: members with ``..`` or absolute paths, symbolic and hard links, devices,
    FIFOs, duplicates, more than ``max_members`` members, or more than ``max_bytes`` bytes in
    total (counted while streaming). On any error ``dest`` is removed again (emptied when it
    existed before), so a refused archive leaves nothing behind. ``fresh=True``: the caller has
    just created ``dest`` empty (``tempfile.mkdtemp``), so it is not checked for emptiness again
    and is removed on error.
    """
    dest_path = Path(dest)
    if fresh:
        created = True
    else:
        created = not dest_path.exists()
        if not created and (not dest_path.is_dir() or dest_path.is_symlink() or any(dest_path.iterdir())):
            raise ConfigurationError(
                f"Expected a new or empty folder to extract into, received {dest_path} (not empty)"
            )
        dest_path.mkdir(parents=True, exist_ok=True)

    def refused(parts: list[str], exc: OSError) -> UnsafeArchiveError | OSError:
        """The typed error for a write that failed because of what the archive holds."""
        if exc.errno in _DISK_ERRNOS:
            return exc
        return UnsafeArchiveError(f"Archive member {'/'.join(parts)!r} cannot be extracted: {exc.strerror or exc}")

    def write(parts: list[str], member: tarfile.TarInfo, data: Readable, fd: int) -> int:
        written = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := data.read(_CHUNK):
                # Only the write is wrapped: a read error is the source's, not the archive's.
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise refused(parts, exc) from exc
                written += len(chunk)
        return written

    file_flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC | getattr(os, "O_BINARY", 0)
    on_dir: Callable[[list[str]], None]
    on_file: Callable[[list[str], tarfile.TarInfo, Readable], int]
    tree: _FolderTree | None = None
    root = dest_path
    try:
        if _DIR_FD:
            # The destination itself must not be a link either (it is new or was checked empty).
            try:
                root_fd = os.open(dest_path, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC)
            except OSError as exc:
                raise ConfigurationError(f"Cannot extract into {dest_path}: {exc.strerror or exc}") from exc
            tree = _FolderTree(root_fd)
            folders = tree
            # Descriptors reach paths longer than the OS takes by name; nobody could open such a
            # file afterwards (a backend loads by path), so refuse it as a path-based write would.
            room = _path_max() - len(os.fsencode(os.path.abspath(dest_path))) - 1

            def reachable(parts: list[str]) -> None:
                if sum(len(p.encode("utf-8", "surrogateescape")) + 1 for p in parts) > room:
                    raise refused(parts, OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG)))

            def on_dir(parts: list[str]) -> None:
                reachable(parts)
                try:
                    folders.folder(parts)
                except OSError as exc:
                    raise refused(parts, exc) from exc

            def on_file(parts: list[str], member: tarfile.TarInfo, data: Readable) -> int:
                reachable(parts)
                try:
                    parent = folders.folder(parts[:-1])
                    fd = os.open(parts[-1], file_flags, _file_mode(member), dir_fd=parent)
                except FileExistsError as exc:
                    raise UnsafeArchiveError(f"Archive member {'/'.join(parts)!r} collides with a folder") from exc
                except OSError as exc:
                    raise refused(parts, exc) from exc
                return write(parts, member, data, fd)

        else:
            root = dest_path.resolve()

            def target_of(parts: list[str]) -> Path:
                target = root.joinpath(*parts)
                # Every folder on the way was made here, never a link; check anyway before writing.
                if not target.parent.resolve().is_relative_to(root):
                    raise UnsafeArchiveError(f"Archive member {'/'.join(parts)!r} escapes the folder")
                return target

            def on_dir(parts: list[str]) -> None:
                target = target_of(parts)
                if target.exists() and not target.is_dir():
                    raise UnsafeArchiveError(f"Archive member {'/'.join(parts)!r} is both a file and a folder")
                try:
                    target.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise refused(parts, exc) from exc

            def on_file(parts: list[str], member: tarfile.TarInfo, data: Readable) -> int:
                target = target_of(parts)
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(target, file_flags, _file_mode(member))
                except FileExistsError as exc:
                    raise UnsafeArchiveError(f"Archive member {'/'.join(parts)!r} collides with a folder") from exc
                except OSError as exc:
                    raise refused(parts, exc) from exc
                return write(parts, member, data, fd)

        try:
            return _walk(
                source,
                max_bytes=max_bytes,
                max_members=max_members,
                on_dir=on_dir,
                on_file=on_file,
            )
        finally:
            if tree is not None:
                tree.close()
                os.close(tree.root_fd)
    except BaseException:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        else:
            for child in root.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise


def artifact_files(folder: PathLike) -> list[tuple[str, Path]]:
    """The regular files under ``folder`` as sorted (relative POSIX path, path) pairs.

    Raises UnsafeArchiveError for symbolic links and special files (they would smuggle content
    from outside the folder into an artifact), ConfigurationError for an empty or missing folder.
    """
    src = Path(folder)
    if not src.is_dir():
        raise ConfigurationError(f"Expected a folder of artifact files, received {src}")
    entries: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(src):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path.is_symlink():
                raise UnsafeArchiveError(f"Refusing to pack the symbolic link {path}")
            if name in filenames and not path.is_file():
                raise UnsafeArchiveError(f"Refusing to pack {path}: not a regular file")
        entries.extend((Path(dirpath, f).relative_to(src).as_posix(), Path(dirpath, f)) for f in filenames)
    if not entries:
        raise ConfigurationError(f"Expected artifact files in {src}, found none")
    entries.sort()
    return entries


def pack(folder: PathLike, tar_path: PathLike, *, arcname_prefix: str | None = None) -> ArchiveSummary:
    """Pack the files under ``folder`` into a gzip tar at ``tar_path``, byte-for-byte reproducibly.

    Members are the files' paths relative to ``folder`` (at the archive root, as SageMaker's
    ``model.tar.gz`` wants), or under ``arcname_prefix/`` (SageMaker's Triton packaging:
    ``<name>/config.pbtxt``, ``<name>/1/model.pt``). Sorted, mtime 0, uid/gid 0, no owner
    names, gzip header without name or time. Symbolic links and special files are refused.
    """
    from mmeperf.repository.names import validate_model_name

    src = Path(folder)
    prefix = ""
    if arcname_prefix:
        prefix = validate_model_name(arcname_prefix.strip("/")) + "/"
    entries = artifact_files(src)
    out = Path(tar_path)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    total = 0
    try:
        with open(tmp, "wb") as raw, gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6
        ) as gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for rel, path in entries:
                info = tarfile.TarInfo(prefix + rel)
                st = path.stat()
                info.size = st.st_size
                info.mtime = 0
                info.mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(path, "rb") as fh:
                    tf.addfile(info, fh)
                total += st.st_size
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return ArchiveSummary(files=tuple(prefix + rel for rel, _ in entries), bytes=total)
