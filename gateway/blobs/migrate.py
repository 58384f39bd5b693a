"""`python -m gateway blobs migrate`: copy the files under DATA_DIR into the bucket.

Every blob under `FOLDERS` of the local store is copied to the same key in the target, read
back and compared by SHA-256. A key the target already holds with the same checksum is
skipped, so the command is idempotent and resumes where an interrupted run stopped. The
local files are left in place (remove them once every node runs with BLOB_URL).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass

from gateway.blobs import BlobStore, BlobUnavailable

log = logging.getLogger(__name__)

FOLDERS = ("uploads", "attachments", "recordings", "exports")


@dataclass
class MigrationReport:
    files: int = 0  # found under DATA_DIR
    copied: int = 0
    skipped: int = 0  # already in the bucket with the same checksum
    failed: int = 0
    bytes_copied: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


async def digest(store: BlobStore, key: str) -> tuple[str, int] | None:
    """(SHA-256 hex, size) of the blob, read as a stream; None when there is none."""
    if await store.stat(key) is None:
        return None
    h = hashlib.sha256()
    size = 0
    async for chunk in store.stream(key):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


async def migrate(source: BlobStore, target: BlobStore, folders: tuple[str, ...] = FOLDERS) -> MigrationReport:
    report = MigrationReport()
    for folder in folders:
        async for info in source.list(f"{folder}/"):
            report.files += 1
            try:
                want = await digest(source, info.key)
                if want is None:  # removed meanwhile
                    continue
                if await digest(target, info.key) == want:
                    report.skipped += 1
                    continue

                async def chunks(key: str = info.key) -> AsyncIterator[bytes]:
                    async for chunk in source.stream(key):
                        yield chunk

                await target.put(info.key, chunks())
                got = await digest(target, info.key)
                if got != want:
                    raise BlobUnavailable(f"checksum mismatch after copy: {got} != {want}")
                report.copied += 1
                report.bytes_copied += want[1]
            except (BlobUnavailable, ValueError) as exc:
                report.failed += 1
                log.error("blobs migrate: %s: %s", info.key, getattr(exc, "reason", exc))
    return report
