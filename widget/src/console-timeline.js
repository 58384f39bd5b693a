// Calls in the console's timeline: each ended call is a system entry in the conversation's
// stream whose client_id is the call's id (as a UUID; gateway/calls/timeline.py). This
// module finds the call of each such entry (`call:list` when a conversation opens, then
// `call:updated`) and shows its outcome, with an inline <audio> player of the recording
// of an answered call (fetched with the agent's token, played from a blob: URL).
import { el } from "./stream.js";

const CSS = `
.msg.system { max-width: 100%; align-items: center; }
.msg.system .bubble { background: #f1f3f4; color: #3c4043; box-shadow: none; font-size: 13px; }
.msg.call .bubble { border-left: 4px solid #188038; }
.msg.call[data-outcome="missed"] .bubble, .msg.call[data-outcome="declined"] .bubble { border-left-color: #d93025; }
.msg.call audio { display: block; margin-top: 6px; height: 32px; max-width: 300px; }
`;

export class Timeline {
  // `app`: the Console (call, current, stream); `token`: the agent's token getter
  constructor(app, token) {
    this.app = app;
    this.token = token;
    this.calls = new Map();   // call id -> call (of the open conversation)
    this.audio = new Map();   // recording id -> Promise<blob: URL | null>
  }

  mount() { document.head.append(el("style", { text: CSS })); }

  attachSocket(s) {
    s.on("call:updated", (ev) => {
      const c = ev && ev.call;
      if (!c || c.conversation_id !== this.app.current) return;
      this.calls.set(c.id, c);
      this.decorate();
    });
  }

  async opened(id) {
    this.calls.clear();
    const r = await this.app.call("call:list", { conversation_id: id });
    if (!r.ok || this.app.current !== id) return;
    for (const c of r.calls) this.calls.set(c.id, c);
    this.decorate();
  }

  callOf(m) {
    if (!m || m.author.type !== "system" || !m.client_id) return null;
    return this.calls.get(m.client_id.replace(/-/g, "")) || null;
  }

  decorate() {
    for (const node of document.querySelectorAll("#messages .msg.system:not([data-call])")) {
      const call = this.callOf(this.app.stream.bySeq.get(Number(node.dataset.seq)));
      if (!call || call.state !== "ended") continue;
      const outcome = call.answered_at ? "answered" : call.end_reason === "declined" ? "declined" : "missed";
      node.classList.add("call");
      node.dataset.call = call.id;
      node.dataset.outcome = outcome;
      const bubble = node.querySelector(".bubble");
      bubble.firstChild.textContent = `${outcome === "answered" ? "📞" : "☎️"} ${bubble.firstChild.textContent}`;
      if (outcome === "answered" && call.recording_id) bubble.append(this.player(call.recording_id));
    }
  }

  player(recordingId) {
    const audio = el("audio", { controls: true, preload: "metadata", "data-recording": recordingId, "aria-label": "Call recording" });
    let p = this.audio.get(recordingId);
    if (!p) {
      p = fetch(`/api/v1/recordings/${recordingId}`, { headers: { Authorization: `Bearer ${this.token()}` } })
        .then((r) => (r.ok ? r.blob() : null)).then((b) => (b ? URL.createObjectURL(b) : null)).catch(() => null);
      this.audio.set(recordingId, p);
    }
    p.then((u) => { if (u) audio.src = u; else audio.replaceWith(el("span", { class: "meta", text: "recording unavailable" })); });
    return audio;
  }
}
