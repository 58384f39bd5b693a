"""Two aiortc endpoints (visitor, agent) call through a real in-process gateway."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest

from tests.calls.support import analyse_ogg, calls_of, endpoint, parties
from tests.support.waits import until


async def setup_parties(rg):
    p = await parties(rg)
    conv = (await p.visitor.call("conversation:start"))["conversation"]
    return p.tenant, p.agent_id, p.token, p.agent, p.visitor, conv


@pytest.mark.parametrize("call_gateway", ["direct", "aiortc"], indirect=True)
async def test_call_audio_both_ways_recorded(call_gateway):
    """Both media paths (CALL_RTP_SENDER): our direct RTP sender (the default) and aiortc's."""
    rg = call_gateway
    nt, agent_id, token, ag, v, conv = await setup_parties(rg)
    caller, callee = endpoint(440), endpoint(660)
    try:
        cfg = await v.call("call:config")
        assert cfg["ok"] and cfg["ice_servers"] == []
        ack = await v.call("call:start", {"conversation_id": conv["id"], "sdp": await caller.offer()}, timeout=10)
        assert ack["ok"], ack
        call_id = ack["call"]["id"]
        assert ack["call"]["state"] == "ringing" and ack["agents_available"] is True
        await caller.answer(ack["sdp"])
        await ag.wait_for(lambda: ag.of("call:ringing"))
        ringing = ag.of("call:ringing")[0]
        assert ringing["call"]["id"] == call_id and ringing["ice_servers"] == []

        offer = await callee.offer()
        before_accept = time.monotonic()
        acc = await ag.call("call:accept", {"call_id": call_id, "sdp": offer}, timeout=10)
        after_accept = time.monotonic()
        assert acc["ok"], acc
        assert acc["call"]["state"] == "answered" and acc["call"]["agent_id"] == agent_id
        await callee.answer(acc["sdp"])
        # audio both ways once both ends hear each other: 150 more frames each (20 ms each,
        # paced by the senders: 3 s of the call; polled, with a generous bound)
        await until(lambda: caller.frames > 10 and callee.frames > 10, timeout=60)
        f0 = (caller.frames, callee.frames)
        await until(lambda: caller.frames - f0[0] >= 150 and callee.frames - f0[1] >= 150, timeout=60)
        assert caller.loud_frames > 100 and callee.loud_frames > 100
        media = calls_of(rg).active[call_id].media
        direct = calls_of(rg).settings.direct_rtp
        assert all((leg.direct is not None) == direct for leg in media.legs.values())
        if direct:  # nothing went through aiortc's sender task
            assert all(leg.direct and leg.direct.sent > 150 and leg.outbound.sent == 0 for leg in media.legs.values())

        before_hangup = time.monotonic()
        hang = await v.call("call:hangup", {"call_id": call_id})
        after_hangup = time.monotonic()
        assert hang["ok"] and hang["call"]["state"] == "ended" and hang["call"]["end_reason"] == "caller_hangup"
        await v.wait_for(lambda: any(e["call"]["state"] == "ended" for e in v.of("call:updated")))
        states = [e["call"]["state"] for e in v.of("call:updated")]
        assert states == ["ringing", "answered", "ended"], states
        ended = v.of("call:updated")[-1]["call"]
        # answered while call:accept was under way, ended while call:hangup was (ms rounding)
        assert before_hangup - after_accept - 0.001 <= ended["duration"] <= after_hangup - before_accept + 0.001

        service = calls_of(rg)
        row = await service.store.get(nt.tenant.id, call_id)
        assert row and row.state == "ended" and row.recording_id and row.answered_at and row.ended_at
        rec = await service.recordings.row(nt.tenant.id, row.recording_id)
        assert rec.state == "complete" and rec.size > 1000 and rec.sha256
        blob = (Path(rg.gw.config.storage.data_dir) / "recordings" / rec.blob_key).read_bytes()
        assert b"OggS" not in blob and blob.startswith(b"age-encryption.org/v1")
        import hashlib

        assert hashlib.sha256(blob).hexdigest() == rec.sha256 and len(blob) == rec.size

        async with aiohttp.ClientSession() as http:
            r = await http.get(f"{rg.url}/api/v1/recordings/{rec.id}", headers={"Authorization": f"Bearer {token}"})
            assert r.status == 200 and r.headers["Content-Type"] == "audio/ogg"
            ogg = await r.read()
            r2 = await http.get(f"{rg.url}/api/v1/recordings/{rec.id}",
                                headers={"Authorization": f"Bearer {token}", "Range": "bytes=0-99"})
            assert r2.status == 206 and await r2.read() == ogg[:100]
            assert r2.headers["Content-Range"] == f"bytes 0-99/{len(ogg)}"
            other = await rg.tenant("Other")
            _, other_token = await rg.agent_token(other.tenant.id)
            r3 = await http.get(f"{rg.url}/api/v1/recordings/{rec.id}",
                                headers={"Authorization": f"Bearer {other_token}"})
            assert r3.status == 404
            r4 = await http.get(f"{rg.url}/api/v1/recordings/{rec.id}")
            assert r4.status == 401
        assert ogg.startswith(b"OggS")
        rep = analyse_ogg(ogg)
        assert rep.streams == ["caller", "agent"]
        total = ended["ended_at"] - ended["started_at"]
        for d in rep.durations:
            assert abs(d - total) < 1.0, (rep, total)
        assert abs(rep.peak_freqs[0] - 440) < 15 and abs(rep.peak_freqs[1] - 660) < 15, rep
        assert min(rep.loud_fraction) > 0.4, rep
    finally:
        await caller.close()
        await callee.close()
        await v.close()
        await ag.close()
