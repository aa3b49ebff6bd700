"""Checksums of stored artifacts: sha256 of a file, of a stream as it is read, of a model folder.

A SageMaker artifact's digest is its archive's sha256; a Triton model folder's is the sha256 of
its ``sha256sum``-style listing (:func:`folder_digest`), so both fit one manifest field.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO

__all__ = ["CHUNK", "HashingReader", "file_sha256", "folder_digest", "stream_sha256"]

#: Bytes read at a time when hashing or copying.
CHUNK = 1 << 20


class HashingReader:
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
        while self.read(CHUNK):
            pass
        return self.sha.hexdigest()


def stream_sha256(fh: IO[bytes]) -> str:
    """The sha256 of what is left to read in ``fh``."""
    sha = hashlib.sha256()
    while chunk := fh.read(CHUNK):
        sha.update(chunk)
    return sha.hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 of a local file."""
    with open(path, "rb") as fh:
        return stream_sha256(fh)


def folder_digest(file_hashes: dict[str, str]) -> str:
    """Digest of a folder: sha256 of its ``sha256sum``-style listing, sorted by relative path."""
    listing = "".join(f"{digest}  {rel}\n" for rel, digest in sorted(file_hashes.items()))
    return hashlib.sha256(listing.encode()).hexdigest()
