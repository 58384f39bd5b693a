// Entry of dist/loader.js, the one URL sites embed and the only one cached briefly:
//   <script src="https://GATEWAY/widget/loader.js" data-widget-key="wk_…" async>
// It adds the widget bundle, whose name carries a hash of its content (cached for good), as
// a script beside it with the same data-* attributes (src/main.js reads them from there).
/* global __WIDGET_FILE__ */
(function load() {
  const me = document.currentScript || document.querySelector("script[data-widget-key]");
  if (!me || (window.IZIHelp && window.IZIHelp.widget)) return;
  const s = document.createElement("script");
  s.src = new URL(__WIDGET_FILE__, me.src).href;
  s.async = true;
  for (const k of Object.keys(me.dataset)) s.dataset[k] = me.dataset[k];
  (document.head || document.documentElement).appendChild(s);
})();
