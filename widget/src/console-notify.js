// The console's notifications while its tab is hidden: a sound and a desktop notification
// (Notification API) for a new conversation (unassigned or mine), a conversation assigned
// to me, and a contact's message in one of "Mine". Each event, the sound and the desktop
// notifications can be switched off; the choices are kept in localStorage. Desktop
// permission is asked when the agent switches desktop notifications on (a user gesture).
import { el } from "./stream.js";

const $ = (id) => document.getElementById(id);
const PREFS_KEY = "izh.console.notify";
const DEFAULTS = { sound: true, desktop: true, created: true, assigned: true, message: true };
const LABELS = [["created", "New conversations"], ["assigned", "Assigned to me"], ["message", "Messages in Mine"],
  ["sound", "Sound"], ["desktop", "Desktop notifications"]];

const CSS = `
#notify-menu { position: absolute; right: 16px; top: 46px; background: #fff; color: #1f2328; border: 1px solid #ccd; border-radius: 8px; padding: 8px 12px; box-shadow: 0 2px 10px rgba(0,0,0,.12); z-index: 10; }
#notify-menu[hidden] { display: none; }
#notify-menu label { display: flex; gap: 6px; align-items: center; padding: 3px 0; white-space: nowrap; }
#notify-menu .hint { font-size: 12px; color: #b3261e; }
`;

export class Notifier {
  // `app`: the Console (me, label, open)
  constructor(app) {
    this.app = app;
    this.prefs = { ...DEFAULTS };
    try { Object.assign(this.prefs, JSON.parse(localStorage.getItem(PREFS_KEY) || "{}")); } catch { /* defaults */ }
    this.audio = null;
  }

  mount() {
    document.head.append(el("style", { text: CSS }));
    const menu = el("div", { id: "notify-menu", role: "group", "aria-label": "Notifications", hidden: true },
      ...LABELS.map(([k, text]) => el("label", {}, el("input", { type: "checkbox", "data-pref": k, onchange: (e) => this.set(k, e.target.checked) }), text)),
      el("div", { class: "hint", id: "notify-hint", "aria-live": "polite" }));
    const button = el("button", { id: "notify", type: "button", "aria-label": "Notification settings", "aria-expanded": "false", text: "🔔",
      onclick: () => { menu.hidden = !menu.hidden; button.setAttribute("aria-expanded", String(!menu.hidden)); } });
    $("logout").before(button);
    document.body.append(menu);
    // sound needs an AudioContext made (or resumed) on a user gesture
    document.addEventListener("pointerdown", () => this.unlock(), { capture: true });
    document.addEventListener("keydown", () => this.unlock(), { capture: true });
    this.renderPrefs();
  }

  desktopAllowed() { return typeof Notification !== "undefined" && Notification.permission === "granted"; }

  renderPrefs() {
    for (const box of document.querySelectorAll("#notify-menu input[data-pref]")) {
      const k = box.dataset.pref;
      box.checked = k === "desktop" ? this.prefs.desktop && this.desktopAllowed() : !!this.prefs[k];
    }
    const hint = $("notify-hint");
    if (hint) hint.textContent = this.prefs.desktop && typeof Notification !== "undefined" && Notification.permission === "denied" ? "Desktop notifications are blocked in the browser" : "";
  }

  async set(k, on) {
    this.prefs[k] = on;
    localStorage.setItem(PREFS_KEY, JSON.stringify(this.prefs));
    if (k === "desktop" && on && typeof Notification !== "undefined" && Notification.permission === "default") {
      await Notification.requestPermission();  // on the checkbox's click: a user gesture
    }
    this.renderPrefs();
  }

  unlock() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    if (!this.audio) this.audio = new Ctx();
    if (this.audio.state === "suspended") this.audio.resume();
  }

  beep() {
    const a = this.audio;
    if (!a) return;
    const osc = a.createOscillator();
    const gain = a.createGain();
    osc.frequency.value = 880;
    gain.gain.value = 0.08;
    osc.connect(gain);
    gain.connect(a.destination);
    osc.start();
    osc.stop(a.currentTime + 0.18);
  }

  mine(c) { return !!(this.app.me && c.assignee_id === this.app.me.id); }

  // a conversation announced by `conversation:created`
  async created(c, known) {
    if (known || c.status === "resolved" || (c.assignee_id && !this.mine(c)) || !document.hidden) return;
    await this.app.contact(c.contact_id, c.id);  // its name, when it is not known yet (one request)
    this.raise("created", "New conversation", this.app.label(c), c.id);
  }

  // a known conversation changed: assigned to me now
  updated(old, c) {
    if (old.id === undefined || this.mine(old) || !this.mine(c) || c.status === "resolved") return;
    this.raise("assigned", "Assigned to you", this.app.label(c), c.id);
  }

  // a contact's message in one of mine (the console counts it in the title)
  message(c) {
    const m = c.last_message;
    this.raise("message", this.app.label(c), (m && m.text) || "📎", c.id);
  }

  raise(kind, title, body, convId) {
    if (!document.hidden || !this.prefs[kind]) return;
    if (this.prefs.sound) this.beep();
    if (!this.prefs.desktop || !this.desktopAllowed()) return;
    const n = new Notification(title, { body, tag: `izh-${kind}-${convId}` });
    n.onclick = () => { window.focus(); this.app.open(convId); n.close(); };
  }
}
