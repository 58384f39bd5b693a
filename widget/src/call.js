// IZICall in the widget: a "Call" header action and an in-panel call bar
// (calling → ringing → connected → ended) with a Hang up button.
import { getMic, openLeg, rtpStats, fmtDur } from "./rtc.js";
import { el } from "./stream.js";

const PHONE_ICON = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M6.6 10.8a15.1 15.1 0 0 0 6.6 6.6l2.2-2.2a1 1 0 0 1 1-.25 11.4 11.4 0 0 0 3.6.57 1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.45.57 3.57a1 1 0 0 1-.25 1z"/></svg>';
const RANK = { idle: 0, calling: 1, ringing: 2, answered: 3, ended: 4 };
const ENDED_HIDE = 10000;

export class CallUI {
  constructor(w) {
    this.w = w;
    this.state = "idle";
    this.call = null;   // Call object from the gateway
    this.leg = null;
    this.early = null;  // call:updated that arrived before the call:start ack
  }

  install() {
    const w = this.w, t = w.t;
    this.btn = w.addHeaderAction({ id: "call", label: t("call"), icon: PHONE_ICON, onClick: () => this.start() });
    this.text = el("span", { class: "ct" });
    this.hangBtn = el("button", { type: "button", class: "btn hang", "data-action": "hangup", text: t("hangUp"), onclick: () => this.hangup() });
    this.bar = el("div", { class: "callbar", role: "status", "aria-live": "polite", "data-call": "idle", hidden: true }, this.text, this.hangBtn);
    w.ui.status.after(this.bar);
    const watch = (s) => s.on("call:updated", (d) => this.onUpdate(d.call));
    if (w.socket) watch(w.socket);
    w.on("socket", watch);
    w.win.__izhCallStats = async () => ({ state: this.state, call: this.call, ...(await rtpStats(this.leg && this.leg.pc)) });
  }

  show(state, msg) {
    this.state = state;
    this.bar.hidden = state === "idle";
    this.bar.setAttribute("data-call", state);
    this.text.textContent = msg;
    this.hangBtn.hidden = state === "ended" || state === "idle";
    this.btn.disabled = state !== "idle" && state !== "ended";
    clearInterval(this.tick);
    clearTimeout(this.hideTimer);
    if (state === "ended") this.hideTimer = setTimeout(() => this.state === "ended" && this.show("idle", ""), ENDED_HIDE);
  }

  async start() {
    const w = this.w, t = w.t;
    if (this.state !== "idle" && this.state !== "ended") return;
    this.call = null; this.early = null;
    this.show("calling", t("calling"));
    this.hangBtn.focus();
    try {
      const mic = await getMic();
      if (this.state !== "calling") { for (const tr of mic.getTracks()) tr.stop(); return; }
      const conv = await w.ensureConversation();
      const ask = (ev, data) => w.call(ev, data, 15000);
      this.leg = await openLeg(ask, mic);
      if (this.state !== "calling") { this.cleanup(); return; }
      const ack = await ask("call:start", { conversation_id: conv.id, sdp: this.leg.offer });
      if (!ack.ok) throw Object.assign(new Error(ack.error.code), { code: ack.error.code });
      await this.leg.pc.setRemoteDescription({ type: "answer", sdp: ack.sdp });
      this.call = ack.call;
      if (this.state !== "calling") { ask("call:hangup", { call_id: ack.call.id }).catch(() => {}); this.cleanup(); return; }
      this.apply(this.early && this.early.id === ack.call.id && RANK[this.early.state] > RANK[ack.call.state] ? this.early : ack.call);
    } catch (e) {
      this.cleanup();
      const code = e && e.code;
      this.endWith(t(code === "mic" ? "micDenied" : code === "unsupported" ? "callUnsupported" : code === "limit_reached" ? "callBusy" : "callFailed"));
    }
  }

  onUpdate(c) {
    if (!this.call) { if (this.state === "calling") this.early = c; return; }
    if (c.id === this.call.id) this.apply(c);
  }

  apply(c) {
    const t = this.w.t;
    if (RANK[c.state] < RANK[this.state] && this.state !== "calling") return;
    this.call = c;
    if (c.state === "ringing") this.show("ringing", t("ringing"));
    else if (c.state === "answered") {
      this.show("answered", t("connected", { time: "0:00" }));
      const t0 = Date.now();
      this.tick = setInterval(() => { this.text.textContent = t("connected", { time: fmtDur((Date.now() - t0) / 1000) }); }, 1000);
    } else if (c.state === "ended") {
      this.cleanup();
      const r = c.end_reason;
      this.endWith(t(r === "missed" ? "callMissed" : r === "declined" ? "callDeclined" : r === "connection_lost" ? "callLost" : "callEnded",
        { time: fmtDur(c.duration || 0) }));
    }
  }

  endWith(msg) {
    const hadFocus = this.w.ui.panel.getRootNode().activeElement === this.hangBtn;
    this.show("ended", msg);
    if (hadFocus) this.btn.focus();
  }

  async hangup() {
    const c = this.call;
    if (!c || this.state === "calling") { this.cleanup(); this.endWith(this.w.t("callEnded", { time: "0:00" })); return; }
    try {
      const ack = await this.w.call("call:hangup", { call_id: c.id });
      if (ack.ok) { this.apply(ack.call); return; }
    } catch (e) { /* fall through: end locally */ }
    this.cleanup();
    this.endWith(this.w.t("callEnded", { time: "0:00" }));
  }

  cleanup() {
    if (this.leg) { this.leg.close(); this.leg = null; }
  }
}
