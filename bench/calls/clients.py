"""Bench client process: N concurrent calls (visitor + agent aiortc endpoints) through a gateway.

Endpoints send pre-encoded Opus (one shared 20 ms ticker feeds every sender) and count what
they receive without decoding (the gateway's passthrough hook), so this process stays light.
Prints `window-start`, then `window-end`, then one JSON line with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
import socketio
from aiortc import RTCPeerConnection, RTCSessionDescription

from gateway.calls.ice import restrict_host_addresses
from gateway.calls.passthrough import PacketTrack, PassthroughQueue, install_passthrough


def opus_packets(freq: float, n: int = 50) -> list[bytes]:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "mono", "s16"
    enc.time_base = fractions.Fraction(1, 48000)
    out: list[bytes] = []
    for i in range(n):
        t = (np.arange(960) + i * 960) / 48000
        x = (np.sin(2 * np.pi * freq * t) * 8000).astype(np.int16).reshape(1, -1)
        fr = av.AudioFrame.from_ndarray(x, format="s16", layout="mono")
        fr.sample_rate, fr.pts, fr.time_base = 48000, i * 960, fractions.Fraction(1, 48000)
        out += [bytes(p) for p in enc.encode(fr)]
    return out


@dataclass
class End:
    pc: RTCPeerConnection
    track: PacketTrack
    inbound: PassthroughQueue | None = None
    sent: int = 0


@dataclass
class CallPair:
    visitor: End
    agent: End
    sockets: list[Any] = field(default_factory=list)
    call_id: str = ""


def new_end() -> End:
    pc = RTCPeerConnection()
    track = PacketTrack(max_queue=10)
    pc.addTrack(track)
    end = End(pc, track)
    end.inbound = install_passthrough(pc, lambda payload, ts: None)
    return end


async def offer(end: End) -> str:
    await end.pc.setLocalDescription(await end.pc.createOffer())
    return str(end.pc.localDescription.sdp)


async def ask(sio: socketio.AsyncClient, ns: str, ev: str, data: dict[str, Any]) -> dict[str, Any]:
    ack = await sio.call(ev, data, namespace=ns, timeout=30)
    if not ack.get("ok"):
        raise RuntimeError(f"{ev}: {ack}")
    return dict(ack)


async def place_call(url: str, key: str, agent: socketio.AsyncClient) -> CallPair:
    v = socketio.AsyncClient(reconnection=False)
    await v.connect(url, namespaces=["/visitor"], auth={"widget_key": key}, transports=["websocket"])
    conv = (await ask(v, "/visitor", "conversation:start", {}))["conversation"]
    pair = CallPair(new_end(), new_end(), [v])
    ack = await ask(v, "/visitor", "call:start", {"conversation_id": conv["id"], "sdp": await offer(pair.visitor)})
    await pair.visitor.pc.setRemoteDescription(RTCSessionDescription(ack["sdp"], "answer"))
    pair.call_id = ack["call"]["id"]
    acc = await ask(agent, "/agent", "call:accept", {"call_id": pair.call_id, "sdp": await offer(pair.agent)})
    await pair.agent.pc.setRemoteDescription(RTCSessionDescription(acc["sdp"], "answer"))
    return pair


async def ticker(ends: list[End], pkts: list[bytes], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    i = 0
    while not stop.is_set():
        payload = pkts[i % len(pkts)]
        for e in ends:
            e.track.push(payload, i * 960)
            e.sent += 1
        i += 1
        delay = t0 + i * 0.02 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)


async def inbound(end: End) -> Any | None:
    """The end's inbound RTP statistics (aiortc's `RTCInboundRtpStreamStats`), if any yet."""
    for s in (await end.pc.getStats()).values():
        if getattr(s, "type", "") == "inbound-rtp":
            return s
    return None


async def jitter_ms(end: End) -> float | None:
    s = await inbound(end)
    return float(s.jitter) / 48.0 if s is not None else None


async def rtp_lost(pairs: list[CallPair]) -> tuple[int, int]:
    """(packets lost, packets received) by RTP sequence number on every end's inbound stream:
    exact, unlike the sent/received counts at the window's edges."""
    lost = received = 0
    for p in pairs:
        for end in (p.visitor, p.agent):
            s = await inbound(end)
            if s is not None:
                lost += int(s.packetsLost)
                received += int(s.packetsReceived)
    return lost, received


def snapshot(pairs: list[CallPair]) -> tuple[int, int]:
    sent = sum(p.visitor.track.sent + p.agent.track.sent for p in pairs)
    got = sum((p.visitor.inbound.packets if p.visitor.inbound else 0)
              + (p.agent.inbound.packets if p.agent.inbound else 0) for p in pairs)
    return sent, got


async def main(url: str, key: str, token: str, n: int, window: float) -> dict[str, Any]:
    restrict_host_addresses(["127.0.0.1"])
    agent = socketio.AsyncClient(reconnection=False)
    await agent.connect(url, namespaces=["/agent"], auth={"token": token}, transports=["websocket"])
    await ask(agent, "/agent", "presence:set", {"status": "online"})
    t_setup = time.monotonic()
    pairs: list[CallPair] = []
    for start in range(0, n, 10):
        pairs += await asyncio.gather(*(place_call(url, key, agent) for _ in range(start, min(n, start + 10))))
    setup = time.monotonic() - t_setup
    stop = asyncio.Event()
    tick_v = asyncio.create_task(ticker([p.visitor for p in pairs], opus_packets(440), stop))
    tick_a = asyncio.create_task(ticker([p.agent for p in pairs], opus_packets(660), stop))
    for _ in range(100):  # wait until media flows on every leg
        if all(p.visitor.inbound and p.visitor.inbound.packets and p.agent.inbound and p.agent.inbound.packets
               for p in pairs):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    lost0, rtp0 = await rtp_lost(pairs)
    s0, g0 = snapshot(pairs)
    print("window-start", flush=True)
    await asyncio.sleep(window)
    s1, g1 = snapshot(pairs)
    print("window-end", flush=True)
    lost1, rtp1 = await rtp_lost(pairs)
    jit = [j for p in pairs for j in [await jitter_ms(p.visitor), await jitter_ms(p.agent)] if j is not None]
    stop.set()
    await asyncio.gather(tick_v, tick_a)
    # hang up and close
    for p in pairs:
        with contextlib.suppress(Exception):
            await ask(p.sockets[0], "/visitor", "call:hangup", {"call_id": p.call_id})
    for p in pairs:
        await p.visitor.pc.close()
        await p.agent.pc.close()
        for s in p.sockets:
            await s.disconnect()
    await agent.disconnect()
    sent, got = s1 - s0, g1 - g0
    return {"n": n, "setup_s": round(setup, 2), "window_s": window, "sent": sent, "received": got,
            # packets in flight at the window edges make this approximate (±1 packet per leg)
            "loss_pct": round(max(0.0, 100.0 * (1 - got / sent)) if sent else 0.0, 2),
            # lost by RTP sequence number on the gateway's outbound streams (exact)
            "rtp_lost": lost1 - lost0, "rtp_received": rtp1 - rtp0,
            "rtp_loss_pct": round(100.0 * (lost1 - lost0) / max(1, rtp1 - rtp0 + lost1 - lost0), 3),
            "jitter_ms_mean": round(sum(jit) / len(jit), 2) if jit else None,
            "jitter_ms_max": round(max(jit), 2) if jit else None}


def cli() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--window", type=float, default=10.0)
    a = ap.parse_args()
    res = asyncio.run(main(a.url, a.key, a.token, a.n, a.window))
    print(json.dumps(res), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    cli()
