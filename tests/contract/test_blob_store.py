"""The `BlobStore` contract (gateway/blobs), run on both backends: local disk (a temp
DATA_DIR) and S3 (a real SeaweedFS with signed requests, tests/support/seaweed.py)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.blobs import BlobNotFound, BlobStore, BlobUnavailable, check_key, delete_prefix
from gateway.blobs.local import LocalBlobs
from gateway.blobs.s3 import PART, S3Blobs, S3Settings
from tests.support.procs import free_port
from tests.support.seaweed import S3Server

BACKENDS = [pytest.param("local"), pytest.param("s3", marks=pytest.mark.s3)]


@pytest.fixture(params=BACKENDS)
async def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    store: BlobStore
    if request.param == "local":
        store = LocalBlobs(tmp_path)
    else:
        server: S3Server = request.getfixturevalue("seaweed")
        store = S3Blobs(server.settings())
    try:
        yield store
    finally:
        await store.close()


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


async def test_put_then_get_stat_and_delete(blobs: BlobStore) -> None:
    assert await blobs.put("uploads/t1/a", b"hello world", content_type="text/plain") == 11
    assert await blobs.get("uploads/t1/a") == b"hello world"
    info = await blobs.stat("uploads/t1/a")
    assert info is not None and info.key == "uploads/t1/a" and info.size == 11 and info.modified > 0
    await blobs.delete("uploads/t1/a")
    assert await blobs.stat("uploads/t1/a") is None
    await blobs.delete("uploads/t1/a")  # again: nothing happens


async def test_a_missing_blob_is_not_found(blobs: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        await blobs.get("uploads/t1/none")
    with pytest.raises(BlobNotFound):
        await blobs.read_range("uploads/t1/none", 0, 10)
    with pytest.raises(BlobNotFound):
        [c async for c in blobs.stream("uploads/t1/none")]
    assert await blobs.stat("uploads/t1/none") is None


async def test_put_from_a_stream_and_replace(blobs: BlobStore) -> None:
    assert await blobs.put("uploads/t1/s", chunks(b"ab", b"", b"cde")) == 5
    assert await blobs.get("uploads/t1/s") == b"abcde"
    assert await blobs.put("uploads/t1/s", b"xyz") == 3
    assert await blobs.get("uploads/t1/s") == b"xyz"


async def test_a_large_stream_goes_in_parts_and_reads_back_in_ranges(blobs: BlobStore) -> None:
    block = os.urandom(1024 * 1024)
    data = block * (PART // len(block) + 1) + b"tail"
    assert await blobs.put("recordings/t1/big.age", chunks(*[data[i:i + 700_000]
                                                             for i in range(0, len(data), 700_000)])) == len(data)
    assert (await blobs.stat("recordings/t1/big.age")).size == len(data)  # type: ignore[union-attr]
    assert await blobs.read_range("recordings/t1/big.age", PART - 3, 10) == data[PART - 3:PART + 7]
    assert await blobs.read_range("recordings/t1/big.age", len(data) - 2, 100) == b"il"
    assert await blobs.read_range("recordings/t1/big.age", len(data) + 5, 10) == b""
    pieces = [c async for c in blobs.stream("recordings/t1/big.age", 100, 200_000)]
    assert b"".join(pieces) == data[100:200_100] and max(len(p) for p in pieces) <= 64 * 1024
    assert b"".join([c async for c in blobs.stream("recordings/t1/big.age")]) == data


async def test_a_failing_stream_stores_nothing(blobs: BlobStore) -> None:
    class Refused(Exception):
        pass

    async def failing() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        raise Refused

    with pytest.raises(Refused):
        await blobs.put("uploads/t1/f", failing())
    assert await blobs.stat("uploads/t1/f") is None
    await blobs.put("uploads/t1/g", b"kept")

    async def failing_late() -> AsyncIterator[bytes]:  # past one part: a multipart upload aborted
        yield b"y" * (PART + 10)
        raise Refused

    with pytest.raises(Refused):
        await blobs.put("uploads/t1/g", failing_late())
    assert await blobs.get("uploads/t1/g") == b"kept"


async def test_list_by_prefix_and_delete_prefix(blobs: BlobStore) -> None:
    for key in ("uploads/t1/a", "uploads/t1/b", "uploads/t2/c", "attachments/t1/x/y"):
        await blobs.put(key, key.encode())
    got = sorted((i.key, i.size) for i in [i async for i in blobs.list("uploads/t1/")])
    assert got == [("uploads/t1/a", 12), ("uploads/t1/b", 12)]
    assert sorted([i.key async for i in blobs.list("uploads/")]) == ["uploads/t1/a", "uploads/t1/b", "uploads/t2/c"]
    assert [i.key async for i in blobs.list("nothing/")] == []
    assert await delete_prefix(blobs, "uploads/t1/") == (2, 24)
    assert [i.key async for i in blobs.list("uploads/t1/")] == []
    assert await blobs.get("uploads/t2/c") == b"uploads/t2/c"


async def test_bad_keys_are_refused(blobs: BlobStore) -> None:
    for key in ("../x", "uploads/../x", "/abs", "uploads//x", ".hidden/x", "uploads/x/", "a b", ""):
        with pytest.raises(ValueError):
            await blobs.put(key, b"x")
        with pytest.raises(ValueError):
            check_key(key)


async def test_ping_answers(blobs: BlobStore) -> None:
    await blobs.ping()


async def test_an_unreachable_s3_is_unavailable_with_retry_after() -> None:
    store = S3Blobs(S3Settings(bucket="izh-test", endpoint=f"http://127.0.0.1:{free_port()}", region="us-east-1",
                               access_key_id="k", secret_access_key="s", path_style=True, timeout=0.5,
                               attempts=1, retry_after=7.0))
    try:
        for call in (store.ping(), store.put("uploads/t/a", b"x"), store.get("uploads/t/a"), store.stat("uploads/t/a")):
            with pytest.raises(BlobUnavailable) as exc:
                await call
            assert exc.value.code.value == "unavailable" and exc.value.details == {"retry_after": 7.0}
    finally:
        await store.close()


@pytest.mark.s3
async def test_wrong_credentials_are_unavailable_not_a_crash(seaweed: S3Server) -> None:
    s = seaweed.settings()
    store = S3Blobs(S3Settings(bucket=s.bucket, prefix=s.prefix, endpoint=s.endpoint, region="us-east-1",
                               access_key_id=s.access_key_id, secret_access_key="wrong", path_style=True, attempts=1))
    try:
        with pytest.raises(BlobUnavailable) as exc:
            await store.put("uploads/t/a", b"x")
        assert "SignatureDoesNotMatch" in exc.value.reason
    finally:
        await store.close()
