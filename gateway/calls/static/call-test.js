"use strict";
const q = new URLSearchParams(location.search);
const role = q.get("role") || "visitor";
const logEl = document.getElementById("log");
const log = (...a) => { logEl.textContent += a.map((x) => typeof x === "string" ? x : JSON.stringify(x)).join(" ") + "\n"; };
const T = window.izicall = { role, ready: false, ringing: [], updates: [], callId: null, pc: null, error: null };
const auth = role === "agent" ? { token: q.get("token") } : { widget_key: q.get("key") };
const socket = io(location.origin + (role === "agent" ? "/agent" : "/visitor"), { auth, transports: ["websocket"] });
const ask = async (ev, data) => {
  const ack = await socket.timeout(15000).emitWithAck(ev, data);
  if (!ack.ok) throw new Error(ev + ": " + JSON.stringify(ack.error));
  return ack;
};
socket.on("call:ringing", (d) => { T.ringing.push(d); log("ringing", d.call.id); });
socket.on("call:updated", (d) => { T.updates.push(d.call); log("updated", d.call.state, d.call.end_reason || ""); });
socket.on("session", async () => {
  try {
    if (role === "agent") await ask("presence:set", { status: "online" });
    T.ready = true;
    log("ready", role);
  } catch (e) { T.error = String(e); log("error", T.error); }
});

async function peer() {
  const cfg = await ask("call:config", {});
  const pc = new RTCPeerConnection({ iceServers: cfg.ice_servers });
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  for (const t of stream.getAudioTracks()) pc.addTrack(t, stream);
  pc.ontrack = (ev) => { const a = new Audio(); a.srcObject = ev.streams[0] || new MediaStream([ev.track]); a.play().catch(() => {}); };
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== "complete") {
    await new Promise((res) => {
      pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && res());
      setTimeout(res, 5000);
    });
  }
  T.pc = pc;
  return pc;
}

T.start = async () => {
  const conv = (await ask("conversation:start", {})).conversation;
  const pc = await peer();
  const ack = await ask("call:start", { conversation_id: conv.id, sdp: pc.localDescription.sdp });
  T.callId = ack.call.id;
  await pc.setRemoteDescription({ type: "answer", sdp: ack.sdp });
  return T.callId;
};
T.accept = async (callId) => {
  const pc = await peer();
  const ack = await ask("call:accept", { call_id: callId, sdp: pc.localDescription.sdp });
  T.callId = ack.call.id;
  await pc.setRemoteDescription({ type: "answer", sdp: ack.sdp });
  return T.callId;
};
T.hangup = async () => (await ask("call:hangup", { call_id: T.callId })).call;
T.inbound = async () => {
  if (!T.pc) return null;
  let out = null;
  (await T.pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "audio") out = { packets: r.packetsReceived, lost: r.packetsLost, jitter: r.jitter, energy: r.totalAudioEnergy };
  });
  return out;
};
