// The IZIMessage widget: launcher + chat panel in a shadow root, one Socket.IO
// connection to /visitor (docs/protocol.md is the contract).
import { io } from "socket.io-client";
import { errorText, pickLang, systemText, translator } from "./i18n.js";
import { CSS } from "./styles.js";
import { CallUI } from "./call.js";
import { Stream, el, fmtSize, uuid } from "./stream.js";
import { retryDelay, sleep } from "./retry.js";
import { askAvailability, waiting, waitingText } from "./availability.js";
import { Profiles, avatarNode, timeNode } from "./people.js";
import { RatingUI } from "./rating.js";

const CHAT_ICON = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H8l-5 4V5a2 2 0 0 1 1-2z"/></svg>';
const CLIP_ICON = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M16.5 6.5 8.6 14.4a1.5 1.5 0 0 0 2.1 2.1l7.9-7.9a3 3 0 0 0-4.2-4.2l-8.3 8.3a4.5 4.5 0 0 0 6.4 6.4l7-7-1.4-1.4-7 7a2.5 2.5 0 0 1-3.6-3.6l8.3-8.3a1 1 0 0 1 1.4 1.4l-7.9 7.9-.1-.1z"/></svg>';
const TYPING_EVERY = 2000, TYPING_IDLE = 3000, TYPING_SHOW = 6000, SEND_TIMEOUT = 8000, GAP_WAIT = 1500;

export class Widget {
  // opts: {base, widgetKey, lang, identity, storage, win}
  constructor(opts) {
    this.o = opts;
    this.win = opts.win || window;
    this.ls = opts.storage || this.win.localStorage;
    this.k = (n) => `izh.${opts.widgetKey}.${n}`;
    this.settings = { title: "", greeting: "", color: "#0b63ce", lang: "auto", prechat: { enabled: true, name: "optional", email: "optional" } };
    this.maxUpload = 10 * 1024 * 1024;
    this.maxText = 4000;         // MAX_TEXT_CHARS, from the public settings
    this.socket = null;
    this.session = null;
    this.conv = null;            // VisitorConversation
    this.stream = new Stream();
    this.loaded = false;         // history of `conv` loaded and watched on this connection
    this.pending = new Map();    // client_id -> {client_id, text, attachments, state}
    this.states = new Map();     // client_id -> "sent" | "delivered"
    this.agentRead = 0;
    this.myRead = Number(this.ls.getItem(this.k("read")) || 0);
    this.agentsAvailable = true;
    this.availability = null; // the server's last word on a conversation waiting for an agent (availability.js)
    this.open = false;
    this.listeners = {};
    this.links = new Map();      // upload id -> signed URL promise
    this.nodes = new Map();
    this.profiles = new Profiles((ev, p) => this.call(ev, p), () => this.renderNames());
  }

  // --- public hooks (also for IZICall: a header action slot and events) -------------
  on(ev, fn) { (this.listeners[ev] ||= []).push(fn); return () => { this.listeners[ev] = this.listeners[ev].filter((f) => f !== fn); }; }
  emitLocal(ev, data) { for (const fn of this.listeners[ev] || []) { try { fn(data); } catch (e) { console.error(e); } } }
  addHeaderAction({ id, label, icon, onClick }) {
    const b = el("button", { type: "button", class: "icon", "aria-label": label, title: label, "data-action": id, onclick: onClick });
    if (icon) b.innerHTML = icon; else b.textContent = label;
    this.ui.actions.prepend(b);
    return b;
  }
  api() {
    return {
      on: (ev, fn) => this.on(ev, fn), addHeaderAction: (a) => this.addHeaderAction(a),
      getSocket: () => this.socket, getConversation: () => this.conv, getSession: () => this.session,
      ensureConversation: () => this.ensureConversation(), open: () => this.setOpen(true), close: () => this.setOpen(false),
      base: this.o.base, widgetKey: this.o.widgetKey, lang: this.lang,
    };
  }

  // --- start -----------------------------------------------------------------------
  async start() {
    try {
      const r = await fetch(`${this.o.base}/api/v1/public/widget/${encodeURIComponent(this.o.widgetKey)}/settings`);
      if (r.ok) { const j = await r.json(); this.settings = j.settings; this.maxUpload = j.max_upload_bytes; this.maxText = j.max_text_chars || this.maxText; }
    } catch (e) { /* defaults */ }
    this.lang = pickLang(this.o.lang, this.settings.lang === "auto" ? null : this.settings.lang, this.win.navigator.language);
    this.t = translator(this.lang);
    this.render();
    this.callUI = new CallUI(this);
    this.callUI.install();
    if (this.ls.getItem(this.k("token")) || this.o.identity) this.connect();
    this.win.addEventListener("storage", (e) => {
      if (e.key === this.k("token") && e.newValue && !this.socket) this.connect();
    });
    this.win.addEventListener("offline", () => { if (this.socket) this.socket.disconnect(); this.setConn("offline"); });
    this.win.addEventListener("online", () => { if (this.socket && !this.socket.connected) this.socket.connect(); });
    this.win.document.addEventListener("visibilitychange", () => this.markRead());
    this.emitLocal("ready", this.api());
  }

  // --- connection ------------------------------------------------------------------
  connect(extra) {
    if (this.socket) return;
    this.authExtra = extra || {};
    this.setConn("connecting");
    const s = io(`${this.o.base}/visitor`, {
      transports: ["websocket"],
      auth: (cb) => cb({
        widget_key: this.o.widgetKey, visitor_token: this.ls.getItem(this.k("token")) || undefined,
        identity: this.o.identity || undefined, ...this.authExtra,
      }),
    });
    this.socket = s;
    s.on("session", (sess) => this.onSession(sess));
    s.on("disconnect", () => { this.loaded = false; this.setConn(this.win.navigator.onLine === false ? "offline" : "connecting"); });
    s.on("connect_error", (err) => {
      if (err && err.data && err.data.code === "unauthorized" && this.ls.getItem(this.k("token"))) this.ls.removeItem(this.k("token"));
    });
    s.on("message:new", (m) => this.onMessage(m));
    s.on("message:updated", (m) => { if (this.conv && m.conversation_id === this.conv.id) { this.stream.update(m); this.renderMessages(); } });
    s.on("conversation:created", (c) => this.adopt(c));
    s.on("conversation:updated", (c) => { if (this.conv && c.id === this.conv.id) { this.conv = { ...this.conv, ...c }; if (c.assigned) this.agentsAvailable = true; this.renderOffline(); } });
    s.on("typing", (ev) => this.onTyping(ev));
    s.on("read", (ev) => this.onRead(ev));
    s.on("conversation:rated", (r) => this.rating.rated(r));
    s.on("conversation:availability", (a) => this.onAvailability(a));
    this.emitLocal("socket", s);
  }

  async onSession(sess) {
    this.session = sess;
    this.ls.setItem(this.k("token"), sess.visitor_token);
    this.emitLocal("session", sess);
    const storedId = this.ls.getItem(this.k("conv"));
    const convs = sess.conversations || [];
    const pick = convs.find((c) => c.id === (this.conv ? this.conv.id : storedId))
      || convs.slice().sort((a, b) => b.created_at - a.created_at)[0];
    if (pick) await this.adopt(pick, true);
    this.setConn("connected");
    this.flushPending();
  }

  setConn(state) {
    this.host.setAttribute("data-connection", state);
    // "Reconnecting…" while a visitor who was connected has no live socket (the network
    // is gone or the server restarting): their messages wait in "Sending…" meanwhile
    this.ui.status.hidden = (state !== "connecting" && state !== "offline") || !this.session;
  }

  call(event, payload, timeout = SEND_TIMEOUT) {
    return new Promise((resolve, reject) => {
      if (!this.socket) return reject(new Error("not connected"));
      this.socket.timeout(timeout).emit(event, payload, (err, ack) => (err ? reject(err) : resolve(ack)));
    });
  }

  // adopt a conversation (our own, or created in another tab) and load it
  async adopt(c, fromSession = false) {
    if (this.conv && this.conv.id !== c.id && !fromSession && c.created_at < this.conv.created_at) return;
    const same = this.conv && this.conv.id === c.id;
    this.conv = same ? { ...this.conv, ...c } : c;
    if (!same) { this.stream.reset(null, 0); this.loaded = false; }
    this.ls.setItem(this.k("conv"), c.id);
    if (!c.assigned && c.status !== "resolved") {
      this.agentsAvailable = false;
      if (fromSession || same) this.refreshAvailability(c.id);
    }
    this.renderOffline();
    this.showChat();
    await this.load();
    this.emitLocal("conversation", this.conv);
  }

  // first load: latest history then watch after it; after a reconnect: resume
  async load() {
    if (!this.socket || !this.socket.connected || this.loaded || !this.conv) return;
    this.loaded = true;
    const id = this.conv.id;
    try {
      if (this.stream.epoch !== null) {
        const ack = await this.call("resume", { conversations: [{ conversation_id: id, epoch: this.stream.epoch, seq: this.stream.contiguous }] });
        const r = ack.ok && ack.results[0];
        if (r && r.ok) { this.conv = { ...this.conv, ...r.conversation }; this.afterLoad(); return; }
        this.stream.reset(null, 0);
      }
      const h = await this.call("messages:history", { conversation_id: id, limit: 50 });
      if (!h.ok) throw new Error(h.error.code);
      this.stream.reset(h.epoch, h.messages.length ? h.messages[0].seq - 1 : h.last_seq);
      for (const m of h.messages) this.ingest(m);
      const w = await this.call("conversation:watch", { conversation_id: id, epoch: h.epoch, after_seq: this.stream.contiguous });
      if (!w.ok) throw new Error(w.error.code);
      this.conv = { ...this.conv, ...w.conversation };
      this.afterLoad();
    } catch (e) {
      this.loaded = false;
      setTimeout(() => this.load(), 1000);
    }
  }

  afterLoad() {
    this.savePos();
    this.renderMessages();
    this.renderOffline();
    this.markRead();
  }

  savePos() {
    if (this.conv) this.ls.setItem(this.k(`pos.${this.conv.id}`), JSON.stringify({ epoch: this.stream.epoch, seq: this.stream.contiguous }));
  }

  ingest(m) {
    const r = this.stream.add(m);
    if (r === "added" && m.client_id && this.pending.has(m.client_id)) this.pending.delete(m.client_id);
    if (m.client_id && m.author.type === "contact") this.states.set(m.client_id, "delivered");
    return r;
  }

  onMessage(m) {
    if (!this.conv || m.conversation_id !== this.conv.id) return;
    const r = this.ingest(m);
    if (r === "stale") { this.stream.reset(null, 0); this.loaded = false; this.load(); return; }
    if (r !== "added") return;
    if (this.stream.hasGap) this.fillGapSoon();
    this.savePos();
    this.renderMessages();
    if (m.author.type === "agent") { this.ui.typing.hidden = true; this.markRead(); this.announce(m); }
  }

  fillGapSoon() {
    if (this.gapTimer) return;
    this.gapTimer = setTimeout(async () => {
      this.gapTimer = null;
      if (!this.stream.hasGap || !this.conv) return;
      try {
        const h = await this.call("messages:history", { conversation_id: this.conv.id, after_seq: this.stream.contiguous, limit: 200 });
        if (h.ok) { for (const m of h.messages) this.ingest(m); this.savePos(); this.renderMessages(); }
      } catch (e) { /* next message retries */ }
    }, GAP_WAIT);
  }

  onTyping(ev) {
    if (!this.conv || ev.conversation_id !== this.conv.id || ev.author.type !== "agent") return;
    this.ui.typing.hidden = !ev.typing;
    clearTimeout(this.typingHide);
    if (ev.typing) this.typingHide = setTimeout(() => { this.ui.typing.hidden = true; }, TYPING_SHOW);
  }

  onRead(ev) {
    if (!this.conv || ev.conversation_id !== this.conv.id) return;
    if (ev.reader.type === "agent") { this.agentRead = Math.max(this.agentRead, ev.seq); this.renderMessages(); }
    else if (ev.seq > this.myRead) { this.myRead = ev.seq; this.ls.setItem(this.k("read"), String(ev.seq)); this.renderBadge(); }
  }

  markRead() {
    if (!this.open || this.win.document.hidden || !this.conv || !this.loaded) return;
    const last = this.stream.contiguous;
    if (last > this.myRead) {
      this.myRead = last;
      this.ls.setItem(this.k("read"), String(last));
      if (this.socket && this.socket.connected) this.socket.emit("read", { conversation_id: this.conv.id, seq: last }, () => {});
    }
    this.renderBadge();
  }

  // --- sending ---------------------------------------------------------------------
  ensureConversation() {
    if (this.conv) return Promise.resolve(this.conv);
    if (!this.starting) this.starting = this.startConversation().finally(() => { this.starting = null; });
    return this.starting;
  }

  async startConversation() {
    if (!this.socket) this.connect();
    await this.whenConnected();
    if (this.conv) return this.conv;
    const ack = await this.call("conversation:start", {});
    if (!ack.ok) throw Object.assign(new Error(ack.error.code), { refusal: ack.error });
    this.agentsAvailable = ack.agents_available;
    this.availability = ack;
    await this.adopt(ack.conversation, true);
    return this.conv;
  }

  whenConnected() {
    if (this.socket && this.socket.connected && this.session) return Promise.resolve();
    return new Promise((resolve) => { const off = this.on("session", () => { off(); resolve(); }); });
  }

  async send(text, attachments) {
    const client_id = uuid();
    const item = { client_id, text, attachments: attachments || [], created_at: Date.now() / 1000 };
    this.pending.set(client_id, item);
    this.renderMessages();
    this.stopTyping();
    await this.deliver(item);
  }

  async deliver(item) {
    let refusals = 0;
    for (;;) {
      try {
        const conv = await this.ensureConversation();
        const ack = await this.call("message:send", {
          conversation_id: conv.id, client_id: item.client_id, text: item.text, attachments: item.attachments.map((a) => a.id),
        });
        if (!ack.ok) {
          // `unavailable` (the server could not store it now): "retrying…", then the same
          // client_id again after the server's retry_after and a backoff; any other error is final
          const wait = retryDelay(ack, refusals++);
          item.retrying = wait !== null;
          if (wait === null) item.error = errorText(this.t, ack.error);
          this.renderMessages();
          if (wait === null) return;
          await sleep(wait);
          continue;
        }
        item.retrying = false;
        if (this.states.get(item.client_id) !== "delivered") this.states.set(item.client_id, "sent");
        this.onMessage(ack.message);
        this.renderMessages();
        return;
      } catch (e) {
        // the conversation could not be started: final, like a refused message
        if (e && e.refusal) { item.error = errorText(this.t, e.refusal); this.renderMessages(); return; }
        // timeout or disconnected: retry with the same client_id (idempotent) once connected
        await this.whenConnected();
      }
    }
  }

  // a failed message: send it again with its client_id (a copy the server stored after
  // all is answered as a duplicate), or drop it
  retry(clientId) {
    const item = this.pending.get(clientId);
    if (!item || !item.error) return;
    item.error = null;
    this.renderMessages();
    this.deliver(item);
  }

  discard(clientId) {
    const item = this.pending.get(clientId);
    if (!item || !item.error) return;
    this.pending.delete(clientId);
    this.renderMessages();
    this.ui.input.focus();
  }

  flushPending() { /* deliver() loops retry on their own after the session event */ }

  typed() {
    if (!this.conv || !this.socket || !this.socket.connected) return;
    const now = Date.now();
    if (!this.typingOn || now - this.typingAt > TYPING_EVERY) {
      this.typingOn = true; this.typingAt = now;
      this.socket.emit("typing", { conversation_id: this.conv.id, typing: true }, () => {});
    }
    clearTimeout(this.typingIdle);
    this.typingIdle = setTimeout(() => this.stopTyping(), TYPING_IDLE);
  }

  stopTyping() {
    clearTimeout(this.typingIdle);
    if (this.typingOn && this.conv && this.socket && this.socket.connected) {
      this.socket.emit("typing", { conversation_id: this.conv.id, typing: false }, () => {});
    }
    this.typingOn = false;
  }

  headers() {
    return { "X-Widget-Key": this.o.widgetKey, "X-Visitor-Token": this.ls.getItem(this.k("token")) || "" };
  }

  async attach(file) {
    this.showError("");
    if (file.size > this.maxUpload) { this.showError(this.t("tooLarge", { size: fmtSize(this.maxUpload) })); return; }
    await this.ensureConversation();
    this.ui.uploading.textContent = this.t("uploading", { name: file.name });
    this.ui.uploading.hidden = false;
    try {
      const r = await fetch(`${this.o.base}/api/v1/uploads?name=${encodeURIComponent(file.name)}`, {
        method: "POST", headers: { ...this.headers(), "Content-Type": file.type || "application/octet-stream" }, body: file,
      });
      const j = await r.json().catch(() => ({}));
      if (r.status === 413) { this.showError(this.t("tooLarge", { size: fmtSize(this.maxUpload) })); return; }
      if (!r.ok || !j.ok) { this.showError(this.t("uploadFailed")); return; }
      const text = this.ui.input.value.trim();
      this.ui.input.value = "";
      await this.send(text, [j.upload]);
    } catch (e) {
      this.showError(this.t("uploadFailed"));
    } finally {
      this.ui.uploading.hidden = true;
    }
  }

  link(id) {
    if (!this.links.has(id)) {
      this.links.set(id, fetch(`${this.o.base}/api/v1/uploads/${id}/link`, { headers: this.headers() })
        .then((r) => r.json()).then((j) => (j.ok ? j.url : null)).catch(() => null));
    }
    return this.links.get(id);
  }

  async saveContact(fields) {
    await fetch(`${this.o.base}/api/v1/public/widget/${encodeURIComponent(this.o.widgetKey)}/contact`, {
      method: "POST", headers: { ...this.headers(), "Content-Type": "application/json" }, body: JSON.stringify(fields),
    });
  }

  // --- UI --------------------------------------------------------------------------
  render() {
    const t = this.t;
    const host = el("div", { id: "izihelp-widget", "data-connection": "idle" });
    host.style.cssText = "all: initial !important; position: fixed !important; z-index: 2147483000 !important; right: 0 !important; bottom: 0 !important; width: 0 !important; height: 0 !important; display: block !important;";
    this.host = host;
    const root = host.attachShadow({ mode: "open" });
    const style = el("style", {}, CSS);
    const ui = (this.ui = {});
    ui.badge = el("span", { class: "badge", hidden: true, "aria-hidden": "true" });
    ui.launcher = el("button", { type: "button", class: "launcher", "aria-label": t("open"), "aria-expanded": "false", "aria-controls": "izh-panel", onclick: () => this.setOpen(!this.open) }, ui.badge);
    ui.launcher.insertAdjacentHTML("afterbegin", CHAT_ICON);
    ui.actions = el("div", { class: "actions", "data-slot": "header-actions" });
    const closeBtn = el("button", { type: "button", class: "icon", "aria-label": t("close"), title: t("close"), onclick: () => this.setOpen(false) }, "✕");
    ui.actions.append(closeBtn);
    const header = el("div", { class: "head" }, el("div", { class: "t" }, el("h2", { id: "izh-title", text: this.settings.title || t("title") }), el("p", { text: t("subtitle") })), ui.actions);
    ui.status = el("div", { class: "status", role: "status", hidden: true, text: t("reconnecting") });
    ui.offlineText = el("div", { class: "offline-text", text: t("offline") });
    ui.offlineEmail = el("input", { type: "email", "aria-label": t("email"), placeholder: t("email"), autocomplete: "email" });
    ui.offlineForm = el("form", { onsubmit: (e) => { e.preventDefault(); this.submitOfflineEmail(); } }, ui.offlineEmail, el("button", { type: "submit", class: "btn", text: t("save") }));
    ui.offline = el("div", { class: "offline", role: "status", hidden: true }, ui.offlineText, ui.offlineForm);
    ui.body = el("div", { class: "body", role: "log", "aria-live": "polite", "aria-label": t("messages"), tabindex: "0" });
    ui.greet = el("div", { class: "greet", text: this.settings.greeting || t("greeting") });
    ui.list = el("div", { class: "list" });
    this.rating = new RatingUI(this);
    ui.body.append(ui.greet, ui.list, this.rating.node);
    ui.typing = el("div", { class: "typing", hidden: true, "aria-live": "polite", text: t("typing") });
    ui.uploading = el("div", { class: "note uploading", hidden: true, role: "status" });
    ui.error = el("div", { class: "error", role: "alert", hidden: true });
    ui.count = el("div", { class: "count", id: "izh-count", hidden: true });
    ui.input = el("textarea", { rows: "1", "aria-label": t("placeholder"), placeholder: t("placeholder"),
      maxlength: String(this.maxText), "aria-describedby": "izh-count",
      oninput: () => { this.typed(); this.renderCount(); },
      onkeydown: (e) => { if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.submitText(); } } });
    ui.file = el("input", { type: "file", class: "visually-hidden", tabindex: "-1", "aria-hidden": "true",
      onchange: () => { const f = ui.file.files && ui.file.files[0]; ui.file.value = ""; if (f) this.attach(f); } });
    const clip = el("button", { type: "button", class: "icon attach", "aria-label": t("attach"), title: t("attach"), onclick: () => ui.file.click() });
    clip.innerHTML = CLIP_ICON;
    ui.composer = el("form", { class: "composer", onsubmit: (e) => { e.preventDefault(); this.submitText(); } },
      clip, ui.file, ui.input, el("button", { type: "submit", class: "btn send", text: t("send") }));
    ui.chat = el("div", { class: "chat", style: "display:flex;flex-direction:column;flex:1;min-height:0" },
      ui.offline, ui.body, ui.typing, ui.uploading, ui.error, ui.count, ui.composer);
    ui.prechat = this.renderPrechat();
    ui.panel = el("div", { class: "panel", id: "izh-panel", role: "dialog", "aria-modal": "false", "aria-labelledby": "izh-title", hidden: true,
      onkeydown: (e) => { if (e.key === "Escape") { e.stopPropagation(); this.setOpen(false); } } },
      header, ui.status, ui.prechat, ui.chat);
    ui.announce = el("div", { class: "visually-hidden", role: "status", "aria-live": "polite" });
    root.append(style, ui.panel, ui.launcher, ui.announce);
    style.textContent = CSS.replace(":host {", `:host { --c: ${this.settings.color}; `);
    this.win.document.body.append(host);
    this.showChat();
  }

  renderPrechat() {
    const t = this.t, pc = this.settings.prechat;
    const field = (key, type, auto) => {
      const mode = pc[key];
      if (mode === "off") return null;
      const input = el("input", { type, name: key, autocomplete: auto, required: mode === "required" });
      this.ui[`pre_${key}`] = input;
      return el("label", {}, el("span", {}, t(key), " ", el("span", { class: "hint", text: `(${t(mode)})` })), input);
    };
    this.ui.preError = el("div", { class: "error", role: "alert", hidden: true });
    return el("form", { class: "prechat", novalidate: true, onsubmit: (e) => { e.preventDefault(); this.submitPrechat(); } },
      el("p", { text: t("prechatIntro") }), field("name", "text", "name"), field("email", "email", "email"),
      this.ui.preError, el("button", { type: "submit", class: "btn", text: t("start") }));
  }

  needsPrechat() {
    return this.settings.prechat.enabled && !this.conv && !this.o.identity && !this.ls.getItem(this.k("prechat"))
      && (this.settings.prechat.name !== "off" || this.settings.prechat.email !== "off");
  }

  showChat() {
    const pre = this.needsPrechat();
    this.ui.prechat.hidden = !pre;
    this.ui.prechat.style.display = pre ? "" : "none";
    this.ui.chat.style.display = pre ? "none" : "flex";
  }

  async submitPrechat() {
    const pc = this.settings.prechat;
    const v = (k) => (this.ui[`pre_${k}`] ? this.ui[`pre_${k}`].value.trim() : "");
    const name = v("name"), email = v("email");
    const err = this.ui.preError;
    if ((pc.name === "required" && !name) || (pc.email === "required" && !email)) { err.textContent = this.t("fillRequired"); err.hidden = false; return; }
    if (email && !/^[^@\s]+@[^@\s]+$/.test(email)) { err.textContent = this.t("badEmail"); err.hidden = false; return; }
    err.hidden = true;
    this.ls.setItem(this.k("prechat"), "1");
    if (email) this.ls.setItem(this.k("email"), "1");
    const fields = {};
    if (name) fields.name = name;
    if (email) fields.email = email;
    if (this.socket && this.session) { if (name || email) this.saveContact(fields); } else this.connect(fields);
    this.showChat();
    this.ui.input.focus();
  }

  async submitOfflineEmail() {
    const email = this.ui.offlineEmail.value.trim();
    if (!/^[^@\s]+@[^@\s]+$/.test(email)) { this.ui.offlineEmail.focus(); return; }
    await this.saveContact({ email });
    this.ls.setItem(this.k("email"), "1");
    this.ui.offlineForm.hidden = true;
    this.ui.offlineText.dataset.saved = "1";
    this.ui.offlineText.textContent = this.t("saved");
  }

  // the characters left show from 90 % of the limit on (the textarea's maxlength stops
  // typing and pasting at the limit)
  renderCount() {
    const n = this.ui.input.value.length;
    this.ui.count.hidden = n < this.maxText * 0.9;
    this.ui.count.textContent = this.t("count", { n, max: this.maxText });
    this.ui.count.classList.toggle("full", n >= this.maxText);
  }

  submitText() {
    const text = this.ui.input.value.trim();
    if (!text) return;
    if (text.length > this.maxText) { this.showError(this.t("err_text_too_long", { limit: this.maxText })); return; }
    this.ui.input.value = "";
    this.renderCount();
    this.showError("");
    this.send(text);
  }

  showError(msg) { this.ui.error.textContent = msg; this.ui.error.hidden = !msg; }

  setOpen(open) {
    this.open = open;
    this.ui.panel.hidden = !open;
    this.ui.launcher.setAttribute("aria-expanded", String(open));
    this.ui.launcher.setAttribute("aria-label", open ? this.t("close") : this.t("open"));
    if (open) {
      const first = this.needsPrechat() ? this.ui.prechat.querySelector("input") : this.ui.input;
      (first || this.ui.input).focus();
      this.markRead();
      this.scrollDown();
    } else {
      this.ui.launcher.focus();
    }
    this.emitLocal(open ? "open" : "close");
  }

  // the server tells a waiting visitor where they stand as the queue moves (docs/protocol.md)
  onAvailability(a) {
    if (!a || !this.conv || a.conversation_id !== this.conv.id || this.conv.assigned) return;
    this.availability = a;
    this.agentsAvailable = a.agents === "available";
    this.renderOffline();
  }

  async refreshAvailability(convId) {
    const ack = await askAvailability((e, p) => this.call(e, p), convId);
    if (ack && this.conv && this.conv.id === convId) { this.availability = ack; this.renderOffline(); }
  }

  renderOffline() {
    const state = waiting(this.conv, this.agentsAvailable, this.availability);
    const show = state !== "available";
    this.ui.offline.hidden = !show;
    this.host.setAttribute("data-agents", show ? state : "available");
    if (show && !this.ui.offlineText.dataset.saved) this.ui.offlineText.textContent = waitingText(this.t, state, this.availability);
    this.ui.offlineForm.hidden = state === "busy" || (show && !!this.ls.getItem(this.k("email")));
    this.rating.render();
  }

  renderBadge() {
    let n = 0;
    for (const m of this.stream.visible()) if (m.author.type !== "contact" && m.seq > this.myRead) n++;
    this.ui.badge.hidden = n === 0;
    this.ui.badge.textContent = n > 99 ? "99+" : String(n);
    this.ui.launcher.setAttribute("aria-label", `${this.open ? this.t("close") : this.t("open")}${n ? ` (${this.t("unread", { n })})` : ""}`);
  }

  stateOf(m) {
    if (m.seq && m.seq <= this.agentRead) return "read";
    return this.states.get(m.client_id) || (m.seq ? "delivered" : "sending");
  }

  renderMessages() {
    const items = [...this.stream.visible()];
    const shown = new Set(items.map((m) => m.client_id).filter(Boolean));
    for (const p of this.pending.values()) if (!shown.has(p.client_id)) items.push(p);
    const keep = new Set();
    let prev = null;
    for (const m of items) {
      const key = m.client_id || `s${m.seq}`;
      keep.add(key);
      let node = this.nodes.get(key);
      if (!node) { node = this.messageNode(m); this.nodes.set(key, node); }
      const mine = !m.author || m.author.type === "contact";
      if (mine) {
        const st = m.seq ? this.stateOf(m) : (m.error ? "failed" : m.retrying ? "retrying" : "sending");
        if (node.getAttribute("data-state") !== st) {
          node.setAttribute("data-state", st);
          const meta = node.querySelector(".meta");
          if (st === "failed") {
            const id = m.client_id;
            meta.replaceChildren(el("span", { class: "why", role: "alert", text: `${this.t("failed")}: ${m.error}` }), " ",
              el("button", { type: "button", class: "link retry", text: this.t("retry"), onclick: () => this.retry(id) }), " ",
              el("button", { type: "button", class: "link delete", text: this.t("remove"), onclick: () => this.discard(id) }));
          } else meta.textContent = this.t(st);
        }
      }
      if (m.seq) node.setAttribute("data-seq", String(m.seq));
      if (prev ? prev.nextSibling !== node : this.ui.list.firstChild !== node) {
        if (prev) prev.after(node); else this.ui.list.prepend(node);
      }
      prev = node;
    }
    for (const [key, node] of this.nodes) if (!keep.has(key)) { node.remove(); this.nodes.delete(key); }
    this.profiles.want(items.filter((m) => m.author && m.author.type === "agent").map((m) => m.author.id));
    this.renderBadge();
    this.scrollDown();
  }

  // an agent's reply: its author's name (initials as the avatar) and time; the visitor's: time and state
  messageNode(m) {
    const mine = !m.author || m.author.type === "contact";
    const agentId = !mine && m.author.type === "agent" ? m.author.id : null;
    const bubble = el("div", { class: "bubble" });
    const text = m.author && m.author.type === "system" ? systemText(this.t, m.text) : m.text;
    if (text) bubble.append(el("div", { class: "text", text }));
    for (const a of m.attachments || []) bubble.append(this.attachmentNode(a));
    const who = mine ? this.t("you") : agentId !== null ? this.agentName(agentId) : "";
    const stamp = m.created_at ? timeNode(this.lang, m.created_at) : null;
    const meta = el("span", { class: "meta", text: mine ? "" : who });
    return el("div", { class: `msg ${mine ? "me" : "them"}`, "data-author": mine ? "contact" : m.author.type, "data-client-id": m.client_id, "data-agent-id": agentId },
      el("span", { class: "visually-hidden who", text: `${who}:` }), bubble,
      el("div", { class: "foot" }, agentId !== null ? avatarNode(this.profiles.get(agentId)) : null, ...(mine ? [stamp, meta] : [meta, stamp])));
  }

  // a reply while the panel is closed: read out by screen readers (the open panel's log is live itself)
  announce(m) { if (!this.open) this.ui.announce.textContent = `${this.agentName(m.author.id)}: ${m.text || this.t("attach")}`; }

  agentName(id) { const p = id && this.profiles.get(id); return p ? p.name : this.t("agent"); }

  // names and initials arrived (`agent:profiles`): label the agents' replies with them
  renderNames() {
    for (const node of this.ui.list.querySelectorAll(".msg[data-agent-id]")) {
      const id = node.getAttribute("data-agent-id"), p = this.profiles.get(id);
      if (!p) continue;
      node.querySelector(".who").textContent = `${p.name}:`;
      node.querySelector(".meta").textContent = p.name;
      node.querySelector(".avatar").textContent = p.initials;
    }
  }

  attachmentNode(a) {
    const isImg = /^image\/(png|jpeg|gif|webp)$/.test(a.mime_type);
    if (isImg) {
      const img = el("img", { alt: a.name, "data-upload": a.id });
      this.link(a.id).then((u) => { if (u) img.src = u; });
      return img;
    }
    const link = el("a", { class: "file", href: "#", "data-upload": a.id, target: "_blank", rel: "noopener", text: `📎 ${a.name} (${fmtSize(a.size)})` });
    this.link(a.id).then((u) => { if (u) link.href = u; });
    return link;
  }

  scrollDown() { this.ui.body.scrollTop = this.ui.body.scrollHeight; }
}
