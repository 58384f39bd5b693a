// After an agent resolved the conversation: a notice to the visitor and the satisfaction
// rating (1-5 and an optional comment), once per resolution (`conversation:rate`,
// docs/protocol.md "Ratings"). A resolution is named by the conversation's last_seq.
import { el } from "./stream.js";
import { errorText } from "./i18n.js";

export class RatingUI {
  // w: the Widget (its t, call, conv, ls, k)
  constructor(w) {
    this.w = w;
    this.node = el("div", { class: "resolved", hidden: true });
  }

  // the notice and the form, made when first shown (most conversations never need them)
  build() {
    const t = this.w.t;
    this.notice = el("p", { class: "resolved-text", text: t("resolved") });
    this.stars = [1, 2, 3, 4, 5].map((n) => el("label", { class: "star" },
      el("input", { type: "radio", name: "izh-score", value: String(n), class: "visually-hidden", onchange: () => this.paint(n) }),
      el("span", { "aria-hidden": "true", text: "★" }), el("span", { class: "visually-hidden", text: t("stars", { n }) })));
    this.comment = el("textarea", { rows: "2", maxlength: "1000", "aria-label": t("rateComment"), placeholder: t("rateComment") });
    this.error = el("div", { class: "error", role: "alert", hidden: true });
    this.form = el("form", { class: "rate", onsubmit: (e) => { e.preventDefault(); this.submit(); } },
      el("fieldset", {}, el("legend", { text: t("rateTitle") }), el("div", { class: "stars" }, ...this.stars)),
      this.comment, this.error, el("button", { type: "submit", class: "btn", text: t("rateSend") }));
    this.thanks = el("p", { class: "thanks", text: t("rateThanks") });
    this.node.append(this.notice, this.form, this.thanks);
  }

  key() { const c = this.w.conv; return c ? this.w.k(`rated.${c.id}.${c.last_seq}`) : ""; }

  // shown while the conversation is resolved; the form until this resolution is rated
  render() {
    const c = this.w.conv;
    const resolved = !!c && c.status === "resolved";
    this.node.hidden = !resolved;
    if (!resolved) { if (this.form) { this.form.reset(); this.paint(0); } return; }
    if (!this.form) this.build();
    const rated = !!this.w.ls.getItem(this.key());
    this.form.hidden = rated;
    this.thanks.hidden = !rated;
  }

  // a rating stored (this tab's or another's: `conversation:rated`)
  rated(r) {
    const c = this.w.conv;
    if (!c || r.conversation_id !== c.id) return;
    this.w.ls.setItem(this.w.k(`rated.${c.id}.${r.seq}`), String(r.score));
    this.render();
  }

  paint(n) { this.stars.forEach((s, i) => s.classList.toggle("on", i < n)); }

  async submit() {
    const picked = this.form.querySelector("input[name=izh-score]:checked");
    const show = (msg) => { this.error.textContent = msg; this.error.hidden = !msg; };
    if (!picked) { show(this.w.t("rateNeedScore")); return; }
    show("");
    const c = this.w.conv;
    const comment = this.comment.value.trim();
    try {
      const ack = await this.w.call("conversation:rate", { conversation_id: c.id, score: Number(picked.value), ...(comment ? { comment } : {}) });
      if (ack.ok) { this.rated(ack.rating); return; }
      const reason = ack.error.details && ack.error.details.reason;
      if (reason === "already_rated") { this.rated({ conversation_id: c.id, seq: c.last_seq, score: 0 }); return; }
      show(reason === "not_resolved" ? this.w.t("rateNotResolved") : errorText(this.w.t, ack.error));
    } catch (e) {
      show(this.w.t("err_unavailable"));
    }
  }
}
