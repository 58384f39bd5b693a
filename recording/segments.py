"""Recordings in the node's blob store (an S3 bucket): one object per ciphertext write.

`SegmentedBlobs` implements `recording.blobs.BlobStore` over an async `gateway.blobs`
store. The age encryptor writes one sealed 64 KiB chunk at a time from its thread; each
write becomes the object `recordings/<tenant>/<id>.age/<seq>` (8 digits) before it returns,
so a crash leaves every chunk written so far, a decryptable prefix, as on local disk. A
recording reads back as its segments 0, 1, … up to the first one missing.

When the store is unreachable, a writer keeps its later segments in a bounded local
`Spool` (DATA_DIR/spool, fsynced files); `Spool.drain` uploads them when the store is back
(the calls feature runs it periodically), so nothing acknowledged is lost. A full spool
fails the write (the recording ends `failed`, the call goes on).

The sync methods are called from worker threads (the encryptor's, `asyncio.to_thread`)
and run the store's coroutines on the event loop given at construction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from gateway.blobs import BlobInfo, BlobNotFound, BlobStore, BlobUnavailable, check_key

log = logging.getLogger(__name__)

T = TypeVar("T")
FOLDER = "recordings"
CALL_TIMEOUT = 120.0  # seconds a thread waits for one store operation on the loop, at most


class SpoolFull(OSError):
    pass


class Spool:
    """Segments waiting for the blob store: files under `root` named by their blob key,
    `max_bytes` in all at most."""

    def __init__(self, root: str | Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self.bytes = sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file()) if self.root.exists() else 0

    def put(self, key: str, data: bytes) -> None:
        """Keep `data` for `key` (fsynced before it returns); `SpoolFull` past `max_bytes`."""
        with self._lock:
            if self.bytes + len(data) > self.max_bytes:
                raise SpoolFull(f"recording spool full ({self.max_bytes} bytes)")
            self.bytes += len(data)
        path = self.root / check_key(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def waiting(self) -> list[Path]:
        if not self.root.exists():
            return []
        return sorted(p for p in self.root.rglob("*") if p.is_file() and not p.name.startswith("."))

    async def drain(self, blobs: BlobStore) -> int:
        """Upload every spooled segment, oldest key first, removing each once stored; stops
        at the first failure (the store is still away). How many were uploaded."""
        n = 0
        for path in await asyncio.to_thread(self.waiting):
            key = path.relative_to(self.root).as_posix()
            data = await asyncio.to_thread(path.read_bytes)
            try:
                await blobs.put(key, data)
            except BlobUnavailable:
                break
            await asyncio.to_thread(path.unlink)
            with self._lock:
                self.bytes -= len(data)
            n += 1
        if n:
            log.info("recording spool: %d segments uploaded, %d bytes still waiting", n, self.bytes)
        return n


class SegmentWriter:
    """The raw writer `create` hands to the encryptor: one segment object per write."""

    def __init__(self, owner: SegmentedBlobs, prefix: str) -> None:
        self.owner = owner
        self.prefix = prefix
        self.seq = 0
        self.spooling = False

    def write(self, data: bytes) -> int:
        key = f"{self.prefix}{self.seq:08d}"
        body = bytes(data)
        if not self.spooling:
            try:
                self.owner.run(self.owner.blobs.put(key, body))
            except BlobUnavailable as exc:
                if self.owner.spool is None:
                    raise
                log.warning("recording %s: blob store unavailable (%s): spooling locally", self.prefix, exc.reason)
                self.spooling = True
        if self.spooling:
            assert self.owner.spool is not None
            self.owner.spool.put(key, body)
        self.seq += 1
        return len(body)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class SegmentedBlobs:
    def __init__(self, blobs: BlobStore, loop: asyncio.AbstractEventLoop, spool: Spool | None = None) -> None:
        self.blobs = blobs
        self.loop = loop
        self.spool = spool

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a store coroutine on the loop from this worker thread; a missing recording is
        `FileNotFoundError`, as with `LocalBlobStore`."""
        try:
            return asyncio.run_coroutine_threadsafe(coro, self.loop).result(CALL_TIMEOUT)
        except BlobNotFound as exc:
            raise FileNotFoundError(str(exc)) from None

    @staticmethod
    def prefix(key: str) -> str:
        return f"{FOLDER}/{check_key(key)}/"

    def create(self, key: str) -> BinaryIO:
        return SegmentWriter(self, self.prefix(key))  # type: ignore[return-value]

    async def segments(self, key: str) -> list[BlobInfo]:
        """The recording's segments 0, 1, … up to the first missing one; `BlobNotFound` when none."""
        prefix = self.prefix(key)
        by_seq: dict[int, BlobInfo] = {}
        async for info in self.blobs.list(prefix):
            name = info.key[len(prefix):]
            if name.isdigit():
                by_seq[int(name)] = info
        out: list[BlobInfo] = []
        while len(out) in by_seq:
            out.append(by_seq[len(out)])
        if not out:
            raise BlobNotFound(key)
        return out

    async def read_range_async(self, key: str, offset: int, length: int) -> bytes:
        parts: list[bytes] = []
        start = 0
        end = offset + length
        for seg in await self.segments(key):
            seg_end = start + seg.size
            if seg_end > offset and start < end:
                lo = max(offset, start) - start
                hi = min(end, seg_end) - start
                parts.append(await self.blobs.read_range(seg.key, lo, hi - lo))
            if seg_end >= end:
                break
            start = seg_end
        return b"".join(parts)

    def read(self, key: str) -> bytes:
        return self.run(self.read_all(key))

    async def read_all(self, key: str) -> bytes:
        """The whole ciphertext (on the loop)."""
        return b"".join([await self.blobs.get(seg.key) for seg in await self.segments(key)])

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """At most `length` bytes of the recording's ciphertext from `offset` (both >= 0,
        else ValueError): S3 Range GETs of the segments the range covers."""
        if offset < 0 or length < 0:
            raise ValueError("offset and length must be >= 0")
        return self.run(self.read_range_async(key, offset, length))

    def size(self, key: str) -> int:
        return self.run(self._size(key))

    async def _size(self, key: str) -> int:
        return sum(seg.size for seg in await self.segments(key))

    def delete(self, key: str) -> None:
        self.run(self._delete(key))

    async def _delete(self, key: str) -> None:
        async for info in self.blobs.list(self.prefix(key)):
            with contextlib.suppress(BlobNotFound):
                await self.blobs.delete(info.key)
