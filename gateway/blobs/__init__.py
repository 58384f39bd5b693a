"""Where the gateway keeps files: the `BlobStore` protocol and its errors.

A blob is an immutable byte string under a key such as `uploads/<tenant>/<id>`. Two backends
implement the protocol and pass one contract suite (tests/contract/test_blob_store.py):
`LocalBlobs` (files under DATA_DIR, the embedded default) and `S3Blobs` (any S3-compatible
object store, `BLOB_URL=s3://bucket/prefix`). `open_blobs` (gateway/blobs/factory.py)
chooses one from the configuration; `MeteredBlobs` counts and times every operation.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from typing import Protocol

from gateway.core.errors import Code, GatewayError
from gateway.core.records import record

__all__ = ["BlobInfo", "BlobNotFound", "BlobStore", "BlobUnavailable", "Data", "check_key", "delete_prefix"]

CHUNK = 64 * 1024  # bytes per piece of a streamed read
RETRY_AFTER = 5.0  # seconds a client is told to wait when the store is unreachable

Data = bytes | AsyncIterable[bytes]

_KEY_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}(/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}){0,7}$")


@record
class BlobInfo:
    key: str
    size: int
    modified: float  # seconds since the epoch


class BlobNotFound(KeyError):
    """No blob under this key."""


class BlobUnavailable(GatewayError):
    """The object store cannot be reached, refused the request, or answered too slowly: the
    typed `unavailable` error (HTTP 503) with `retry_after` seconds, never a 500."""

    def __init__(self, reason: str, retry_after: float = RETRY_AFTER) -> None:
        super().__init__(Code.UNAVAILABLE, "file storage is unavailable, try again later",
                         retry_after=retry_after)
        self.reason = reason


def check_key(key: str) -> str:
    """`key` if it is a valid blob key (1 to 8 `/`-separated segments of letters, digits,
    `_`, `-` and `.`, none starting with a dot), else ValueError."""
    if not _KEY_RE.match(key):
        raise ValueError(f"bad blob key {key!r}")
    return key


class BlobStore(Protocol):
    """Keys are checked with `check_key`. Every method raises `BlobUnavailable` when the
    backend cannot be reached or fails (never a backend-specific exception)."""

    @property
    def name(self) -> str:
        """The backend: "local" or "s3"."""

    async def put(self, key: str, data: Data, *, content_type: str | None = None) -> int:
        """Store `data` (bytes, or chunks read as they come) under `key`, replacing what was
        there; the number of bytes stored. All or nothing: an exception raised by the chunk
        iterator (a size limit, a client gone) propagates and leaves nothing new stored."""

    async def get(self, key: str) -> bytes:
        """The whole blob; `BlobNotFound` when there is none."""

    async def read_range(self, key: str, offset: int, length: int) -> bytes:
        """At most `length` bytes from `offset` (fewer at the end, empty past it)."""

    def stream(self, key: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """The blob (from `offset`, `length` bytes or to the end) in pieces of at most
        `CHUNK` bytes, read as they are consumed; `BlobNotFound` at the first step."""

    async def stat(self, key: str) -> BlobInfo | None:
        """Size and time of the blob, None when there is none."""

    async def delete(self, key: str) -> None:
        """Remove the blob; nothing happens when there is none."""

    def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        """Every blob whose key starts with `prefix` (which ends with `/`), in no set order."""

    async def ping(self) -> None:
        """Return when the store answers (readiness), else raise `BlobUnavailable`."""

    async def close(self) -> None: ...


async def delete_prefix(store: BlobStore, prefix: str) -> tuple[int, int]:
    """Remove every blob under `prefix`: (blobs, bytes) removed."""
    found = [info async for info in store.list(prefix)]
    for info in found:
        await store.delete(info.key)
    return len(found), sum(info.size for info in found)


async def read_all(chunks: AsyncIterable[bytes]) -> bytes:
    return b"".join([c async for c in chunks])
