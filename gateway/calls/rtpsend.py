"""Send forwarded Opus straight from the receive callback, without aiortc's sender loop.

aiortc's `RTCRtpSender` sends a track's packets from a task of its own: per packet a
queue hand-off and a task wake-up, an `RtpPacket` object, two wall-clock reads for the
`abs-send-time` extension it builds for every packet (audio does not negotiate it), then
serialisation and a chain of four awaits down to the socket. For a bridge that forwards
already-encoded packets that is most of the gateway's CPU per call (profile in
docs/performance.md, "Calls per core").

`DirectRtpSender` writes the RTP header itself (RFC 3550 §5.1; the `sdes:mid` header
extension of RFC 8843 in the one-byte form of RFC 8285 when the answer negotiated it) with
the SSRC, payload type and MID our answer announced, and hands the packet to the leg's
DTLS transport, which protects it with the leg's SRTP keys (libsrtp) and writes it to the
nominated ICE pair. aiortc's sender stays attached to the leg with an idle track: it keeps
the SDP and answers RTCP (receiver reports, NACK, PLI); its sender reports go on, but with
zero packet and octet counts and no NTP/RTP timestamp pair, since nothing passed through
it (a browser shows them as the remote side's `remote-outbound-rtp` statistics; audio
playout does not use them).

One private aiortc name is used, `RTCDtlsTransport._send_rtp(data)`, and one behaviour:
the coroutine completes without suspending (aioice writes the datagram with a synchronous
`transport.sendto`). It is driven with `coroutine.send(None)` so no task is made per packet.
If either changes, `send` raises `DirectSendUnavailable` once and the caller falls back to
aiortc's own sender (`PacketTrack`); `tests/calls/test_rtpsend.py` fails loudly first.
"""

from __future__ import annotations

import logging
import random
import struct
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc import RTCDtlsTransport
from aiortc.sdp import SessionDescription

log = logging.getLogger(__name__)

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
_HEADER = struct.Struct("!BBHII")


class DirectSendUnavailable(RuntimeError):
    """aiortc no longer offers what the direct sender relies on."""


class AnswerError(ValueError):
    """The answer does not describe one Opus sender (no SSRC or no Opus payload type)."""


def rtp_head_parameters(answer_sdp: str) -> tuple[int, int, bytes]:
    """(SSRC, Opus payload type, header-extension block) of the one audio section of our answer.

    The extension block is b"" when the answer negotiated no `sdes:mid`, else the one-byte
    header form (0xBEDE, length in 32-bit words, the MID element, zero padding)."""
    desc = SessionDescription.parse(answer_sdp)
    audio = [m for m in desc.media if m.kind == "audio"]
    if len(audio) != 1:
        raise AnswerError("expected exactly one audio section")
    media = audio[0]
    if not media.ssrc:
        raise AnswerError("the answer announces no SSRC")
    opus = [c.payloadType for c in media.rtp.codecs if c.mimeType.lower() == "audio/opus"]
    if not opus or opus[0] is None:
        raise AnswerError("the answer has no Opus payload type")
    ext = b""
    mid = (media.rtp.muxId or "").encode()
    ids = [e.id for e in media.rtp.headerExtensions if e.uri == MID_URI]
    if mid and ids and 1 <= ids[0] <= 14 and len(mid) <= 16:
        element = bytes([(ids[0] << 4) | (len(mid) - 1)]) + mid
        element += b"\x00" * (-len(element) % 4)
        ext = b"\xbe\xde" + struct.pack("!H", len(element) // 4) + element
    return media.ssrc[0].ssrc, int(opus[0]), ext


class DirectRtpSender:
    """Sends Opus payloads of one leg as RTP through its DTLS transport, on the event loop.

    `send(payload, ts)` takes the payload and its RTP timestamp at 48 kHz (rebased, as the
    receive side hands them over); the sender adds its own random sequence and timestamp
    origins, as aiortc's sender does. Returns False while the leg's DTLS is not connected
    (the packet is dropped: a real-time bridge does not queue audio). Not thread-safe."""

    def __init__(self, dtls: RTCDtlsTransport, ssrc: int, payload_type: int, extension: bytes,
                 rand: Callable[[int], int] = random.getrandbits) -> None:
        send = getattr(dtls, "_send_rtp", None)
        if send is None:
            raise DirectSendUnavailable("aiortc's RTCDtlsTransport has no _send_rtp")
        self._send: Callable[[bytes], Coroutine[Any, Any, None]] = send
        self._ssrc = ssrc
        self._b1 = 0x90 if extension else 0x80  # version 2, X when there is an extension
        self._pt = payload_type & 0x7F
        self._ext = extension
        self._seq = rand(16)
        self._ts_origin = rand(32)
        self._first = True
        self.sent = 0
        self.dropped = 0
        self.errors = 0

    def send(self, payload: bytes, ts: int) -> bool:
        marker = 0x80 if self._first else 0  # RFC 3551 §4.1: the first packet of a talkspurt
        head = _HEADER.pack(self._b1, marker | self._pt, self._seq,
                            (self._ts_origin + ts) & 0xFFFFFFFF, self._ssrc)
        coro = self._send(head + self._ext + payload)
        try:
            coro.send(None)
        except StopIteration:
            pass
        except ConnectionError:  # DTLS not (or no longer) connected
            self.dropped += 1
            return False
        except Exception as exc:  # SRTP refused it (pylibsrtp.Error) or the socket failed: drop the packet
            self.dropped += 1
            self.errors += 1
            if self.errors == 1:
                log.warning("direct RTP send failed (%r); such packets are dropped and counted", exc)
            return False
        else:
            coro.close()
            raise DirectSendUnavailable("aiortc's _send_rtp suspended: it is no longer synchronous")
        self._first = False
        self._seq = (self._seq + 1) & 0xFFFF
        self.sent += 1
        return True
