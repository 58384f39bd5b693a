// Entry of the widget bundle dist/widget.<hash>.js, which dist/loader.js (src/loader.js) adds
// to the page as a <script> carrying the embed snippet's data-* attributes.
import { Widget } from "./widget.js";

(function boot() {
  const script = document.currentScript || document.querySelector("script[data-widget-key]");
  if (!script) return;
  const cfg = (window.IZIHelp = window.IZIHelp || {});
  if (cfg.widget) return; // loaded twice
  const d = script.dataset;
  const identity = d.identityId && d.identityHash ? { id: d.identityId, hash: d.identityHash } : cfg.identity || null;
  const widget = new Widget({
    base: new URL(script.src, location.href).origin,
    widgetKey: d.widgetKey || cfg.widgetKey,
    lang: d.lang || cfg.lang || null,
    identity,
  });
  const api = widget.api();
  cfg.widget = api;
  // hook for other features (e.g. IZICall's "Call" button): IZIHelp.onReady(api => api.addHeaderAction({...}))
  const waiting = cfg.readyCallbacks || [];
  cfg.onReady = (fn) => { if (widget.ui) fn(widget.api()); else widget.on("ready", fn); };
  for (const fn of waiting) cfg.onReady(fn);
  const go = () => widget.start().catch((e) => console.error("IZIHelp widget", e));
  if (document.body) go(); else document.addEventListener("DOMContentLoaded", go);
})();
