"""Blob store throughput (issue 30): `python -m bench.blobs` starts a SeaweedFS on loopback
(tests/support/seaweed.py) and times, for the local-disk and the S3 backends: one 10 MiB put
from a stream (S3: multipart) and its streamed read, 200 puts and gets of 10 KiB, and 64
ranged reads of 64 KiB. Prints one JSON line per backend (MB/s, operations/s)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from gateway.blobs import BlobStore
from gateway.blobs.local import LocalBlobs
from gateway.blobs.s3 import S3Blobs, S3Settings
from tests.support.seaweed import ACCESS_KEY, BUCKET, SECRET_KEY, start_seaweed, stop_seaweed

BIG = 10 * 1024 * 1024
SMALL = 10 * 1024
N_SMALL = 200


async def measure(store: BlobStore) -> dict[str, float | str]:
    big = os.urandom(BIG)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, BIG, 64 * 1024):
            yield big[i:i + 64 * 1024]

    t = time.perf_counter()
    await store.put("bench/big", chunks())
    put_s = time.perf_counter() - t
    t = time.perf_counter()
    n = 0
    async for c in store.stream("bench/big"):
        n += len(c)
    get_s = time.perf_counter() - t
    assert n == BIG
    small = os.urandom(SMALL)
    t = time.perf_counter()
    for i in range(N_SMALL):
        await store.put(f"bench/s/{i}", small)
    small_put = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(N_SMALL):
        await store.get(f"bench/s/{i}")
    small_get = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(64):
        await store.read_range("bench/big", (i * 151_213) % (BIG - 65536), 65536)
    ranged = time.perf_counter() - t
    return {"backend": store.name, "put_10MiB_MBps": round(BIG / put_s / 1e6, 1),
            "stream_10MiB_MBps": round(BIG / get_s / 1e6, 1), "put_10KiB_per_s": round(N_SMALL / small_put),
            "get_10KiB_per_s": round(N_SMALL / small_get), "range_64KiB_per_s": round(64 / ranged)}


async def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="izh-bench-blobs-"))
    (root / "weed").mkdir()
    proc, endpoint = start_seaweed(root / "weed")
    try:
        local = LocalBlobs(root / "local")
        print(json.dumps(await measure(local)))
        s3 = S3Blobs(S3Settings(bucket=BUCKET, prefix="bench/", endpoint=endpoint, region="us-east-1",
                                access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY, path_style=True))
        try:
            print(json.dumps(await measure(s3)))
        finally:
            await s3.close()
    finally:
        stop_seaweed(proc)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
