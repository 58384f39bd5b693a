"""Small units: Opus TOC durations, the passthrough queue contract, Range parsing, settings, muxer gaps."""

from __future__ import annotations

import io
import threading
from types import SimpleNamespace

import pytest
from aiohttp import web

from gateway.calls.http import parse_range
from gateway.calls.passthrough import PassthroughQueue
from gateway.calls.settings import load_call_settings
from gateway.config import ConfigError
from recording.oggopus import FILLER, OggOpusMuxer, opus_packet_samples
from tests.calls.crash_writer import opus_packets
from tests.calls.support import analyse_ogg


def test_opus_toc_durations():
    assert opus_packet_samples(bytes([31 << 3])) == 960  # CELT FB 20 ms
    assert opus_packet_samples(bytes([(1 << 3) | 0])) == 960  # SILK NB 20 ms
    assert opus_packet_samples(bytes([(3 << 3) | 1])) == 2 * 2880  # SILK 60 ms x2
    assert opus_packet_samples(bytes([(16 << 3) | 3, 4])) == 4 * 120  # CELT 2.5 ms x4
    assert opus_packet_samples(b"") == 0
    assert opus_packet_samples(bytes([(3 << 3) | 3, 3])) == 0  # 180 ms > 120 ms: malformed


def test_passthrough_queue_contract():
    got = []
    q = PassthroughQueue(lambda payload, ts: got.append((payload, ts)))
    opus = SimpleNamespace(mimeType="audio/opus")
    q.put((opus, SimpleNamespace(data=b"\x01\x02", timestamp=960)))
    q.put((SimpleNamespace(mimeType="audio/PCMU"), SimpleNamespace(data=b"x", timestamp=0)))
    assert got == [(b"\x01\x02", 960)] and q.packets == 1 and q.dropped == 1
    # aiortc's decoder thread parks in get() until the receiver stops (put(None))
    done = threading.Event()

    def worker() -> None:
        q.get()
        done.set()

    t = threading.Thread(target=worker)
    t.start()
    assert not done.wait(0.05)
    q.put(None)
    t.join(2)
    assert done.is_set()


def test_parse_range():
    assert parse_range("bytes=0-99", 1000) == (0, 99)
    assert parse_range("bytes=900-", 1000) == (900, 999)
    assert parse_range("bytes=-100", 1000) == (900, 999)
    assert parse_range("bytes=0-5000", 1000) == (0, 999)
    for bad in ("bytes=1000-", "bytes=5-1", "items=0-1", "bytes=-"):
        with pytest.raises(web.HTTPRequestRangeNotSatisfiable):
            parse_range(bad, 1000)


def test_settings():
    s = load_call_settings({"CALL_RING_TIMEOUT": "5", "ICE_SERVERS": '[{"urls": "stun:stun.example.com:3478"},'
                            '{"urls": ["turn:t.example.com"], "username": "u", "credential": "p"}]'})
    assert s.ring_timeout == 5 and len(s.ice_servers) == 2 and s.recording_default
    assert s.ice_servers[1].to_dict() == {"urls": ["turn:t.example.com"], "username": "u", "credential": "p"}
    assert s.node_heartbeat == 15 and s.node_stale_after == 60
    assert load_call_settings({"CALL_NODE_HEARTBEAT": "2"}).node_stale_after == 8
    assert s.direct_rtp and not load_call_settings({"CALL_RTP_SENDER": "aiortc"}).direct_rtp
    for bad in ({"ICE_SERVERS": "nope"}, {"ICE_SERVERS": '[{"urls": "http://x"}]'}, {"CALL_RING_TIMEOUT": "-1"},
                {"RECORDING_DEFAULT": "maybe"}, {"CALL_NODE_HEARTBEAT": "0"}, {"CALL_NODE_HEARTBEAT": "soon"},
                {"CALL_RTP_SENDER": "fast"}):
        with pytest.raises(ConfigError):
            load_call_settings(bad)


def test_muxer_aligns_a_late_leg_and_fills_gaps():
    now = [0.0]
    buf = io.BytesIO()

    class W(io.RawIOBase):
        def writable(self):
            return True

        def write(self, b):
            buf.write(bytes(b))
            return len(b)

    mux = OggOpusMuxer(W(), ["caller", "agent"], lambda: now[0])
    pkts = opus_packets(200)
    for i, p in enumerate(pkts):  # 4 s of caller
        now[0] = i * 0.02
        if i == 100:
            continue  # one lost packet: filled
        mux.add(0, p, i * 960)
        if i >= 100:  # agent joins after 2 s
            mux.add(1, p, (i - 100) * 960 + 12345)
    mux.add(0, pkts[5], 5 * 960)  # late duplicate: dropped
    mux.close()
    (caller_pk, caller_fill), (agent_pk, agent_fill) = mux.stats()
    assert caller_pk == 199 and caller_fill == 1
    assert agent_pk == 99 and 95 <= agent_fill <= 102  # its packet 100 was skipped with the caller's
    rep = analyse_ogg(buf.getvalue())
    assert rep.streams == ["caller", "agent"]
    assert all(abs(d - 4.0) < 0.05 for d in rep.durations), rep
    assert FILLER == b"\xf8"


async def test_aiortc_still_has_the_decoder_queue_we_replace():
    """The one private name of a dependency we use (docs/architecture.md, "Names of
    dependencies we rely on"): an audio receiver, after setRemoteDescription, holds a
    `queue.Queue` under `_RTCRtpReceiver__decoder_queue` that its decoder thread reads.
    When an aiortc release renames or removes it, this fails (and so would every call)."""
    import queue

    from aiortc import RTCPeerConnection, RTCSessionDescription

    from gateway.calls.passthrough import _QUEUE_ATTR

    caller, callee = RTCPeerConnection(), RTCPeerConnection()
    try:
        caller.addTransceiver("audio", direction="sendrecv")
        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(RTCSessionDescription(caller.localDescription.sdp, "offer"))
        (receiver,) = [t.receiver for t in callee.getTransceivers() if t.kind == "audio"]
        assert isinstance(getattr(receiver, _QUEUE_ATTR, None), queue.Queue), \
            f"aiortc internals changed: {_QUEUE_ATTR} is gone; the Opus passthrough needs a new hook"
    finally:
        await caller.close()
        await callee.close()
