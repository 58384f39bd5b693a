"""Mux already-encoded Opus packets of several legs into one Ogg file (one logical stream
per leg, titled e.g. `caller` / `agent`), without decoding or encoding audio.

PyAV needs an encoder-backed stream to write the OpusHead; it never receives a frame.
Granule positions advance by each packet's own duration (read from the TOC byte, RFC 6716
§3.1). Gaps (loss, DTX, a leg that starts later) are filled with 1-byte "lost frame"
packets so both legs stay aligned on the recording's wall clock; late or duplicate packets
are dropped.
"""

from __future__ import annotations

import fractions
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import av

TB = fractions.Fraction(1, 48000)
FRAME = 960  # 20 ms at 48 kHz
FILLER = bytes([31 << 3])  # CELT FB 20 ms, code 0, zero-length frame: decoder conceals
_CELT = (120, 240, 480, 960)
_SILK = (480, 960, 1920, 2880)
_HYBRID = (480, 960)
MAX_FILL = 48000 * 5 // FRAME  # never fill more than 5 s in one go (clock jump)
LAG_SAMPLES = 48000 // 2  # a leg silent for longer than this is filled up to (now - 0.5 s)


def opus_packet_samples(packet: bytes) -> int:
    """Duration of an Opus packet in 48 kHz samples (0 if malformed)."""
    if not packet:
        return 0
    toc = packet[0]
    config = toc >> 3
    if config < 12:
        size = _SILK[config % 4]
    elif config < 16:
        size = _HYBRID[config % 2]
    else:
        size = _CELT[config % 4]
    code = toc & 3
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        if len(packet) < 2:
            return 0
        frames = packet[1] & 0x3F
    total = size * frames
    return total if 0 < total <= 5760 else 0


@dataclass
class _Leg:
    stream: Any
    next_pts: int = 0  # granule of the next packet written
    rtp_origin: int | None = None  # RTP ts (rebased) that maps to `pts_origin`
    pts_origin: int = 0
    packets: int = 0
    fillers: int = 0


class OggOpusMuxer:
    def __init__(self, fileobj: Any, legs: Sequence[str], clock: Callable[[], float]) -> None:
        self._container = av.open(fileobj, mode="w", format="ogg")
        self._clock = clock
        self._t0 = clock()
        self._legs: list[_Leg] = []
        for name in legs:
            s = self._container.add_stream("libopus", rate=48000, layout="mono")
            s.metadata["title"] = name
            self._legs.append(_Leg(s))
        self._closed = False

    @property
    def duration(self) -> float:
        return max((leg.next_pts for leg in self._legs), default=0) / 48000

    def stats(self) -> list[tuple[int, int]]:
        return [(leg.packets, leg.fillers) for leg in self._legs]

    def _mux(self, leg: _Leg, data: bytes, samples: int) -> None:
        p = av.Packet(data)
        p.pts = p.dts = leg.next_pts
        p.duration = samples
        p.time_base = TB
        p.stream = leg.stream
        self._container.mux(p)
        leg.next_pts += samples

    def _fill_to(self, leg: _Leg, pts: int) -> None:
        n = min((pts - leg.next_pts) // FRAME, MAX_FILL)
        for _ in range(max(n, 0)):
            self._mux(leg, FILLER, FRAME)
            leg.fillers += 1

    def add(self, index: int, payload: bytes, rtp_ts: int) -> None:
        """One Opus packet of leg `index`; `rtp_ts` is its (rebased) RTP timestamp at 48 kHz."""
        if self._closed:
            return
        samples = opus_packet_samples(payload)
        if samples == 0:
            return
        leg = self._legs[index]
        if leg.rtp_origin is None:
            leg.rtp_origin = rtp_ts
            leg.pts_origin = max(leg.next_pts, int((self._clock() - self._t0) * 48000) // FRAME * FRAME)
        target = leg.pts_origin + (rtp_ts - leg.rtp_origin)
        if target < leg.next_pts:
            if target + samples <= leg.next_pts:
                return  # late or duplicate
        elif target - leg.next_pts >= FRAME:
            self._fill_to(leg, target)
        self._mux(leg, payload, samples)
        leg.packets += 1
        # keep silent legs moving so the muxer's interleaving never holds audio back
        horizon = int((self._clock() - self._t0) * 48000) - LAG_SAMPLES
        for other in self._legs:
            if other is not leg and other.next_pts + FRAME <= horizon:
                self._fill_to(other, horizon)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        end = max(leg.next_pts for leg in self._legs) if self._legs else 0
        for leg in self._legs:  # pad the shorter leg so both streams have the call's length
            self._fill_to(leg, end)
        self._container.close()
