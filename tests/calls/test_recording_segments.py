"""Recordings in the object store (issue 30, recording/segments.py) against SeaweedFS's S3:
each ciphertext write is one segment object, so an unfinished recording (a crash) still
reads back as a decryptable prefix; ranges read by S3 Range GETs; when the store is
unreachable the segments go to a bounded local spool and reach the bucket once it is back."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from pyrage import x25519

from gateway.blobs.s3 import S3Blobs, S3Settings
from recording.agestream import AgeStreamWriter, decrypt_prefix
from recording.segments import SegmentedBlobs, SegmentWriter, Spool
from tests.support.procs import free_port
from tests.support.seaweed import S3Server
from tests.support.waits import until

pytestmark = [pytest.mark.s3]

PLAIN = os.urandom(5 * 65536 + 1234)


async def record(store: SegmentedBlobs, key: str, recipient: str, data: bytes = PLAIN) -> tuple[int, str]:
    writer = AgeStreamWriter(await asyncio.to_thread(store.create, key), recipient)
    writer.write(data)
    return await asyncio.to_thread(writer.finish)


async def test_a_recording_reads_back_whole_and_by_range(seaweed: S3Server) -> None:
    ident = x25519.Identity.generate()
    blobs = S3Blobs(seaweed.settings())
    store = SegmentedBlobs(blobs, asyncio.get_running_loop())
    try:
        size, _ = await record(store, "t1/rec.age", str(ident.to_public()))
        ciphertext = await asyncio.to_thread(store.read, "t1/rec.age")
        assert len(ciphertext) == size == await asyncio.to_thread(store.size, "t1/rec.age")
        assert decrypt_prefix(ciphertext, ident) == (PLAIN, True)
        assert len(await store.segments("t1/rec.age")) >= 6  # one object per sealed chunk
        for offset, length in ((0, 10), (65_000, 70_000), (size - 5, 100), (size + 1, 10)):
            assert await asyncio.to_thread(store.read_range, "t1/rec.age", offset, length) \
                == ciphertext[offset:offset + length]
        await asyncio.to_thread(store.delete, "t1/rec.age")
        assert [i async for i in blobs.list("recordings/t1/")] == []
        with pytest.raises(FileNotFoundError):
            await asyncio.to_thread(store.read, "t1/rec.age")
    finally:
        await blobs.close()


async def test_an_unfinished_recording_is_a_decryptable_prefix(seaweed: S3Server) -> None:
    ident = x25519.Identity.generate()
    blobs = S3Blobs(seaweed.settings())
    store = SegmentedBlobs(blobs, asyncio.get_running_loop())
    try:
        sink = SegmentWriter(store, store.prefix("t1/crash.age"))  # what `create` hands out
        writer = AgeStreamWriter(sink, str(ident.to_public()))  # type: ignore[arg-type]
        writer.write(PLAIN)  # never finished: the process "died" here
        await until(lambda: sink.seq >= 4, timeout=60)  # segments acknowledged by the store
        plain, complete = decrypt_prefix(await asyncio.to_thread(store.read, "t1/crash.age"), ident)
        assert not complete and len(plain) >= 3 * 65536 and PLAIN.startswith(plain)
        await asyncio.to_thread(writer.finish)
    finally:
        await blobs.close()


async def test_segments_spool_locally_while_the_store_is_away_and_upload_later(
        tmp_path: Path, seaweed: S3Server) -> None:
    ident = x25519.Identity.generate()
    live = seaweed.settings()
    dead = S3Blobs(S3Settings(bucket=live.bucket, prefix=live.prefix, endpoint=f"http://127.0.0.1:{free_port()}",
                              region="us-east-1", access_key_id="k", secret_access_key="s", path_style=True,
                              timeout=0.5, attempts=1))
    spool = Spool(tmp_path / "spool", 10 * 1024 * 1024)
    loop = asyncio.get_running_loop()
    blobs = S3Blobs(live)
    try:
        size, _ = await record(SegmentedBlobs(dead, loop, spool), "t1/away.age", str(ident.to_public()))
        assert spool.bytes == size and len(spool.waiting()) >= 6  # acknowledged, kept on disk
        assert await spool.drain(dead) == 0  # still away: kept
        assert await spool.drain(blobs) >= 6
        assert spool.bytes == 0 and spool.waiting() == []
        store = SegmentedBlobs(blobs, loop)
        assert decrypt_prefix(await asyncio.to_thread(store.read, "t1/away.age"), ident) == (PLAIN, True)

        small = Spool(tmp_path / "small", 100_000)  # full: the recording fails, nothing is pretended
        with pytest.raises(Exception, match="spool full"):  # (raised by the encryptor: pyrage's EncryptError)
            await record(SegmentedBlobs(dead, loop, small), "t1/full.age", str(ident.to_public()))
    finally:
        await dead.close()
        await blobs.close()
