// The console's view of a conversation's satisfaction ratings (docs/protocol.md "Ratings"):
// read over REST when a conversation is opened, added live from `conversation:rated`.
import { el } from "./stream.js";

export class RatingsView {
  // box: the element to fill; token(): the agent's API token
  constructor(box, token) { this.box = box; this.token = token; this.conv = null; this.items = []; }

  async show(convId) {
    this.conv = convId; this.items = []; this.render();
    try {
      const r = await fetch(`/api/v1/conversations/${convId}/ratings`, { headers: { Authorization: `Bearer ${this.token()}` } });
      const j = await r.json();
      if (j.ok && this.conv === convId) { this.items = j.ratings; this.render(); }
    } catch (e) { /* shown when the next rating arrives */ }
  }

  added(r) {
    if (r.conversation_id !== this.conv || this.items.some((x) => x.seq === r.seq)) return;
    this.items.push(r); this.render();
  }

  render() {
    this.box.hidden = !this.items.length;
    this.box.replaceChildren(...this.items.map((r) => el("div", { class: "rating", "data-score": String(r.score) },
      el("span", { class: "stars", "aria-hidden": "true", text: "★".repeat(r.score) + "☆".repeat(5 - r.score) }),
      el("span", { class: "score", text: ` Rated ${r.score}/5` }),
      r.comment ? el("q", { text: r.comment }) : null,
      el("span", { class: "when", text: ` · ${new Date(r.created_at * 1000).toLocaleString([], { dateStyle: "short", timeStyle: "short" })}` }))));
  }
}
