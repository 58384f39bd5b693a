// IZICall in the agent console: incoming-call banner (call:ringing), Accept (the agent's
// WebRTC leg) / Decline, Hang up while connected, the end shown for a few seconds.
import { getMic, openLeg, rtpStats, fmtDur } from "./rtc.js";
import { el } from "./stream.js";

const REASONS = { missed: "missed", cancelled: "cancelled by the caller", declined: "declined", caller_hangup: "the caller hung up",
  agent_hangup: "hung up", connection_lost: "connection lost", max_duration: "maximum duration reached", shutdown: "server stopped" };

export class AgentCalls {
  // host: {call(event, payload) -> ack, label(conversationId) -> string, open(conversationId), me() -> agent}
  constructor(host) {
    this.h = host;
    this.ringing = new Map(); // call id -> {call, contact_id}
    this.active = null;       // Call we answered
    this.leg = null;
    this.ended = null;
    this.banner = el("section", { id: "call-banner", class: "callbanner", role: "region", "aria-label": "Calls", "aria-live": "assertive", hidden: true });
    const top = document.querySelector(".top");
    if (top) top.after(this.banner); else document.body.prepend(this.banner);
    window.__izhCallStats = async () => ({ state: this.active ? this.active.state : this.ringing.size ? "ringing" : "idle",
      call: this.active, ...(await rtpStats(this.leg && this.leg.pc)) });
  }

  attach(socket) {
    socket.on("call:ringing", (d) => { if (d.call.state === "ringing") { this.ringing.set(d.call.id, d); this.render(); } });
    socket.on("call:updated", (d) => this.onUpdate(d.call));
  }

  onUpdate(c) {
    if (this.active && c.id === this.active.id) {
      this.active = c;
      if (c.state === "ended") this.finish(c);
      this.render();
      return;
    }
    if (c.state === "ringing") return;
    if (this.ringing.delete(c.id)) this.render();
  }

  finish(c, msg) {
    if (this.leg) { this.leg.close(); this.leg = null; }
    this.active = null;
    clearInterval(this.tick);
    this.ended = msg || `Call ended${c && c.end_reason ? ` (${REASONS[c.end_reason] || c.end_reason})` : ""}${c && c.duration ? ` · ${fmtDur(c.duration)}` : ""}`;
    clearTimeout(this.endTimer);
    this.endTimer = setTimeout(() => { this.ended = null; this.render(); }, 8000);
    this.render();
  }

  async accept(id) {
    const d = this.ringing.get(id);
    if (!d || this.active) return;
    this.ringing.delete(id);
    this.active = { ...d.call, state: "connecting" };
    this.ended = null;
    this.render();
    try {
      const mic = await getMic();
      this.leg = await openLeg((ev, p) => this.h.call(ev, p), mic);
      const ack = await this.h.call("call:accept", { call_id: id, sdp: this.leg.offer });
      if (!ack.ok) {
        const taken = ack.error.code === "conversation_closed";
        return this.finish(null, taken ? "The call was answered by another agent or ended." : `Could not answer: ${ack.error.message || ack.error.code}`);
      }
      await this.leg.pc.setRemoteDescription({ type: "answer", sdp: ack.sdp });
      if (!this.active || this.active.state === "ended") return;
      this.active = ack.call;
      this.h.open(ack.call.conversation_id);
      this.render();
    } catch (e) {
      if (this.active) this.h.call("call:hangup", { call_id: id });
      this.finish(null, e && e.code === "mic" ? "Microphone access was refused: allow it to answer calls." : "Could not answer the call.");
    }
  }

  async decline(id) {
    this.ringing.delete(id);
    this.render();
    await this.h.call("call:decline", { call_id: id });
  }

  async hangup() {
    const c = this.active;
    if (!c) return;
    const ack = await this.h.call("call:hangup", { call_id: c.id });
    if (this.active && this.active.id === c.id) this.finish(ack.ok ? ack.call : null);
  }

  render() {
    const b = this.banner;
    const focusIn = b.contains(document.activeElement);
    const rows = [];
    const c = this.active;
    if (c) {
      const who = this.h.label(c.conversation_id);
      const txt = el("span", { class: "ct", text: c.state === "answered" ? `On call with ${who}` : `Connecting to ${who}…` });
      clearInterval(this.tick);
      if (c.state === "answered") {
        const t0 = c.answered_at ? c.answered_at * 1000 : Date.now();
        const upd = () => { txt.textContent = `On call with ${who} · ${fmtDur(Math.max(0, Date.now() - t0) / 1000)}`; };
        upd();
        this.tick = setInterval(upd, 1000);
      }
      rows.push(el("div", { class: "callrow", "data-call": c.state === "answered" ? "answered" : "connecting", "data-call-id": c.id }, txt,
        el("button", { type: "button", class: "btn hang", "data-action": "hangup", text: "Hang up", onclick: () => this.hangup() })));
    } else if (this.ended) {
      rows.push(el("div", { class: "callrow", "data-call": "ended" }, el("span", { class: "ct", text: this.ended })));
    }
    for (const [id, d] of this.ringing) {
      rows.push(el("div", { class: "callrow", "data-call": "ringing", "data-call-id": id },
        el("span", { class: "ct", text: `Incoming call from ${this.h.label(d.call.conversation_id)}` }),
        el("button", { type: "button", class: "btn accept", "data-action": "accept", text: "Accept", disabled: !!c, onclick: () => this.accept(id) }),
        el("button", { type: "button", class: "btn light", "data-action": "decline", text: "Decline", onclick: () => this.decline(id) })));
    }
    b.replaceChildren(...rows);
    b.hidden = rows.length === 0;
    if (focusIn || (rows.length && !c && this.ringing.size && !b.contains(document.activeElement) && document.activeElement === document.body)) {
      const f = b.querySelector("button:not([disabled])");
      if (f) f.focus();
    }
  }
}
