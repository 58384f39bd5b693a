"""Where encrypted recordings live: a small `BlobStore` protocol and the local-disk store.

A store hands out a raw binary writer (the age encryptor writes ciphertext chunks to it as
they are sealed) and reads blobs back, whole or by byte range (playback reads only the age
chunks a request needs: recording/ageseek.py). An S3-like store would implement `create`
with a multipart upload; `LocalBlobStore` writes DATA_DIR/recordings/<tenant>/<id>.age.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO, Protocol

_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}/[A-Za-z0-9_.-]{1,128}$")


class BlobStore(Protocol):
    def create(self, key: str) -> BinaryIO:
        """A new blob opened for writing; each `write` reaches the store before it returns."""

    def read(self, key: str) -> bytes: ...

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """`length` bytes of the blob from `offset` (both >= 0, else ValueError); fewer only
        where the blob ends (none from or past its end). FileNotFoundError when there is no
        such blob. Blocking; callers on the event loop run it in a thread."""

    def size(self, key: str) -> int:
        """The blob's size in bytes; FileNotFoundError when there is no such blob."""

    def delete(self, key: str) -> None: ...


class SyncingFile:
    """An unbuffered file that fsyncs after every write (age writes one 64 KiB chunk at a time)."""

    def __init__(self, path: Path) -> None:
        self._f = open(path, "xb", buffering=0)  # noqa: SIM115 - closed by close()

    def write(self, data: bytes) -> int:
        n = self._f.write(data)
        os.fsync(self._f.fileno())
        return n or 0

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._f.close()


class LocalBlobStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not _KEY_RE.match(key) or ".." in key:
            raise ValueError(f"bad blob key {key!r}")
        return self.root / key

    def create(self, key: str) -> BinaryIO:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return SyncingFile(path)  # type: ignore[return-value]

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError(f"bad range {offset}+{length}")
        with open(self._path(key), "rb") as f:
            f.seek(offset)
            return f.read(length)

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
