"""`MeteredBlobs`: a blob store whose operations are counted and timed for /metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.blobs import BlobInfo, BlobNotFound, BlobStore, BlobUnavailable, Data

T = TypeVar("T")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, BlobNotFound):
        return "not_found"
    if isinstance(exc, BlobUnavailable):
        return "unavailable"
    return "error"


class MeteredBlobs:
    """`izh_blob_operations_total{backend,op,outcome}` (ok, not_found, unavailable, error),
    `izh_blob_operation_seconds{backend,op}` and `izh_blob_bytes_total{backend,direction}`."""

    def __init__(self, inner: BlobStore, registry: CollectorRegistry) -> None:
        self.inner = inner
        self.ops = Counter("izh_blob_operations", "Blob store operations", ["backend", "op", "outcome"],
                           registry=registry)
        self.seconds = Histogram("izh_blob_operation_seconds", "Blob store operation time", ["backend", "op"],
                                 registry=registry, buckets=BUCKETS)
        self.bytes = Counter("izh_blob_bytes", "Bytes written to / read from the blob store",
                             ["backend", "direction"], registry=registry)

    @property
    def name(self) -> str:
        return self.inner.name

    async def _run(self, op: str, call: Callable[[], Awaitable[T]]) -> T:
        start = time.perf_counter()
        try:
            out = await call()
        except BaseException as exc:
            self.ops.labels(self.name, op, _outcome(exc)).inc()
            raise
        finally:
            self.seconds.labels(self.name, op).observe(time.perf_counter() - start)
        self.ops.labels(self.name, op, "ok").inc()
        return out

    async def put(self, key: str, data: Data, *, content_type: str | None = None) -> int:
        n = await self._run("put", lambda: self.inner.put(key, data, content_type=content_type))
        self.bytes.labels(self.name, "out").inc(n)
        return n

    async def get(self, key: str) -> bytes:
        data = await self._run("get", lambda: self.inner.get(key))
        self.bytes.labels(self.name, "in").inc(len(data))
        return data

    async def read_range(self, key: str, offset: int, length: int) -> bytes:
        data = await self._run("read_range", lambda: self.inner.read_range(key, offset, length))
        self.bytes.labels(self.name, "in").inc(len(data))
        return data

    async def stream(self, key: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        it = aiter(self.inner.stream(key, offset, length))
        first = await self._run("stream", lambda: anext(it, b""))
        counter = self.bytes.labels(self.name, "in")
        chunk = first
        while chunk:
            counter.inc(len(chunk))
            yield chunk
            chunk = await anext(it, b"")

    async def stat(self, key: str) -> BlobInfo | None:
        return await self._run("stat", lambda: self.inner.stat(key))

    async def delete(self, key: str) -> None:
        await self._run("delete", lambda: self.inner.delete(key))

    async def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        async for info in self.inner.list(prefix):
            yield info
        self.ops.labels(self.name, "list", "ok").inc()

    async def ping(self) -> None:
        await self._run("ping", self.inner.ping)

    async def close(self) -> None:
        await self.inner.close()
