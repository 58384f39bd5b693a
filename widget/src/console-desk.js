// The console's desk tools (gateway/desk): labels on conversations (chips, add/remove, the
// list's label filter), canned responses ("/shortcut" completion in the composer), read
// receipts of the agent's own messages, and attachments from the composer. The console
// (console.js) calls the hooks below; everything else lives here.
import { el, fmtSize } from "./stream.js";

const $ = (id) => document.getElementById(id);

const CSS = `
.labels { display: flex; flex-wrap: wrap; gap: 4px; align-items: center; padding: 4px 16px; background: #fff; border-bottom: 1px solid #e2e4e8; }
.chip { background: #eef1f6; color: #334; border-radius: 10px; padding: 0 8px; font-size: 12px; display: inline-flex; gap: 4px; align-items: center; }
.chip button { border: none; background: none; cursor: pointer; padding: 0; font-size: 12px; color: #667; }
.labels input { border: 1px solid #ccd; border-radius: 8px; padding: 2px 6px; font-size: 12px; width: 130px; }
.rowlabels { display: flex; gap: 3px; flex-wrap: wrap; margin-top: 2px; }
.labelfilter { padding: 6px 10px; border-bottom: 1px solid #e2e4e8; }
.labelfilter select { width: 100%; }
#canned { list-style: none; margin: 0; padding: 4px; background: #fff; border: 1px solid #ccd; border-radius: 8px; box-shadow: 0 2px 8px rgba(0,0,0,.1); max-height: 180px; overflow-y: auto; }
#canned[hidden] { display: none; }
#canned li { padding: 4px 8px; border-radius: 6px; cursor: pointer; }
#canned li[aria-selected="true"] { background: #eaf2ff; }
#canned .sc { font-weight: 600; margin-right: 6px; }
.receipt { margin-left: 4px; }
.receipt[data-read="true"] { color: #188038; font-weight: 600; }
.attach { cursor: pointer; align-self: center; font-size: 20px; padding: 0 4px; }
#attach-state { font-size: 12px; color: #666; padding: 0 16px; }
`;

export class Desk {
  // `app`: the Console (call, convs, current, me, renderList, upsert, send); `token`: the agent's token getter
  constructor(app, token) {
    this.app = app;
    this.token = token;
    this.labels = new Map();    // conversation id -> [label]
    this.names = [];            // the tenant's labels in use
    this.filterLabel = "";      // the list's label filter ("" = none)
    this.filterIds = null;      // ids carrying filterLabel (from the server, kept live)
    this.canned = [];
    this.cannedPick = 0;
    this.contactRead = 0;       // the visitor's read seq in the open conversation
  }

  // --- set-up -------------------------------------------------------------
  mount() {
    document.head.append(el("style", { text: CSS }));
    const filter = el("div", { class: "labelfilter" },
      el("select", { id: "label-filter", "aria-label": "Filter by label", onchange: (e) => this.setFilter(e.target.value) }));
    $("convs").before(filter);
    $("messages").before(el("div", { id: "labels", class: "labels", "aria-label": "Labels" }));
    const form = $("reply");
    form.before(el("ul", { id: "canned", role: "listbox", "aria-label": "Canned responses", hidden: true }));
    form.before(el("div", { id: "attach-state", "aria-live": "polite" }));
    const file = el("input", { type: "file", id: "attach-file", hidden: true, onchange: (e) => this.attachPicked(e.target) });
    form.prepend(el("label", { class: "attach", for: "attach-file", title: "Attach a file", "aria-label": "Attach a file", text: "📎" }), file);
    // capture: before the console's own Enter-sends handler
    form.addEventListener("keydown", (e) => this.cannedKey(e), true);
    $("reply-text").addEventListener("input", () => this.cannedShow());
    this.renderFilter();
  }

  attachSocket(s) {
    s.on("conversation:labels", (ev) => this.onLabels(ev));
    s.on("read", (ev) => this.onRead(ev));
  }

  api(path, init = {}) {
    return fetch(path, { ...init, headers: { ...(init.headers || {}), Authorization: `Bearer ${this.token()}` } })
      .then((r) => r.json().then((j) => ({ status: r.status, ...j }))).catch(() => ({ ok: false }));
  }

  // after the list is in: its conversations' labels (one request) and the canned responses
  async listed(ids) {
    const [r, c] = await Promise.all([this.app.call("label:list", { conversation_ids: ids.slice(0, 200) }),
      this.api("/api/v1/canned-responses")]);
    if (r.ok) { for (const [id, l] of Object.entries(r.labels)) this.labels.set(id, l); this.names = r.names; }
    if (c.ok) this.canned = c.canned_responses;
    this.renderFilter();
    this.app.renderList();
  }

  // --- labels -------------------------------------------------------------
  onLabels(ev) {
    this.labels.set(ev.conversation_id, ev.labels);
    for (const l of ev.labels) if (!this.names.includes(l)) { this.names.push(l); this.names.sort(); this.renderFilter(); }
    if (this.filterIds) {
      if (ev.labels.includes(this.filterLabel)) this.filterIds.add(ev.conversation_id);
      else this.filterIds.delete(ev.conversation_id);
    }
    this.app.renderList();
    if (ev.conversation_id === this.app.current) this.renderLabels();
  }

  matches(c) { return !this.filterIds || this.filterIds.has(c.id); }

  rowExtra(c) {
    const l = this.labels.get(c.id) || [];
    return l.length ? el("div", { class: "rowlabels" }, ...l.map((x) => el("span", { class: "chip", text: x }))) : null;
  }

  renderFilter() {
    const sel = $("label-filter");
    if (!sel) return;
    const names = this.filterLabel && !this.names.includes(this.filterLabel) ? [...this.names, this.filterLabel] : this.names;
    sel.replaceChildren(el("option", { value: "", text: "All labels" }), ...names.map((n) => el("option", { value: n, text: `🏷 ${n}` })));
    sel.value = this.filterLabel;
  }

  async setFilter(label) {
    this.filterLabel = label;
    if (!label) { this.filterIds = null; this.app.renderList(); return; }
    const r = await this.app.call("label:conversations", { label, limit: 200 });
    if (!r.ok || this.filterLabel !== label) return;
    this.filterIds = new Set(r.conversation_ids);
    // labelled conversations outside the loaded page are fetched (with their contact)
    for (const id of r.conversation_ids) {
      if (this.app.convs.has(id)) continue;
      const g = await this.app.call("conversation:get", { conversation_id: id });
      if (g.ok) { this.app.contacts.set(g.contact.id, g.contact); this.app.upsert(g.conversation, true); }
    }
    this.app.renderList();
  }

  renderLabels() {
    const id = this.app.current;
    const box = $("labels");
    if (!box || !id) return;
    const input = el("input", { id: "label-add", list: "label-names", placeholder: "+ label", "aria-label": "Add a label", maxlength: "40",
      onkeydown: (e) => { if (e.key === "Enter" && !e.isComposing) { e.preventDefault(); this.addLabel(id, input.value); } } });
    box.replaceChildren(...(this.labels.get(id) || []).map((l) => el("span", { class: "chip", "data-label": l }, l,
      el("button", { type: "button", "aria-label": `Remove label ${l}`, text: "×", onclick: () => this.removeLabel(id, l) }))),
    input, el("datalist", { id: "label-names" }, ...this.names.map((n) => el("option", { value: n }))));
  }

  async addLabel(id, label) {
    label = label.trim();
    if (!label) return;
    const r = await this.app.call("label:add", { conversation_id: id, label });
    if (r.ok) this.onLabels(r); else alert(r.error.message);
    const input = $("label-add");
    if (input) input.focus();
  }

  async removeLabel(id, label) {
    const r = await this.app.call("label:remove", { conversation_id: id, label });
    if (r.ok) this.onLabels(r);
  }

  // --- read receipts ------------------------------------------------------
  async opened(id) {
    this.contactRead = 0;
    this.renderLabels();
    const r = await this.app.call("conversation:reads", { conversation_id: id });
    if (!r.ok || this.app.current !== id) return;
    for (const x of r.reads) if (x.reader.type === "contact") this.contactRead = Math.max(this.contactRead, x.seq);
    this.decorate();
  }

  onRead(ev) {
    if (ev.conversation_id !== this.app.current || ev.reader.type !== "contact") return;
    if (ev.seq > this.contactRead) { this.contactRead = ev.seq; this.decorate(); }
  }

  // each of the agent's own messages says "Sent" or, once the visitor has read up to it, "Read"
  decorate() {
    for (const node of document.querySelectorAll("#messages .msg.agent")) {
      const read = Number(node.dataset.seq) <= this.contactRead;
      let r = node.querySelector(".receipt");
      if (!r) { r = el("span", { class: "receipt" }); node.querySelector(".meta").append(r); }
      if (r.dataset.read === String(read)) continue;
      r.dataset.read = String(read);
      r.textContent = read ? "· Read" : "· Sent";
    }
  }

  // --- canned responses ---------------------------------------------------
  cannedMatches() {
    const m = $("reply-text").value.match(/^\/([a-z0-9_-]*)$/i);
    if (!m) return [];
    const q = m[1].toLowerCase();
    return this.canned.filter((c) => c.shortcut.startsWith(q));
  }

  cannedShow() {
    const list = $("canned");
    const found = this.cannedMatches();
    list.hidden = !found.length;
    if (!found.length) return;
    this.cannedPick = Math.min(this.cannedPick, found.length - 1);
    list.replaceChildren(...found.map((c, i) => el("li", { role: "option", "data-shortcut": c.shortcut, "aria-selected": String(i === this.cannedPick),
      onmousedown: (e) => { e.preventDefault(); this.cannedUse(c); } }, el("span", { class: "sc", text: `/${c.shortcut}` }), c.text)));
  }

  cannedKey(e) {
    if (e.target.id !== "reply-text" || $("canned").hidden) return;
    const found = this.cannedMatches();
    if (!found.length) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      this.cannedPick = (this.cannedPick + (e.key === "ArrowDown" ? 1 : found.length - 1)) % found.length;
      this.cannedShow();
    } else if ((e.key === "Enter" || e.key === "Tab") && !e.isComposing) {
      this.cannedUse(found[this.cannedPick] || found[0]);
    } else if (e.key === "Escape") {
      $("canned").hidden = true;
    } else return;
    e.preventDefault();
    e.stopPropagation();
  }

  cannedUse(c) {
    const ta = $("reply-text");
    ta.value = c.text;
    this.cannedPick = 0;
    $("canned").hidden = true;
    ta.focus();
  }

  // --- attachments --------------------------------------------------------
  async attachPicked(input) {
    const file = input.files && input.files[0];
    input.value = "";
    if (!file || !this.app.current) return;
    const state = $("attach-state");
    state.textContent = `Uploading ${file.name} (${fmtSize(file.size)})…`;
    const r = await this.api(`/api/v1/uploads?name=${encodeURIComponent(file.name)}`, {
      method: "POST", headers: { "Content-Type": file.type || "application/octet-stream" }, body: file });
    if (!r.ok) { state.textContent = r.status === 413 ? `${file.name} is too large` : `Could not upload ${file.name}`; return; }
    state.textContent = "";
    const ta = $("reply-text");
    const text = ta.value.trim();
    ta.value = "";
    await this.app.send(text, [r.upload.id]);
  }
}
