// Who wrote a message and when: agents' display names and initials (asked once per agent
// with `agent:profiles`, docs/protocol.md), and message times in the visitor's language.
import { el } from "./stream.js";

export class Profiles {
  // call(event, payload) -> Promise<ack>; changed() after names arrived
  constructor(call, changed) { this.call = call; this.changed = changed; this.known = new Map(); this.asked = new Set(); }

  get(id) { return this.known.get(id) || null; }

  // ask for the agents of `ids` not asked yet, in one request (retried when it fails)
  want(ids) {
    const fresh = [...new Set(ids)].filter((id) => id && !this.asked.has(id)).slice(0, 20);
    if (!fresh.length) return;
    for (const id of fresh) this.asked.add(id);
    this.call("agent:profiles", { ids: fresh }).then((ack) => {
      if (!ack.ok) throw new Error(ack.error.code);
      for (const a of ack.agents) this.known.set(a.id, a);
      if (ack.agents.length) this.changed();
    }).catch(() => { for (const id of fresh) this.asked.delete(id); });
  }
}

// "14:05", or "7 Dec, 14:05" when not today (the visitor's language and time zone)
export function fmtTime(lang, seconds) {
  const d = new Date(seconds * 1000);
  const today = new Date().toDateString() === d.toDateString();
  const opts = today ? { hour: "2-digit", minute: "2-digit" } : { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" };
  try { return d.toLocaleString(lang, opts); } catch (e) { return d.toLocaleString(undefined, opts); }
}

export function timeNode(lang, seconds) {
  return el("time", { class: "time", datetime: new Date(seconds * 1000).toISOString(), text: fmtTime(lang, seconds) });
}

export function avatarNode(profile) {
  return el("span", { class: "avatar", "aria-hidden": "true", text: profile ? profile.initials : "" });
}
