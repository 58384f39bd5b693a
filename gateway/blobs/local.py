"""`LocalBlobs`: blobs as files under one directory (DATA_DIR), the embedded default.

The key is the relative path (`uploads/<tenant>/<id>` → DATA_DIR/uploads/<tenant>/<id>), so
the files written before the blob store existed are found under the same keys. A put writes
a hidden temporary file in the same folder and renames it into place (all or nothing); the
files are fsynced before the rename.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from gateway.blobs import CHUNK, BlobInfo, BlobNotFound, BlobUnavailable, Data, check_key


class LocalBlobs:
    name = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, data: Data, *, content_type: str | None = None) -> int:
        path = self.path(key)
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.part"
        try:
            await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
            f: BinaryIO = await asyncio.to_thread(open, tmp, "wb")
        except OSError as exc:
            raise BlobUnavailable(f"{exc.strerror}") from exc
        size = 0
        try:
            if isinstance(data, bytes):
                size = len(data)
                await asyncio.to_thread(f.write, data)
            else:
                async for chunk in data:
                    size += len(chunk)
                    await asyncio.to_thread(f.write, chunk)
            await asyncio.to_thread(_sync_close, f)
            await asyncio.to_thread(os.replace, tmp, path)
        except BaseException as exc:
            await asyncio.to_thread(f.close)
            with contextlib.suppress(OSError):
                await asyncio.to_thread(os.unlink, tmp)
            if isinstance(exc, OSError):
                raise BlobUnavailable(f"{exc.strerror}") from exc
            raise
        return size

    async def get(self, key: str) -> bytes:
        return await self.read_range(key, 0, -1)

    async def read_range(self, key: str, offset: int, length: int) -> bytes:
        """`length` -1: to the end."""
        return await asyncio.to_thread(_read, self.path(key), offset, length)

    async def stream(self, key: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        path = self.path(key)
        try:
            f: BinaryIO = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        except OSError as exc:
            raise BlobUnavailable(f"{exc.strerror}") from exc
        try:
            await asyncio.to_thread(f.seek, offset)
            left = -1 if length is None else length
            while left != 0:
                chunk = await asyncio.to_thread(f.read, CHUNK if left < 0 else min(CHUNK, left))
                if not chunk:
                    break
                left = left - len(chunk) if left > 0 else left
                yield chunk
        finally:
            await asyncio.to_thread(f.close)

    async def stat(self, key: str) -> BlobInfo | None:
        try:
            st = await asyncio.to_thread(os.stat, self.path(key))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BlobUnavailable(f"{exc.strerror}") from exc
        return BlobInfo(key, st.st_size, st.st_mtime)

    async def delete(self, key: str) -> None:
        """Also removes the folders it leaves empty (up to the root)."""
        try:
            await asyncio.to_thread(_unlink, self.root, self.path(key))
        except OSError as exc:
            raise BlobUnavailable(f"{exc.strerror}") from exc

    async def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        folder, _, _ = prefix.rpartition("/")
        if folder:
            check_key(folder)
        for info in await asyncio.to_thread(_walk, self.root, folder):
            if info.key.startswith(prefix):
                yield info

    async def ping(self) -> None:
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise BlobUnavailable(f"{exc.strerror}") from exc

    async def close(self) -> None:
        pass


def _unlink(root: Path, path: Path) -> None:
    path.unlink(missing_ok=True)
    parent = path.parent
    while parent != root and root in parent.parents:
        try:
            parent.rmdir()
        except OSError:  # not empty (or gone): stop
            return
        parent = parent.parent


def _sync_close(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())
    f.close()


def _read(path: Path, offset: int, length: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(length)
    except FileNotFoundError:
        raise BlobNotFound(path.name) from None
    except OSError as exc:
        raise BlobUnavailable(f"{exc.strerror}") from exc


def _walk(root: Path, folder: str) -> list[BlobInfo]:
    base = root / folder if folder else root
    out: list[BlobInfo] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                out.append(BlobInfo(path.relative_to(root).as_posix(), st.st_size, st.st_mtime))
    return out
