"""`S3Blobs`: blobs in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, SeaweedFS,
Cloudflare R2, GCS in S3 mode) through aiobotocore, which signs the requests.

Keys are stored as `<prefix><key>` in one bucket. A put from a stream sends one PutObject
when the stream ends within `PART` bytes, else a multipart upload of `PART`-byte parts
(aborted when the stream fails, so nothing partial is ever visible). Every failure to reach
the store or a 5xx / throttling answer becomes `BlobUnavailable` (with `retry_after`); a
missing key becomes `BlobNotFound`. The client is created at the first operation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from gateway.blobs import CHUNK, RETRY_AFTER, BlobInfo, BlobNotFound, BlobUnavailable, Data, check_key

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

PART = 8 * 1024 * 1024  # bytes per multipart part (S3's minimum is 5 MiB, except the last)
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


@dataclass(frozen=True, slots=True)
class S3Settings:
    """Unset credentials, region and endpoint come from the standard AWS chain (environment
    `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_REGION`/`AWS_ENDPOINT_URL_S3`, shared
    files, instance roles)."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    path_style: bool = False  # `endpoint/bucket/key` (self-hosted servers) instead of `bucket.endpoint/key`
    timeout: float = 10.0  # seconds to connect, and between bytes read
    attempts: int = 2  # tries per operation (botocore's standard retry mode)
    retry_after: float = RETRY_AFTER


def parse_url(url: str) -> tuple[str, str]:
    """`s3://bucket/prefix` → (bucket, prefix ending with "/" or empty); ValueError otherwise."""
    if not url.startswith("s3://"):
        raise ValueError("BLOB_URL must look like s3://bucket/prefix")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError("BLOB_URL has no bucket")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


class S3Blobs:
    name = "s3"

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._client: S3Client | None = None
        self._exit: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> S3Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is not None:
                return self._client
            s = self.settings
            config = AioConfig(
                s3={"addressing_style": "path" if s.path_style else "auto"},
                retries={"max_attempts": s.attempts, "mode": "standard"},
                connect_timeout=s.timeout, read_timeout=s.timeout,
                request_checksum_calculation="when_required", response_checksum_validation="when_required")
            stack = contextlib.AsyncExitStack()
            client: S3Client = await stack.enter_async_context(get_session().create_client(
                "s3", endpoint_url=s.endpoint, region_name=s.region, aws_access_key_id=s.access_key_id,
                aws_secret_access_key=s.secret_access_key, config=config))
            self._client, self._exit = client, stack
            return client

    def _key(self, key: str) -> str:
        return self.settings.prefix + check_key(key)

    def _fail(self, exc: Exception, key: str = "") -> Exception:
        """The exception to raise for a client error."""
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in _MISSING or status == 404:
                return BlobNotFound(key)
            return BlobUnavailable(f"{code or status}: {err.get('Message', '')}".strip(), self.settings.retry_after)
        return BlobUnavailable(f"{type(exc).__name__}: {exc}", self.settings.retry_after)

    async def put(self, key: str, data: Data, *, content_type: str | None = None) -> int:
        full = self._key(key)
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        if isinstance(data, bytes):
            await self._put_object(full, data, extra)
            return len(data)
        buf = bytearray()
        chunks = aiter(data)
        async for chunk in chunks:
            buf += chunk
            if len(buf) >= PART:
                break
        else:
            await self._put_object(full, bytes(buf), extra)
            return len(buf)
        return await self._multipart(full, buf, chunks, extra)

    async def _put_object(self, full: str, body: bytes, extra: dict[str, Any]) -> None:
        c = await self.client()
        try:
            await c.put_object(Bucket=self.settings.bucket, Key=full, Body=body, **extra)
        except (TimeoutError, BotoCoreError, ClientError, OSError) as exc:
            raise self._fail(exc) from exc

    async def _multipart(self, full: str, buf: bytearray, chunks: AsyncIterator[bytes], extra: dict[str, Any]) -> int:
        c = await self.client()
        bucket = self.settings.bucket
        try:
            upload_id = (await c.create_multipart_upload(Bucket=bucket, Key=full, **extra))["UploadId"]
        except (TimeoutError, BotoCoreError, ClientError, OSError) as exc:
            raise self._fail(exc) from exc
        parts: list[CompletedPartTypeDef] = []
        size = 0

        async def send(body: bytes) -> None:
            n = len(parts) + 1
            r = await c.upload_part(Bucket=bucket, Key=full, UploadId=upload_id, PartNumber=n, Body=body)
            parts.append({"ETag": r["ETag"], "PartNumber": n})

        try:
            while True:
                while len(buf) >= PART:
                    await send(bytes(buf[:PART]))
                    size += PART
                    del buf[:PART]
                chunk = await anext(chunks, None)
                if chunk is None:
                    break
                buf += chunk
            if buf or not parts:
                size += len(buf)
                await send(bytes(buf))
            await c.complete_multipart_upload(Bucket=bucket, Key=full, UploadId=upload_id,
                                              MultipartUpload={"Parts": parts})
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await c.abort_multipart_upload(Bucket=bucket, Key=full, UploadId=upload_id)
            if isinstance(exc, (BotoCoreError, ClientError, OSError, asyncio.TimeoutError)):
                raise self._fail(exc) from exc
            raise
        return size

    async def get(self, key: str) -> bytes:
        return b"".join([c async for c in self.stream(key)])

    async def read_range(self, key: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        return b"".join([c async for c in self.stream(key, offset, length)])

    async def stream(self, key: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        full = self._key(key)
        c = await self.client()
        rng: dict[str, Any] = {}
        if offset or length is not None:
            rng["Range"] = f"bytes={offset}-" + ("" if length is None else str(offset + length - 1))
        try:
            resp = await c.get_object(Bucket=self.settings.bucket, Key=full, **rng)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return  # past the end: nothing
            raise self._fail(exc, key) from exc
        except (TimeoutError, BotoCoreError, OSError) as exc:
            raise self._fail(exc, key) from exc
        body = resp["Body"]
        try:
            while True:
                try:
                    chunk = await body.read(CHUNK)
                except (TimeoutError, BotoCoreError, OSError) as exc:
                    raise self._fail(exc, key) from exc
                if not chunk:
                    break
                yield chunk
        finally:
            body.close()

    async def stat(self, key: str) -> BlobInfo | None:
        c = await self.client()
        try:
            r = await c.head_object(Bucket=self.settings.bucket, Key=self._key(key))
        except (TimeoutError, BotoCoreError, ClientError, OSError) as exc:
            fail = self._fail(exc, key)
            if isinstance(fail, BlobNotFound):
                return None
            raise fail from exc
        return BlobInfo(key, int(r["ContentLength"]), r["LastModified"].timestamp())

    async def delete(self, key: str) -> None:
        c = await self.client()
        try:
            await c.delete_object(Bucket=self.settings.bucket, Key=self._key(key))
        except (TimeoutError, BotoCoreError, ClientError, OSError) as exc:
            fail = self._fail(exc, key)
            if not isinstance(fail, BlobNotFound):
                raise fail from exc

    async def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        c = await self.client()
        strip = len(self.settings.prefix)
        pages = c.get_paginator("list_objects_v2").paginate(Bucket=self.settings.bucket,
                                                             Prefix=self.settings.prefix + prefix)
        try:
            async for page in pages:
                for o in page.get("Contents", []):
                    yield BlobInfo(o["Key"][strip:], int(o["Size"]), o["LastModified"].timestamp())
        except (TimeoutError, BotoCoreError, ClientError, OSError) as exc:
            raise self._fail(exc) from exc

    async def ping(self) -> None:
        c = await self.client()
        try:
            await c.head_bucket(Bucket=self.settings.bucket)
        except (TimeoutError, BotoCoreError, ClientError, OSError) as exc:
            fail = self._fail(exc)
            raise (fail if isinstance(fail, BlobUnavailable) else BlobUnavailable("no such bucket")) from exc

    async def close(self) -> None:
        stack, self._exit, self._client = self._exit, None, None
        if stack is not None:
            await stack.aclose()
