"""The direct RTP sender (gateway/calls/rtpsend.py): the header it writes, its counters and
its failure modes, and — against real aiortc peers on loopback — the one private name and
behaviour of aiortc it relies on (docs/architecture.md, "Names of dependencies we rely on")."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from gateway.calls.passthrough import PacketTrack, install_passthrough
from gateway.calls.rtpsend import MID_URI, AnswerError, DirectRtpSender, DirectSendUnavailable, rtp_head_parameters
from tests.support.waits import until, until_async

ANSWER = """v=0
o=- 1 1 IN IP4 0.0.0.0
s=-
t=0 0
a=group:BUNDLE 0
m=audio 9 UDP/TLS/RTP/SAVPF 96 0
c=IN IP4 0.0.0.0
a=sendrecv
a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=mid:0
a=msid:a b
a=rtcp:9 IN IP4 0.0.0.0
a=rtcp-mux
a=ssrc:3735928559 cname:x
a=rtpmap:96 opus/48000/2
a=rtpmap:0 PCMU/8000
a=ice-ufrag:abcd
a=ice-pwd:abcdefghijklmnopqrstuvwx
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF
a=setup:active
"""


class FakeDtls:
    """Stands in for RTCDtlsTransport: `_send_rtp` completes at once, or fails as told."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.fail: type[BaseException] | None = None

    async def _send_rtp(self, data: bytes) -> None:
        if self.fail is not None:
            raise self.fail("not connected")
        self.out.append(data)


def counter(start: int) -> Iterator[int]:
    yield start  # sequence origin
    yield 1000  # timestamp origin


def parse(data: bytes) -> RtpPacket:
    ext = HeaderExtensionsMap()
    ext.configure(RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=1, uri=MID_URI)]))
    return RtpPacket.parse(data, ext)


def test_head_parameters_from_the_answer():
    ssrc, pt, ext = rtp_head_parameters(ANSWER)
    assert (ssrc, pt) == (3735928559, 96)
    assert ext == b"\xbe\xde\x00\x01" + bytes([0x10]) + b"0" + b"\x00\x00"  # id 1, length 1, "0", padding
    no_mid = ANSWER.replace("a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\n", "")
    assert rtp_head_parameters(no_mid)[2] == b""
    with pytest.raises(AnswerError):
        rtp_head_parameters(ANSWER.replace("a=ssrc:3735928559 cname:x\n", ""))
    with pytest.raises(AnswerError):
        rtp_head_parameters(ANSWER.replace("a=rtpmap:96 opus/48000/2\n", "").replace(" 96 0", " 0"))


def test_the_header_it_writes_and_the_sequence_wrap():
    dtls = FakeDtls()
    ssrc, pt, ext = rtp_head_parameters(ANSWER)
    origins = counter(0xFFFE)
    s = DirectRtpSender(dtls, ssrc, pt, ext, rand=lambda bits: next(origins))  # type: ignore[arg-type]
    for i in range(3):
        assert s.send(bytes([0xFC, i]), i * 960)
    pkts = [parse(d) for d in dtls.out]
    assert [p.sequence_number for p in pkts] == [0xFFFE, 0xFFFF, 0]
    assert [p.timestamp for p in pkts] == [1000, 1960, 2920]
    assert [p.marker for p in pkts] == [1, 0, 0]  # the first packet of the stream starts a talkspurt
    assert {p.ssrc for p in pkts} == {ssrc} and {p.payload_type for p in pkts} == {96}
    assert [p.payload for p in pkts] == [b"\xfc\x00", b"\xfc\x01", b"\xfc\x02"]
    assert {p.extensions.mid for p in pkts} == {"0"}
    assert s.sent == 3 and s.dropped == 0
    # the RTP timestamp wraps modulo 2^32
    s.send(b"\xfc", 2**32 - 1000)
    assert parse(dtls.out[-1]).timestamp == 0


def test_without_mid_the_header_is_twelve_bytes():
    dtls = FakeDtls()
    s = DirectRtpSender(dtls, 7, 111, b"")  # type: ignore[arg-type]
    s.send(b"\xfc\x01", 0)
    assert len(dtls.out[0]) == 12 + 2 and dtls.out[0][0] == 0x80 and dtls.out[0][1] == 0x80 | 111


def test_a_leg_not_connected_drops_and_srtp_errors_are_counted(caplog: pytest.LogCaptureFixture):
    dtls = FakeDtls()
    s = DirectRtpSender(dtls, 7, 111, b"")  # type: ignore[arg-type]
    dtls.fail = ConnectionError
    assert s.send(b"\xfc", 0) is False and s.dropped == 1 and s.errors == 0
    dtls.fail = ValueError  # e.g. pylibsrtp.Error
    assert s.send(b"\xfc", 960) is False and s.dropped == 2 and s.errors == 1
    assert s.send(b"\xfc", 960) is False and s.errors == 2
    # the first failure is logged, not every packet's
    assert [r.levelname for r in caplog.records if "direct RTP send failed" in r.getMessage()] == ["WARNING"]
    dtls.fail = None
    assert s.send(b"\xfc", 1920) and s.sent == 1
    assert parse(dtls.out[0]).marker == 1  # no packet had gone out yet: this one starts the talkspurt


async def test_a_send_that_suspends_or_a_missing_name_is_refused_loudly():
    class Suspending:
        async def _send_rtp(self, data: bytes) -> None:
            await asyncio.sleep(0)

    s = DirectRtpSender(Suspending(), 7, 111, b"")  # type: ignore[arg-type]
    with pytest.raises(DirectSendUnavailable):
        s.send(b"\xfc", 0)
    with pytest.raises(DirectSendUnavailable):
        DirectRtpSender(object(), 7, 111, b"")  # type: ignore[arg-type]


async def _offer_answer(a: RTCPeerConnection, b: RTCPeerConnection) -> None:
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(RTCSessionDescription(a.localDescription.sdp, "offer"))


async def test_aiortc_sends_what_the_direct_sender_writes(loopback_ice: Any) -> None:
    """Real aiortc on both ends, on loopback: B answers, then sends Opus with
    `DirectRtpSender` through its DTLS transport's private `_send_rtp`, which must complete
    without suspending (aioice's synchronous `sendto`). A receives every packet in order, by
    RTP sequence number without a loss, with B's timestamps 960 apart. When an aiortc or
    aioice release changes that name or makes the send suspend, this fails (and calls fall
    back to aiortc's sender, `CALL_RTP_SENDER=aiortc` behaviour, with an error logged)."""
    a, b = RTCPeerConnection(), RTCPeerConnection()
    got: list[tuple[bytes, int]] = []
    try:
        a.addTrack(PacketTrack())
        await _offer_answer(a, b)
        b.addTrack(PacketTrack())
        install_passthrough(b, lambda payload, ts: None)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(RTCSessionDescription(b.localDescription.sdp, "answer"))
        # A's receiver after A's remote description: swap A's decoder queue for our sink now
        a_in = install_passthrough(a, lambda payload, ts: got.append((payload, ts)))
        (sender,) = [t.sender for t in b.getTransceivers() if t.kind == "audio"]
        direct = DirectRtpSender(sender.transport, *rtp_head_parameters(b.localDescription.sdp))
        await until(lambda: sender.transport.state == "connected", timeout=30)
        for i in range(60):
            assert direct.send(bytes([0xFC, i % 256]) + bytes(40), i * 960), direct.errors
            await asyncio.sleep(0)

        async def inbound() -> Any:
            stats = [s for s in (await a.getStats()).values() if getattr(s, "type", "") == "inbound-rtp"]
            return stats[0] if stats else None

        async def all_arrived() -> bool:
            s = await inbound()
            return s is not None and s.packetsReceived == 60

        await until_async(all_arrived, timeout=30)
        assert (await inbound()).packetsLost == 0
        # aiortc's jitter buffer releases a frame when later ones arrive: all but the last few
        assert len(got) >= 50
        assert [p[0][1] for p in got] == list(range(len(got)))
        assert [t1 - t0 for (_, t0), (_, t1) in itertools.pairwise(got)] == [960] * (len(got) - 1)
        assert a_in.packets == len(got) and direct.sent == 60 and direct.dropped == 0
    finally:
        await a.close()
        await b.close()
