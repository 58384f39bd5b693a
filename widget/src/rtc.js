// IZICall WebRTC leg shared by the widget (caller) and the console (agent): one audio
// track, a complete offer with ICE gathered (no trickle), the answer from the ack
// (docs/protocol.md "Calls (IZICall)").
export async function getMic() {
  const md = navigator.mediaDevices;
  if (!md || !md.getUserMedia || typeof RTCPeerConnection === "undefined") throw Object.assign(new Error("unsupported"), { code: "unsupported" });
  try {
    return await md.getUserMedia({ audio: true });
  } catch (e) {
    throw Object.assign(new Error(e && e.name), { code: "mic" });
  }
}

// ask(event, payload) -> ack; returns {pc, close, offer}
export async function openLeg(ask, mic) {
  const cfg = await ask("call:config", {}).catch(() => null);
  const pc = new RTCPeerConnection({ iceServers: (cfg && cfg.ok && cfg.ice_servers) || [] });
  for (const t of mic.getAudioTracks()) pc.addTrack(t, mic);
  const audio = new Audio();
  audio.autoplay = true;
  pc.ontrack = (ev) => { audio.srcObject = ev.streams[0] || new MediaStream([ev.track]); audio.play().catch(() => {}); };
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== "complete") {
    await new Promise((res) => {
      pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && res());
      setTimeout(res, 5000);
    });
  }
  const close = () => {
    try { pc.close(); } catch (e) { /* closed */ }
    for (const t of mic.getTracks()) t.stop();
    audio.srcObject = null;
  };
  return { pc, close, offer: pc.localDescription.sdp };
}

// inbound/outbound audio RTP counters (debug hook window.__izhCallStats)
export async function rtpStats(pc) {
  const out = { inbound: null, outbound: null };
  if (!pc) return out;
  (await pc.getStats()).forEach((r) => {
    if (r.kind !== "audio") return;
    if (r.type === "inbound-rtp") out.inbound = { packets: r.packetsReceived, lost: r.packetsLost, jitter: r.jitter, energy: r.totalAudioEnergy };
    if (r.type === "outbound-rtp") out.outbound = { packets: r.packetsSent };
  });
  return out;
}

export const fmtDur = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
