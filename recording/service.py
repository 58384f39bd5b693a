"""Recording use cases: start (encrypting Ogg/Opus writer), finish, playback by byte range,
export, shred."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from gateway.store.rows import new_id
from recording.ageseek import CHUNK, AgeReader
from recording.agestream import AgeStreamWriter
from recording.blobs import BlobStore
from recording.catalogue import RecordingCatalogue, RecordingRow
from recording.keys import RecordingKeys
from recording.oggopus import OggOpusMuxer

log = logging.getLogger(__name__)


class RecordingGone(Exception):
    """Unknown id, other tenant, or the key was shredded."""


@dataclass(frozen=True, slots=True)
class Playback:
    """An opened recording: `size` bytes of Ogg/Opus can be read (the authenticated prefix
    when `complete` is False: the file was cut by a crash)."""

    row: RecordingRow
    reader: AgeReader

    @property
    def size(self) -> int:
        return self.reader.size

    @property
    def complete(self) -> bool:
        return self.reader.complete

    async def stream(self, start: int, end: int) -> AsyncIterator[memoryview]:
        """Bytes [start, end) (0 <= start <= end <= size) in pieces of at most 64 KiB: each age
        chunk the range touches is read and decrypted in a worker thread when the previous
        piece has been consumed, so one playback holds about one chunk. Raises
        `AgeFormatError` at a chunk that fails authentication."""
        for i in range(start // CHUNK, -(-end // CHUNK)):
            plain = await asyncio.to_thread(self.reader.chunk, i)
            base = i * CHUNK
            yield memoryview(plain)[max(start - base, 0):min(end - base, len(plain))]


class ActiveRecording:
    """One call's recording; `add` runs on the event loop (mux only), `finish` seals it."""

    def __init__(self, row: RecordingRow, writer: AgeStreamWriter, muxer: OggOpusMuxer,
                 catalogue: RecordingCatalogue) -> None:
        self.row = row
        self._writer = writer
        self._muxer = muxer
        self._catalogue = catalogue
        self._done = False

    @property
    def id(self) -> str:
        return self.row.id

    def add(self, leg: int, payload: bytes, rtp_ts: int) -> None:
        if not self._done:
            try:
                self._muxer.add(leg, payload, rtp_ts)
            except Exception:
                log.exception("recording %s: mux failed; recording stops here", self.row.id)
                self._done = True

    async def finish(self) -> RecordingRow:
        self._done = True
        state = "complete"
        size, sha = 0, None
        try:
            self._muxer.close()
        except Exception:
            log.exception("recording %s: closing the muxer failed", self.row.id)
            state = "failed"
        try:
            size, sha = await asyncio.to_thread(self._writer.finish)
        except Exception:
            log.exception("recording %s: sealing failed", self.row.id)
            state = "failed"
        duration = round(self._muxer.duration, 3)
        await self._catalogue.finish(self.row.tenant_id, self.row.id, state=state, size=size,
                                     duration=duration, sha256=sha)
        return RecordingRow(self.row.id, self.row.tenant_id, self.row.call_id, self.row.key_id, self.row.blob_key,
                            state, size, duration, sha, self.row.created_at)


class Recordings:
    def __init__(self, keys: RecordingKeys, catalogue: RecordingCatalogue, blobs: BlobStore, clock: Callable[[], float],
                 monotonic: Callable[[], float]) -> None:
        self.keys = keys
        self.catalogue = catalogue
        self.blobs = blobs
        self.clock = clock
        self.monotonic = monotonic

    async def start(self, tenant_id: str, call_id: str, legs: Sequence[str]) -> ActiveRecording:
        key = await self.keys.current(tenant_id)
        rec_id = new_id()
        row = RecordingRow(rec_id, tenant_id, call_id, key.key_id, f"{tenant_id}/{rec_id}.age", "recording",
                           0, 0.0, None, self.clock())
        await self.catalogue.insert(row)
        writer = AgeStreamWriter(self.blobs.create(row.blob_key), key.recipient)
        muxer = OggOpusMuxer(writer, legs, self.monotonic)
        return ActiveRecording(row, writer, muxer, self.catalogue)

    async def row(self, tenant_id: str | None, rec_id: str) -> RecordingRow:
        row = await (self.catalogue.get_any_tenant(rec_id) if tenant_id is None
                     else self.catalogue.get(tenant_id, rec_id))
        if row is None:
            raise RecordingGone(rec_id)
        return row

    async def open(self, row: RecordingRow) -> Playback:
        """The recording opened for playback: its header and last chunk read and authenticated
        (nothing else). `RecordingGone` when its key was shredded or its file is missing;
        `AgeFormatError` when the file fails authentication."""
        try:
            identity = str(await self.keys.identity(row.tenant_id, row.key_id))
        except Exception as exc:
            raise RecordingGone(row.id) from exc
        key = row.blob_key

        def fetch(offset: int, length: int) -> bytes:
            return self.blobs.read_range(key, offset, length)

        def opened() -> AgeReader:
            return AgeReader.open(fetch, self.blobs.size(key), identity)

        try:
            reader = await asyncio.to_thread(opened)
        except FileNotFoundError as exc:
            raise RecordingGone(row.id) from exc
        return Playback(row, reader)
