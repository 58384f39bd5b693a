"""Opus passthrough for aiortc 1.16 (see shared/calls-passthrough.md, "hook 2").

aiortc has no public API for encoded frames on the receive side. Right after
`setRemoteDescription()` each `RTCRtpReceiver` exists but its decoder thread has not
started; we swap its private decoder queue for `PassthroughQueue`, whose `put()` is called
on the event loop with `(codec, JitterFrame)` and hands the Opus payload straight to a sink
(no decoder, no thread hop). `put(None)` (receiver stop) releases the idle decoder thread,
which then ends the track normally.

On the sending side aiortc supports pre-encoded data: a track whose `recv()` returns an
`av.Packet` (pts in 1/48000) is packetised as-is (`PacketTrack`).

Relies on private aiortc names: pin aiortc and keep tests/calls/test_passthrough.py.
"""

from __future__ import annotations

import asyncio
import fractions
import threading
from collections.abc import Callable
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

TB = fractions.Fraction(1, 48000)
Sink = Callable[[bytes, int], None]  # (opus payload, rebased RTP timestamp at 48 kHz)
_QUEUE_ATTR = "_RTCRtpReceiver__decoder_queue"


class PassthroughQueue:
    """Stands in for the receiver's `queue.Queue` of `(codec, JitterFrame)`."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._stopped = threading.Event()
        self._codec: Any = None  # the codec last seen, and whether it is Opus
        self._opus = False
        self.packets = 0
        self.dropped = 0

    def put(self, item: Any) -> None:
        if item is None:
            self._stopped.set()
            return
        codec, frame = item
        if codec is not self._codec:
            self._codec, self._opus = codec, codec.mimeType.lower() == "audio/opus"
        if not self._opus:
            self.dropped += 1
            return
        self.packets += 1
        self._sink(bytes(frame.data), int(frame.timestamp))

    def get(self, block: bool = True, timeout: float | None = None) -> None:
        # called only by aiortc's decoder thread: park it until the receiver stops
        self._stopped.wait(timeout)
        return None


def install_passthrough(pc: RTCPeerConnection, sink: Sink) -> PassthroughQueue:
    """Route the (single) audio receiver of `pc` to `sink`. Call after setRemoteDescription."""
    receivers = [t.receiver for t in pc.getTransceivers() if t.kind == "audio"]
    if len(receivers) != 1:
        raise ValueError("expected exactly one audio transceiver")
    receiver = receivers[0]
    if not hasattr(receiver, _QUEUE_ATTR):
        raise RuntimeError("aiortc internals changed: no decoder queue to replace")
    q = PassthroughQueue(sink)
    setattr(receiver, _QUEUE_ATTR, q)
    return q


class PacketTrack(MediaStreamTrack):
    """An audio track of pre-encoded Opus packets, fed by `push` (bounded; drops the oldest)."""

    kind = "audio"

    def __init__(self, max_queue: int = 50) -> None:
        super().__init__()
        self._queue: asyncio.Queue[av.Packet[Any] | None] = asyncio.Queue()
        self._max = max_queue
        self.sent = 0
        self.dropped = 0

    def push(self, payload: bytes, pts: int) -> None:
        if self.readyState != "live":
            return
        if self._queue.qsize() >= self._max:
            self._queue.get_nowait()
            self.dropped += 1
        p = av.Packet(payload)
        p.pts = pts
        p.time_base = TB
        self._queue.put_nowait(p)

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        p = await self._queue.get()
        if p is None:
            raise MediaStreamError
        self.sent += 1
        return p

    def stop(self) -> None:
        if self.readyState == "live":
            self._queue.put_nowait(None)
        super().stop()
