// The console's contact panel: the open conversation's contact — details, channel
// identities, conversations on every channel (`contact:profile`, one request) — and its
// edit form (PATCH /api/v1/contacts/{id}).
import { el } from "./stream.js";

const $ = (id) => document.getElementById(id);

const CSS = `
#contact-panel { width: 280px; background: #fff; border-left: 1px solid #e2e4e8; overflow-y: auto; padding: 12px 14px; font-size: 13px; }
#contact-panel[hidden] { display: none; }
#contact-panel h3 { font-size: 15px; margin: 0 0 6px; }
#contact-panel h4 { font-size: 12px; text-transform: uppercase; color: #667; margin: 14px 0 4px; }
#contact-panel dl { margin: 0; display: grid; grid-template-columns: auto 1fr; gap: 2px 8px; }
#contact-panel dt { color: #667; }
#contact-panel dd { margin: 0; overflow-wrap: anywhere; }
#contact-panel ul { list-style: none; margin: 0; padding: 0; }
#contact-panel li button { width: 100%; text-align: left; border: none; background: #f6f7f9; border-radius: 6px; padding: 5px 8px; margin: 2px 0; cursor: pointer; }
#contact-panel li button[aria-current="true"] { background: #eaf2ff; }
#contact-panel form label { display: block; margin: 6px 0 2px; color: #667; }
#contact-panel form input { width: 100%; padding: 5px; border: 1px solid #ccd; border-radius: 6px; }
#contact-panel .actions { display: flex; gap: 6px; margin-top: 8px; }
`;

const FIELDS = [["name", "Name", 200], ["email", "Email", 320], ["phone", "Phone", 40]];

export class ContactPanel {
  // `app`: the Console (call, contacts, convs, current, upsert, open, renderList, renderHead); `token`: getter
  constructor(app, token) {
    this.app = app;
    this.token = token;
    this.profile = null;
    this.editing = false;
  }

  mount() {
    document.head.append(el("style", { text: CSS }));
    $("app").append(el("section", { id: "contact-panel", "aria-label": "Contact", hidden: true }));
  }

  async opened(convId) {
    const c = this.app.convs.get(convId);
    const panel = $("contact-panel");
    if (!c) { panel.hidden = true; return; }
    panel.hidden = false;
    if (!this.profile || this.profile.contact.id !== c.contact_id) {
      this.editing = false;
      this.profile = { contact: this.app.contacts.get(c.contact_id) || { id: c.contact_id }, identities: [], conversations: [] };
    }
    this.render();
    const r = await this.app.call("contact:profile", { contact_id: c.contact_id });
    if (!r.ok || this.app.current !== convId) return;
    this.profile = r;
    this.app.contacts.set(r.contact.id, r.contact);
    this.render();
  }

  render() {
    const panel = $("contact-panel");
    const p = this.profile;
    if (!p) return;
    const ct = p.contact;
    const rows = [];
    for (const [k, label] of FIELDS) if (ct[k]) rows.push(el("dt", { text: label }), el("dd", { "data-field": k, text: ct[k] }));
    for (const [k, v] of Object.entries(ct.attributes || {})) rows.push(el("dt", { text: k }), el("dd", { text: typeof v === "string" ? v : JSON.stringify(v) }));
    panel.replaceChildren(
      el("h3", { text: ct.name || ct.email || "Visitor" }),
      this.editing ? this.form(ct) : el("div", {},
        rows.length ? el("dl", {}, ...rows) : el("div", { class: "meta", text: "No details yet" }),
        el("div", { class: "actions" }, el("button", { type: "button", class: "btn light", id: "contact-edit", text: "Edit", onclick: () => { this.editing = true; this.render(); } }))),
      el("h4", { text: "Channels" }),
      el("ul", { id: "contact-identities" }, ...p.identities.map((i) => el("li", { "data-kind": i.kind, text: `${i.kind}: ${i.kind === "visitor" ? `${i.value.slice(0, 8)}…` : i.value}` }))),
      el("h4", { text: "Conversations" }),
      el("ul", { id: "contact-conversations" }, ...p.conversations.map((c) => el("li", {},
        el("button", { type: "button", "data-conversation": c.id, "aria-current": String(c.id === this.app.current), onclick: () => this.openConversation(c) },
          el("div", { text: `${c.channel} · ${c.status} · ${new Date(c.updated_at * 1000).toLocaleDateString()}` }),
          c.subject ? el("div", { class: "subject", text: c.subject }) : null,
          el("div", { class: "preview", text: c.last_message ? c.last_message.text : "" }))))),
    );
  }

  form(ct) {
    const inputs = FIELDS.map(([k, label, max]) => [k, el("input", { id: `contact-${k}`, name: k, value: ct[k] || "", maxlength: String(max), type: k === "email" ? "email" : "text" }), label]);
    const err = el("div", { class: "err", role: "alert" });
    return el("form", { id: "contact-form", onsubmit: (e) => { e.preventDefault(); this.save(ct.id, inputs, err); } },
      ...inputs.flatMap(([k, input, label]) => [el("label", { for: `contact-${k}`, text: label }), input]), err,
      el("div", { class: "actions" }, el("button", { type: "submit", class: "btn", text: "Save" }),
        el("button", { type: "button", class: "btn light", text: "Cancel", onclick: () => { this.editing = false; this.render(); } })));
  }

  async save(contactId, inputs, err) {
    const body = {};
    for (const [k, input] of inputs) body[k] = input.value.trim() || null;
    const r = await fetch(`/api/v1/contacts/${contactId}`, { method: "PATCH", body: JSON.stringify(body),
      headers: { Authorization: `Bearer ${this.token()}`, "Content-Type": "application/json" } })
      .then((x) => x.json()).catch(() => ({ ok: false, error: { message: "network error" } }));
    if (!r.ok) { err.textContent = r.error.message; return; }
    this.editing = false;
    this.profile.contact = r.contact;
    this.app.contacts.set(r.contact.id, r.contact);
    this.render();
    this.app.renderList();
    this.app.renderHead();
  }

  openConversation(c) {
    if (!this.app.convs.has(c.id)) this.app.upsert({ ...c, readSeq: c.last_seq - (c.unread || 0) }, true);
    this.app.open(c.id);
  }
}
