// The console's search (issue 32): a box above the conversation list; while it holds a
// query, the list's place shows the matching messages (snippets highlighted by the
// server: HTML-escaped text with <mark>s) and contacts, each page after the next with
// "More". Picking a message opens its conversation at that message; a contact opens its
// newest conversation.
import { el } from "./stream.js";

const $ = (id) => document.getElementById(id);

export class ConsoleSearch {
  // host: { call(event, payload) -> ack, show(conversationId, seq), contactConversation(contactId) -> id|null }
  constructor(host) {
    this.host = host;
    this.query = "";
    this.seq = 0;  // the newest search sent: older answers are dropped
  }

  attach() {
    const input = $("search");
    input.addEventListener("input", () => { clearTimeout(this.idle); this.idle = setTimeout(() => this.run(input.value.trim()), 250); });
    input.addEventListener("keydown", (e) => { if (e.key === "Escape") { input.value = ""; this.run(""); } });
  }

  get active() { return this.query !== ""; }

  async run(query) {
    this.query = query;
    const box = $("search-results");
    box.hidden = !query;
    $("convs").hidden = !!query;
    if (!query) { box.replaceChildren(); return; }
    const mine = ++this.seq;
    const [messages, contacts] = await Promise.all([this.host.call("search", { q: query, kind: "messages" }),
      this.host.call("search", { q: query, kind: "contacts", limit: 5 })]);
    if (mine !== this.seq) return;
    const msgList = el("ul", { class: "hits", "aria-label": "Matching messages" });
    const contactList = el("ul", { class: "hits", "aria-label": "Matching contacts" });
    box.replaceChildren(el("h3", { text: "Contacts" }), contactList, el("h3", { text: "Messages" }), msgList);
    this.fill(contactList, contacts, "contacts", query, mine);
    this.fill(msgList, messages, "messages", query, mine);
  }

  fill(list, page, kind, query, mine) {
    if (!page.ok) { list.append(el("li", { class: "err", text: page.error.message })); return; }
    if (!page.results.length && !list.children.length) list.append(el("li", { class: "none", text: "No match" }));
    for (const r of page.results) list.append(kind === "messages" ? this.messageHit(r) : this.contactHit(r));
    if (page.next_cursor) {
      const more = el("li", {}, el("button", { type: "button", class: "more", text: "More", onclick: async () => {
        const next = await this.host.call("search", { q: query, kind, cursor: page.next_cursor, limit: kind === "contacts" ? 5 : 20 });
        if (mine !== this.seq) return;
        more.remove();
        this.fill(list, next, kind, query, mine);
      } }));
      list.append(more);
    }
  }

  messageHit(r) {
    const snippet = el("div", { class: "snippet" });
    snippet.innerHTML = r.snippet;  // escaped by the server, only <mark> added
    const when = new Date(r.created_at * 1000).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
    return el("li", {}, el("button", { type: "button", "data-hit": r.id, onclick: () => this.host.show(r.conversation_id, r.seq) },
      el("div", { class: "row" }, el("span", { class: "name", text: r.contact_name || "Visitor" }), el("span", { class: "tag", text: when })),
      snippet));
  }

  contactHit(r) {
    const line = el("div", { class: "snippet" });
    line.innerHTML = [r.highlight.name, r.highlight.email, r.highlight.phone].filter(Boolean).join(" · ");  // escaped by the server
    return el("li", {}, el("button", { type: "button", "data-contact": r.id, onclick: async () => {
      const id = await this.host.contactConversation(r.id);
      if (id) this.host.show(id, null);
    } }, line));
  }
}
