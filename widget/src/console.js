// The agent console (/console): queue and conversations live, history, reply, typing,
// assign / transfer, resolve, presence. Token kept in sessionStorage.
import { io } from "socket.io-client";
import { Stream, el, fmtSize, uuid } from "./stream.js";
import { AgentCalls } from "./agentcall.js";
import { retryDelay, sleep } from "./retry.js";
import { RatingsView } from "./consoleratings.js";
import { arrowNav } from "./keys.js";
import { ConsoleSearch } from "./console-search.js";
import { OlderMessages } from "./console-history.js";
import { Desk } from "./console-desk.js";
import { Timeline } from "./console-timeline.js";
import { ContactPanel } from "./console-contact.js";
import { Notifier } from "./console-notify.js";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "izh.console.token";

class Console {
  constructor() {
    this.convs = new Map();     // id -> Conversation (+ unread, readSeq, preview)
    this.contacts = new Map();  // contact id -> Contact
    this.agents = [];
    this.filter = "queue";
    this.current = null;
    this.stream = new Stream();
    this.links = new Map();
    this.ratings = new RatingsView($("ratings"), () => sessionStorage.getItem(TOKEN_KEY));
    this.calls = new AgentCalls({
      call: (ev, p) => this.call(ev, p),
      label: (id) => { const c = this.convs.get(id); return c ? this.label(c) : "a visitor"; },
      open: (id) => { if (this.current !== id) this.open(id); },
    });
    const self = this;
    this.search = new ConsoleSearch({
      call: (ev, p) => this.call(ev, p),
      show: (id, seq) => this.show(id, seq),
      contactConversation: async (contactId) => {
        const r = await this.call("conversation:list", { contact_id: contactId, limit: 1 });
        return r.ok && r.conversations.length ? r.conversations[0].id : null;
      },
    });
    this.older = new OlderMessages({
      call: (ev, p) => this.call(ev, p),
      get stream() { return self.stream; },
      get current() { return self.current; },
      render: (keep) => this.renderMessages(keep),
    });
    this.desk = new Desk(this, () => sessionStorage.getItem(TOKEN_KEY));
    this.timeline = new Timeline(this, () => sessionStorage.getItem(TOKEN_KEY));
    this.contactPanel = new ContactPanel(this, () => sessionStorage.getItem(TOKEN_KEY));
    this.notifier = new Notifier(this);
  }

  // A contact's message in one of "Mine" while the tab is hidden counts in the title
  // ("(3) IZIHelp console"); the count is cleared when the tab is shown or focused again.
  notice(old, c) {
    if (!document.hidden || !this.me || c.assignee_id !== this.me.id || c.status === "resolved") return;
    const m = c.last_message;
    const added = (c.last_seq || 0) - (old.last_seq || 0);
    if (!m || m.author.type !== "contact" || added <= 0 || old.last_seq === undefined) return;
    this.hiddenUnread += added;
    this.renderTitle();
    this.notifier.message(c);
  }

  renderTitle() {
    document.title = this.hiddenUnread ? `(${this.hiddenUnread}) ${this.baseTitle}` : this.baseTitle;
  }

  seen() {
    if (document.hidden) return;
    this.hiddenUnread = 0;
    this.renderTitle();
    this.markRead();
  }

  boot() {
    this.baseTitle = document.title;
    this.hiddenUnread = 0;
    document.addEventListener("visibilitychange", () => this.seen());
    window.addEventListener("focus", () => this.seen());
    const m = location.hash.match(/token=([^&]+)/);
    if (m) { sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1])); history.replaceState(null, "", location.pathname); }
    $("login").addEventListener("submit", (e) => { e.preventDefault(); sessionStorage.setItem(TOKEN_KEY, $("token").value.trim()); this.connect(); });
    $("logout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); location.reload(); });
    $("presence").addEventListener("change", () => this.call("presence:set", { status: $("presence").value }));
    $("assign").addEventListener("change", () => this.assign());
    $("resolve").addEventListener("click", () => this.resolve());
    $("reply").addEventListener("submit", (e) => { e.preventDefault(); this.reply(); });
    $("reply-text").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.reply(); } });
    $("reply-text").addEventListener("input", () => { if (!$("note-mode").checked) this.typed(); });
    $("note-mode").addEventListener("change", () => {
      const on = $("note-mode").checked;
      $("reply").classList.toggle("note", on);
      $("reply-text").placeholder = on ? "Private note: agents only (Enter saves)" : "Type a reply… (Enter sends)";
      if (on) this.stopTyping();
    });
    this.search.attach();
    this.older.attach();
    for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => this.setFilter(b.dataset.filter));
    arrowNav(document.querySelector(".tabs"), "button", false);
    arrowNav($("convs"), "button", true);
    this.desk.mount();
    this.timeline.mount();
    this.contactPanel.mount();
    this.notifier.mount();
    if (sessionStorage.getItem(TOKEN_KEY)) this.connect(); else this.showLogin();
  }

  showLogin(msg) { $("login").hidden = false; $("app").hidden = true; $("login-error").textContent = msg || ""; $("token").focus(); }

  connect() {
    if (this.socket) this.socket.close();
    const token = sessionStorage.getItem(TOKEN_KEY);
    const s = (this.socket = io(`${location.origin}/agent`, { transports: ["websocket"], auth: { token } }));
    s.on("connect_error", (err) => { if (err.data) { s.close(); sessionStorage.removeItem(TOKEN_KEY); this.showLogin(err.message); } });
    s.on("session", () => this.onSession());
    s.on("conversation:created", (c) => { this.notifier.created(c, this.convs.has(c.id)); this.upsert(c); });
    s.on("conversation:updated", (c) => this.upsert(c));
    s.on("agent:presence", (a) => { const i = this.agents.findIndex((x) => x.id === a.id); if (i >= 0) this.agents[i] = a; else this.agents.push(a); if (this.me && a.id === this.me.id) $("presence").value = a.chosen_status || a.status; this.renderAssign(); });
    s.on("message:new", (m) => this.onMessage(m));
    s.on("conversation:rated", (r) => this.ratings.added(r));
    this.calls.attach(s);
    this.desk.attachSocket(s);
    this.timeline.attachSocket(s);
    s.on("typing", (ev) => { if (this.current && ev.conversation_id === this.current && ev.author.type === "contact") this.showTyping(ev.typing); });
  }

  call(event, payload) {
    return new Promise((resolve) => this.socket.timeout(10000).emit(event, payload, (err, ack) => resolve(err ? { ok: false, error: { code: "timeout" } } : ack)));
  }

  async onSession() {
    $("login").hidden = true; $("app").hidden = false;
    this.listed = false; // until the list (and its contacts) is in, live updates fetch no contact
    const [s, list, agents] = await Promise.all([this.call("session:get"), this.call("conversation:list", { limit: 200 }),
      this.call("agent:list")]);
    this.agents = agents.agents || [];
    const myId = s.agent ? s.agent.id : s.agent_id;
    this.me = this.agents.find((a) => a.id === myId) || s.agent || { id: myId, name: "", status: "online" };
    $("me").textContent = this.me.name;
    $("presence").value = this.me.chosen_status || this.me.status; // their choice (status: what others see)
    for (const ct of list.contacts || []) this.contacts.set(ct.id, ct);
    for (const c of list.conversations || []) this.upsert({ ...c, readSeq: c.last_seq - (c.unread || 0) }, true);
    this.listed = true;
    // only conversations that arrived live, outside the page listed, lack their contact
    for (const c of this.convs.values()) if (!this.contacts.has(c.contact_id)) this.contact(c.contact_id, c.id);
    this.renderList();
    this.desk.listed((list.conversations || []).map((c) => c.id));
    if (this.current) await this.open(this.current, true);
  }

  upsert(c, quiet) {
    const old = this.convs.get(c.id) || {};
    const merged = { ...old, ...c };
    if (merged.readSeq === undefined) merged.readSeq = 0;
    if (c.last_message) merged.preview = c.last_message.text || (c.last_message.attachments ? "📎" : "");
    if (!quiet) { this.notice(old, merged); this.notifier.updated(old, merged); }
    merged.unread = this.current === c.id ? 0 : Math.max(0, merged.last_seq - merged.readSeq);
    this.convs.set(c.id, merged);
    this.contact(merged.contact_id, c.id);
    if (!quiet) this.renderList();
    if (this.current === c.id) this.renderHead();
  }

  async contact(contactId, convId) {
    if (this.contacts.has(contactId) || !this.listed) return this.contacts.get(contactId);
    this.contacts.set(contactId, null);
    const r = await this.call("conversation:get", { conversation_id: convId });
    if (r.ok) { this.contacts.set(contactId, r.contact); this.renderList(); if (this.current === convId) this.renderHead(); }
    return r.contact;
  }

  label(c) {
    const ct = this.contacts.get(c.contact_id);
    return (ct && (ct.name || ct.email)) || `Visitor ${c.contact_id.slice(0, 6)}`;
  }

  matches(c) {
    if (!this.desk.matches(c)) return false;
    if (this.filter === "queue") return !c.assignee_id && c.status !== "resolved";
    if (this.filter === "mine") return c.assignee_id === (this.me && this.me.id) && c.status !== "resolved";
    if (this.filter === "pending") return c.status === "pending";
    return true;
  }

  setFilter(f) {
    this.filter = f;
    for (const b of document.querySelectorAll(".tabs button")) b.setAttribute("aria-selected", String(b.dataset.filter === f));
    this.renderList();
  }

  renderList() {
    const all = [...this.convs.values()].sort((a, b) => b.updated_at - a.updated_at);
    const counts = { queue: 0, mine: 0, pending: 0, all: all.length };
    const f = this.filter;
    for (const c of all) { for (const k of ["queue", "mine", "pending"]) { this.filter = k; if (this.matches(c)) counts[k]++; } }
    this.filter = f;
    for (const k of Object.keys(counts)) $(`count-${k}`).textContent = counts[k] ? `(${counts[k]})` : "";
    const ul = $("convs");
    ul.replaceChildren(...all.filter((c) => this.matches(c)).map((c) => el("li", {},
      el("button", { type: "button", "data-conversation": c.id, "aria-current": String(c.id === this.current), onclick: () => this.open(c.id) },
        el("div", { class: "row" }, el("span", { class: "name", text: this.label(c) }),
          c.unread ? el("span", { class: "unread", "aria-label": `${c.unread} unread`, text: String(c.unread) }) : null),
        c.subject ? el("div", { class: "subject", text: c.subject }) : null,
        el("div", { class: "preview", text: c.preview || "" }),
        this.desk.rowExtra(c),
        el("div", { class: "tag", text: `${c.channel} · ${c.status}${c.assignee_id ? "" : " · unassigned"}` })))));
  }

  renderHead() {
    const c = this.convs.get(this.current);
    if (!c) return;
    const ct = this.contacts.get(c.contact_id);
    $("conv-title").textContent = this.label(c) + (ct && ct.email && ct.name ? ` <${ct.email}>` : "");
    $("conv-subject").textContent = c.subject || "";
    $("conv-subject").hidden = !c.subject;
    $("resolve").textContent = c.status === "resolved" ? "Reopen" : "Resolve";
    this.renderAssign();
  }

  renderAssign() {
    const c = this.convs.get(this.current);
    if (!c) return;
    const sel = $("assign");
    sel.replaceChildren(el("option", { value: "", text: "— unassigned —" }),
      ...this.agents.map((a) => el("option", { value: a.id, text: `${a.name} (${a.status})` })));
    sel.value = c.assignee_id || "";
  }

  async open(id, reopen) {
    if (this.current && this.current !== id) this.call("conversation:unwatch", { conversation_id: this.current });
    if (this.current !== id || reopen) { this.stream.reset(null, 0); $("messages").replaceChildren(); }
    this.current = id;
    $("none").hidden = true;
    $("conv").hidden = false;
    this.showTyping(false);
    this.renderHead();
    this.ratings.show(id);
    const h = await this.call("messages:history", { conversation_id: id, limit: 100 });
    if (!h.ok || this.current !== id) return;
    this.stream.reset(h.epoch, h.messages.length ? h.messages[0].seq - 1 : h.last_seq);
    for (const m of h.messages) this.stream.add(m);
    await this.call("conversation:watch", { conversation_id: id, epoch: h.epoch, after_seq: this.stream.contiguous });
    this.renderMessages();
    this.markRead();
    this.renderList();
    this.desk.opened(id);
    this.timeline.opened(id);
    this.contactPanel.opened(id);
    $("reply-text").focus();
    await this.older.fill();
  }

  // a search hit: the conversation (fetched when not listed), scrolled to message `seq`
  async show(id, seq) {
    if (!this.convs.has(id)) {
      const r = await this.call("conversation:get", { conversation_id: id });
      if (!r.ok) return;
      this.contacts.set(r.contact.id, r.contact);
      this.upsert(r.conversation, true);
    }
    if (this.current !== id) await this.open(id);
    if (!seq || this.current !== id) return;
    while (this.stream.base >= seq && this.older.more) {
      const base = this.stream.base;
      await this.older.load();
      if (this.stream.base === base) break;
    }
    const node = $("messages").querySelector(`[data-seq="${seq}"]`);
    if (node) { node.scrollIntoView({ block: "center" }); node.classList.add("found"); setTimeout(() => node.classList.remove("found"), 2000); }
  }

  onMessage(m) {
    if (m.conversation_id !== this.current) return;
    if (this.stream.add(m) !== "added") return;
    if (m.author.type === "contact") this.showTyping(false);
    this.renderMessages();
    this.markRead();
  }

  markRead() {
    const c = this.convs.get(this.current);
    const seq = this.stream.contiguous;
    if (!c || !seq || document.hidden) return;
    if (seq > (c.readSeq || 0)) { c.readSeq = seq; this.call("read", { conversation_id: c.id, seq }); }
    c.unread = 0;
    this.renderList();
  }

  // new messages go in seq order (older pages before the first shown); `keepScroll`: the
  // messages in view stay in place (a page added above), else the box scrolls to the end
  renderMessages(keepScroll) {
    const box = $("messages");
    const have = new Map([...box.children].map((n) => [n.dataset.seq, n]));
    const height = box.scrollHeight, top = box.scrollTop;
    let next = box.firstElementChild;
    for (const m of this.stream.visible()) {
      const shown = have.get(String(m.seq));
      if (shown) { next = shown.nextElementSibling; continue; }
      const bubble = el("div", { class: "bubble" });
      if (m.text) bubble.append(el("div", { text: m.text }));
      for (const a of m.attachments || []) bubble.append(this.attachment(a));
      const agentName = () => (this.agents.find((a) => a.id === m.author.id) || { name: "Agent" }).name;
      const who = m.author.type === "agent" ? agentName() : m.author.type === "note" ? `Note · ${agentName()}` : m.author.type === "contact" ? "Visitor" : "System";
      const t = new Date(m.created_at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      box.insertBefore(el("div", { class: `msg ${m.author.type}`, "data-seq": String(m.seq) }, bubble, el("div", { class: "meta", text: `${who} · ${t}` })), next);
    }
    this.desk.decorate();
    this.timeline.decorate();
    box.scrollTop = keepScroll ? top + (box.scrollHeight - height) : box.scrollHeight;
  }

  attachment(a) {
    // a stored file (an upload, or a file a channel received) has an id: a signed link from
    // the download route; a channel's file kept only as its remote address (Messenger, Zalo)
    // is a plain link; an attachment with neither shows its name only
    const token = sessionStorage.getItem(TOKEN_KEY);
    let p = Promise.resolve(/^https?:\/\//.test(a.url || "") ? a.url : null);
    if (a.id) {
      p = this.links.get(a.id) || fetch(`/api/v1/uploads/${a.id}/link`, { headers: { Authorization: `Bearer ${token}` } })
        .then((r) => r.json()).then((j) => (j.ok ? j.url : null)).catch(() => null);
      this.links.set(a.id, p);
    }
    const name = a.name || a.kind || "file";
    if (a.id && /^image\/(png|jpeg|gif|webp)$/.test(a.mime_type || "")) {
      const img = el("img", { alt: name, "data-upload": a.id });
      p.then((u) => { if (u) img.src = u; });
      return img;
    }
    const size = a.size ? ` (${fmtSize(a.size)})` : "";
    const link = el("a", { href: "#", class: "file", "data-upload": a.id || "", target: "_blank", rel: "noopener", text: `📎 ${name}${size}` });
    p.then((u) => { if (u) link.href = u; else link.removeAttribute("href"); });
    return link;
  }

  async reply() {
    const ta = $("reply-text");
    const text = ta.value.trim();
    if (!text || !this.current) return;
    ta.value = "";
    await this.send(text, []);
  }

  // a message (text and/or upload ids) to the open conversation, retried like any reply
  async send(text, attachments) {
    if (!this.current) return;
    this.stopTyping();
    const client_id = uuid();
    const conversation_id = this.current;
    const event = $("note-mode").checked ? "note:send" : "message:send";  // a private note: agents only
    let refusals = 0;
    try {
      for (let i = 0; i < 5; i++) {
        const ack = await this.call(event, { conversation_id, client_id, text, ...(attachments.length ? { attachments } : {}) });
        if (ack.ok) { this.onMessage(ack.message); return; }
        if (ack.error.code === "timeout") continue;
        // `unavailable`: the same client_id again after retry_after and a backoff, shown as
        // "Retrying…"; any other error (`internal` included) is final
        const wait = retryDelay(ack, refusals++);
        if (wait === null) { alert(ack.error.message); return; }
        $("send-state").textContent = "Retrying…";
        await sleep(wait);
        i = -1; // a refusal is not a lost answer: the timeouts' count starts again
      }
    } finally {
      $("send-state").textContent = "";
    }
  }

  typed() {
    if (!this.current) return;
    const now = Date.now();
    if (!this.typingOn || now - this.typingAt > 2000) {
      this.typingOn = true; this.typingAt = now;
      this.socket.emit("typing", { conversation_id: this.current, typing: true }, () => {});
    }
    clearTimeout(this.typingIdle);
    this.typingIdle = setTimeout(() => this.stopTyping(), 3000);
  }

  stopTyping() {
    clearTimeout(this.typingIdle);
    if (this.typingOn && this.current) this.socket.emit("typing", { conversation_id: this.current, typing: false }, () => {});
    this.typingOn = false;
  }

  showTyping(on) {
    $("typing").textContent = on ? "Visitor is typing…" : "";
    clearTimeout(this.typingHide);
    if (on) this.typingHide = setTimeout(() => this.showTyping(false), 6000);
  }

  async assign() {
    if (!this.current) return;
    const v = $("assign").value || null;
    const ack = await this.call("conversation:assign", { conversation_id: this.current, agent_id: v });
    if (ack.ok) this.upsert(ack.conversation);
  }

  async resolve() {
    const c = this.convs.get(this.current);
    if (!c) return;
    const ack = await this.call("conversation:status", { conversation_id: c.id, status: c.status === "resolved" ? "open" : "resolved" });
    if (ack.ok) this.upsert(ack.conversation);
  }
}

new Console().boot();
