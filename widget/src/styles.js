export const CSS = `
:host { all: initial; }
* { box-sizing: border-box; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.launcher { position: fixed; right: 20px; bottom: 20px; width: 60px; height: 60px; border-radius: 50%;
  border: none; background: var(--c); color: #fff; cursor: pointer; box-shadow: 0 4px 14px rgba(0,0,0,.25);
  display: flex; align-items: center; justify-content: center; z-index: 2147483000; padding: 0; }
.launcher:focus-visible, button:focus-visible, input:focus-visible, textarea:focus-visible { outline: 3px solid #ffbf47; outline-offset: 2px; }
.launcher svg { width: 28px; height: 28px; fill: currentColor; }
.badge { position: absolute; top: -4px; right: -4px; min-width: 22px; height: 22px; border-radius: 11px;
  background: #d93025; color: #fff; font-size: 12px; font-weight: 700; line-height: 22px; text-align: center; padding: 0 6px; }
.badge[hidden] { display: none; }
.panel { position: fixed; right: 20px; bottom: 92px; width: 360px; max-width: calc(100vw - 24px);
  height: 540px; max-height: calc(100vh - 110px); background: #fff; color: #1f2328; border-radius: 14px;
  box-shadow: 0 10px 40px rgba(0,0,0,.25); display: flex; flex-direction: column; overflow: hidden;
  z-index: 2147483000; font-size: 14px; line-height: 1.4; }
.panel[hidden] { display: none; }
.head { flex: none; background: var(--c); color: #fff; padding: 12px 14px; display: flex; align-items: center; gap: 8px; }
.head .t { flex: 1; min-width: 0; }
.head h2 { margin: 0; font-size: 16px; font-weight: 600; }
.head p { margin: 2px 0 0; font-size: 12px; opacity: .9; }
.actions { display: flex; gap: 4px; }
.icon { background: transparent; border: none; color: inherit; cursor: pointer; width: 34px; height: 34px;
  border-radius: 8px; display: inline-flex; align-items: center; justify-content: center; font-size: 18px; padding: 0; }
.icon:hover { background: rgba(255,255,255,.18); }
.icon svg { width: 20px; height: 20px; fill: currentColor; }
.status { font-size: 12px; padding: 6px 12px; background: #fff4ce; color: #5c4400; }
.status[hidden], .offline[hidden], .offline form[hidden], .typing[hidden], .note[hidden], .error[hidden] { display: none; }
.offline { background: #fdecea; color: #611a15; padding: 10px 12px; font-size: 13px; border-bottom: 1px solid #f5c6c2; }
.offline form { display: flex; gap: 6px; margin-top: 6px; }
.offline input { flex: 1; }
.body { position: relative; flex: 1; overflow-y: auto; padding: 12px; background: #f6f7f9; }
.greet { background: #fff; border-radius: 12px; padding: 10px 12px; margin-bottom: 10px; color: #444; }
.msg { display: flex; flex-direction: column; margin: 6px 0; max-width: 82%; }
.msg.me { margin-left: auto; align-items: flex-end; }
.bubble { padding: 8px 12px; border-radius: 14px; background: #fff; white-space: pre-wrap; overflow-wrap: anywhere;
  word-break: break-word; min-width: 0; max-width: 100%; box-shadow: 0 1px 1px rgba(0,0,0,.06); }
.me .bubble { background: var(--c); color: #fff; }
.bubble img { display: block; max-width: 220px; max-height: 200px; border-radius: 8px; margin: 4px 0; }
.bubble a { color: inherit; }
.meta { font-size: 11px; color: #57606a; margin-top: 2px; }
.msg[data-state="read"] .meta { color: var(--c); }
.typing, .note { font-size: 12px; color: #57606a; padding: 2px 14px 6px; background: #f6f7f9; }
.error { background: #fdecea; color: #8a1c12; font-size: 13px; padding: 8px 12px; }
form.composer { display: flex; align-items: flex-end; gap: 6px; padding: 8px; border-top: 1px solid #e3e5e8; background: #fff; }
textarea { flex: 1; resize: none; border: 1px solid #d0d4d9; border-radius: 10px; padding: 8px 10px; font-size: 14px;
  max-height: 100px; min-height: 38px; color: #1f2328; background: #fff; }
input { border: 1px solid #d0d4d9; border-radius: 8px; padding: 8px 10px; font-size: 14px; width: 100%; color: #1f2328; background: #fff; }
.composer .icon { color: #57606a; }
.composer .icon:hover { background: #eef0f3; }
.btn { background: var(--c); color: #fff; border: none; border-radius: 10px; padding: 9px 14px; font-size: 14px;
  cursor: pointer; font-weight: 600; text-transform: none; }
.prechat { padding: 16px; display: flex; flex-direction: column; gap: 10px; }
.prechat label { font-size: 13px; color: #444; display: flex; flex-direction: column; gap: 4px; }
.prechat .hint { color: #595959; font-weight: 400; }
.callbar { display: flex; align-items: center; gap: 8px; padding: 8px 12px; font-size: 13px; background: #e8f1fd; color: #0b3d7a; border-bottom: 1px solid #cfe0f7; }
.callbar[hidden], .hang[hidden] { display: none; }
.callbar .ct { flex: 1; }
.callbar[data-call="answered"] { background: #e6f4ea; color: #0d5224; }
.callbar[data-call="ended"] { background: #f6f7f9; color: #444; }
.hang { background: #d93025; padding: 6px 12px; }
.icon:disabled { opacity: .5; cursor: default; }
/* a phone: the open panel takes the whole screen (its header's close button closes it) */
@media (max-width: 480px) {
  .panel { inset: 0; right: 0; bottom: 0; width: 100vw; max-width: none; height: 100vh; height: 100dvh;
    max-height: none; border-radius: 0; }
  .panel:not([hidden]) ~ .launcher { display: none; }
}
.msg[data-state="failed"] .meta { color: #8a1c12; }
.msg[data-state="failed"] .bubble { opacity: .75; }
.link { background: none; border: none; padding: 0 2px; color: #0b4fa3; text-decoration: underline; cursor: pointer;
  font-size: 12px; font-weight: 600; text-transform: none; }
.count { font-size: 12px; color: #57606a; text-align: right; padding: 2px 12px 0; background: #fff; }
.count.full { color: #8a1c12; font-weight: 600; }
.count[hidden] { display: none; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.foot { display: flex; align-items: center; gap: 6px; margin-top: 2px; font-size: 11px; color: #57606a; }
.foot .meta { margin: 0; }
.avatar { width: 20px; height: 20px; border-radius: 50%; background: var(--c); color: #fff; font-size: 10px; font-weight: 700;
  display: inline-flex; align-items: center; justify-content: center; flex: none; }
.avatar:empty { display: none; }
.resolved { background: #fff; border-radius: 12px; padding: 10px 12px; margin: 10px 0 4px; color: #1f2328; }
.resolved[hidden], .rate[hidden], .thanks[hidden] { display: none; }
.resolved p { margin: 0 0 6px; }
.rate fieldset { border: none; margin: 0; padding: 0; }
.rate legend { font-weight: 600; padding: 0; margin-bottom: 4px; }
.stars { display: flex; gap: 2px; }
.star { cursor: pointer; font-size: 26px; line-height: 1; color: #8c959f; padding: 0 2px; border-radius: 6px; }
.star.on { color: #b35900; }
.star:focus-within { outline: 3px solid #ffbf47; }
.rate textarea { width: 100%; margin: 6px 0; }
.rate .error { margin: 0 0 6px; border-radius: 8px; }
.thanks { color: #0d5224; font-weight: 600; }
`;
