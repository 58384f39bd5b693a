// One load-generator process on the stock npm socket.io-client, driven by JSON lines on
// stdin; answers with JSON lines on stdout. Usage: node worker.mjs '<json options>'
//   options: { url, localAddress, flavor }
// Commands:
//   {cmd:"watchers", ns, auth, count, conv}      open `count` sockets, each watches `conv`
//   {cmd:"idle", ns, auth, count}                open `count` sockets and keep them idle
//   {cmd:"sender", ns, auth}                     open one visitor; replies with a new conversation id
//   {cmd:"send", n, inflight}                    the sender posts n messages, `inflight` at a time
//   {cmd:"expect", total}                        reply {event:"reached", at} once `total` message:new arrived
//   {cmd:"pairs", auths, count}                  `count` visitor+agent pairs (auths[i] = {visitor, agent}), one conversation each
//   {cmd:"run", rate, seconds, timeline}         the pairs' visitors post at `rate`/s; agents measure latency
//                                                (repeatable on the same pairs: one run per rate); with
//                                                timeline, also [sent ms after start, latency ms] per message;
//                                                always this process's own event-loop delay (lag_p99_ms,
//                                                lag_max_ms) and, with timeline, its stalls over 20 ms as
//                                                [100 ms window after start, longest stall ms] (lag_windows)
//   {cmd:"churn", auth, rate, seconds, returning, start, hold_ms, urls?, resume_max?, lean?}
//                                                visitors connect at `rate`/s for `seconds` (a fraction
//                                                `returning` with a visitor token of an earlier one, of
//                                                this process, kept across churn commands), wait for
//                                                `session`, resume their conversations (at most
//                                                `resume_max`, default 5) or (a fraction `start` of the
//                                                rest) start one, disconnect after `hold_ms`; visitor i
//                                                connects to urls[i % urls.length] (default: the url);
//                                                with `lean`, each visitor is a bare `ws` WebSocket speaking
//                                                Engine.IO 4 / Socket.IO 5 text packets itself (leanVisit:
//                                                the same frames on the wire as the stock client's, at a
//                                                fraction of its CPU, so that the load generators are not
//                                                what limits the connect rate);
//                                                replies {event:"churned", opened, sessions, started,
//                                                resumed, errors, connect_errors, open_at_end, send_seconds,
//                                                session_ms: [ms from the connect call to `session`, each],
//                                                lag_p99_ms, lag_max_ms}
//   {cmd:"count"} / {cmd:"close"}
import { io } from "socket.io-client";
import WebSocket from "ws";
import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline";
import { monitorEventLoopDelay } from "node:perf_hooks";

const opts = JSON.parse(process.argv[2]);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const base = { transports: ["websocket"], reconnection: false, timeout: 60000, forceNew: true };
if (opts.localAddress) base.localAddress = opts.localAddress;
const sockets = [];
let received = 0;
let events = 0;  // every server event the watchers received (message:new, conversation:updated, …)
let expectTotal = Infinity;
let sender = null;
let pairs = [];
const latencies = [];
let timeline = null;  // [sent ms after the run's start, latency ms] while a run asks for it
let runStart = 0;
const tokens = [];  // churn: visitor tokens of earlier visitors of this process (the last 5,000)

const open = (ns, auth) => new Promise((res, rej) => {
  const s = io((ns === "/agent" && opts.agentUrl ? opts.agentUrl : opts.url) + ns, { ...base, auth });
  s.once("connect", () => res(s));
  s.once("connect_error", (e) => rej(e));
  sockets.push(s);
});
const call = (s, ev, p) => s.timeout(60000).emitWithAck(ev, p);
const onMessage = () => {
  received += 1;
  if (received === expectTotal) out({ event: "reached", at: Date.now(), received, events });
};

async function pool(count, concurrency, fn) {
  let next = 0, failed = 0;
  const run = async () => {
    while (next < count) {
      const i = next++;
      try { await fn(i); } catch (e) { failed += 1; if (failed <= 3) console.error(String(e && e.message || e)); }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, run));
  return failed;
}

// One visitor on a bare WebSocket: the packets the stock client would exchange for
// connect → `session` → (resume | conversation:start) → leave, and nothing else. `on.session(sess)`
// returns the event and payload to send with ack id 1, or null; `on.ack(ok)`; `on.fail(kind, err)`
// with kind "connect" (refused / closed before `session`) or "ack"; `on.close()` once, at the end.
function leanVisit(url, nsp, auth, on) {
  const ws = new WebSocket(url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket",
                           { perMessageDeflate: false });
  let stage = 0;  // 0 handshake, 1 connected to nsp, 2 waiting for the ack, 3 done
  const prefix = nsp === "/" ? "" : nsp + ",";
  const finish = () => { if (stage !== 4) { stage = 4; ws.close(); on.close(); } };
  ws.on("message", (data) => {
    const text = data.toString();
    const type = text[0];
    if (type === "2") { ws.send("3"); return; }  // ping → pong
    if (type === "0") { ws.send("40" + prefix + JSON.stringify(auth)); return; }  // Engine.IO open
    if (type !== "4") return;
    const body = text.slice(1);
    if (!body.startsWith(body[0] + prefix) && nsp !== "/") return;
    const kind = body[0];
    const rest = body.slice(1 + prefix.length);
    if (kind === "4") { on.fail("connect", new Error(rest)); finish(); return; }  // CONNECT_ERROR
    if (kind === "0") { stage = 1; return; }  // CONNECT
    if (kind === "2" && stage === 1) {
      const [ev, sess] = JSON.parse(rest);
      if (ev !== "session") return;
      const next = on.session(sess);
      if (!next) { finish(); return; }
      stage = 2;
      ws.send("42" + prefix + "1" + JSON.stringify(next));
    } else if (kind === "3" && stage === 2) {  // ACK 1
      const [r] = JSON.parse(rest.slice(1));
      on.ack(Boolean(r && r.ok));
      finish();
    }
  });
  ws.on("error", (e) => { if (stage < 3) on.fail(stage < 2 ? "connect" : "ack", e); finish(); });
  ws.on("close", () => { if (stage < 2) on.fail("connect", new Error("closed")); else if (stage === 2) on.fail("ack", new Error("closed")); finish(); });
  const timer = setTimeout(() => { if (stage < 4) { on.fail(stage < 2 ? "connect" : "ack", new Error("timeout")); finish(); } }, 60000);
  ws.on("close", () => clearTimeout(timer));
}

const handlers = {
  async watchers(c) {
    const failed = await pool(c.count, 50, async () => {
      const s = await open(c.ns, c.auth);
      s.onAny(() => { events += 1; });
      s.on("message:new", onMessage);
      const r = await call(s, "conversation:watch", { conversation_id: c.conv });
      if (!r.ok) throw new Error(JSON.stringify(r));
    });
    out({ event: "ready", failed });
  },
  async idle(c) {
    const failed = await pool(c.count, 100, async () => { await open(c.ns, c.auth); });
    out({ event: "ready", failed });
  },
  async sender(c) {
    sender = await open(c.ns, c.auth);
    const r = await call(sender, "conversation:start", {});
    if (!r.ok) throw new Error(JSON.stringify(r));
    out({ event: "conversation", id: r.conversation.id });
    sender.conv = r.conversation.id;
  },
  async send(c) {
    const t0 = Date.now();
    let errors = 0, i = 0;
    const one = async () => {
      while (i < c.n) {
        i += 1;
        const r = await call(sender, "message:send", { conversation_id: sender.conv, client_id: randomUUID(), text: "x".repeat(64) });
        if (!r.ok) { errors += 1; if (errors < 3) console.error(JSON.stringify(r)); }
      }
    };
    await Promise.all(Array.from({ length: c.inflight }, one));
    out({ event: "sent", t0, t1: Date.now(), errors });
  },
  async expect(c) {
    expectTotal = c.total;
    if (received >= expectTotal) out({ event: "reached", at: Date.now(), received });
  },
  async pairs(c) {
    const failed = await pool(c.count, 50, async (i) => {
      const v = await open("/visitor", c.auths[i].visitor);
      const st = await call(v, "conversation:start", {});
      if (!st.ok) throw new Error(JSON.stringify(st));
      const a = await open("/agent", c.auths[i].agent);
      const pair = { v, a, conv: st.conversation.id, pending: new Map() };
      a.on("message:new", (m) => {
        const sentAt = pair.pending.get(m.client_id);
        if (sentAt !== undefined) {
          const now = performance.now();
          latencies.push(now - sentAt);
          if (timeline) timeline.push([Math.round(sentAt - runStart), Math.round((now - sentAt) * 10) / 10]);
          pair.pending.delete(m.client_id);
        }
      });
      const w = await call(a, "conversation:watch", { conversation_id: pair.conv });
      if (!w.ok) throw new Error(JSON.stringify(w));
      pairs.push(pair);
    });
    out({ event: "ready", failed, pairs: pairs.length });
  },
  async run(c) {
    let sent = 0, acked = 0, errors = 0, k = 0;
    for (const p of pairs) p.pending.clear();  // a late arrival of an earlier run is not this run's
    latencies.length = 0;
    const total = Math.round(c.rate * c.seconds);
    const t0 = performance.now();
    runStart = t0;
    timeline = c.timeline ? [] : null;
    // this process's own stalls: a message that arrives while it is stalled is timed late
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const lagWindows = new Map();
    let expected = performance.now() + 10;
    const lagTimer = setInterval(() => {
      const now = performance.now();
      const late = now - expected;
      expected = now + 10;
      if (late > 20 && timeline) {
        for (let w = Math.floor((now - late - t0) / 100); w <= Math.floor((now - t0) / 100); w++) {
          lagWindows.set(w, Math.max(lagWindows.get(w) || 0, Math.round(late)));
        }
      }
    }, 10);
    await new Promise((done) => {
      const tick = () => {
        const due = Math.min(total, Math.floor((performance.now() - t0) / 1000 * c.rate));
        while (sent < due) {
          const p = pairs[k++ % pairs.length];
          const id = randomUUID();
          p.pending.set(id, performance.now());
          sent += 1;
          p.v.timeout(30000).emit("message:send", { conversation_id: p.conv, client_id: id, text: "hello" },
            (err, r) => { if (err || !r.ok) errors += 1; else acked += 1; });
        }
        if (sent >= total) done(); else setTimeout(tick, 2);
      };
      tick();
    });
    const sendSeconds = (performance.now() - t0) / 1000;
    const deadline = performance.now() + (c.grace || 5) * 1000;
    while (performance.now() < deadline && (latencies.length < sent || acked + errors < sent)) {
      await new Promise((r) => setTimeout(r, 20));
    }
    clearInterval(lagTimer);
    delay.disable();
    const lost = pairs.reduce((n, p) => n + p.pending.size, 0);
    out({ event: "ran", sent, acked, errors, lost, send_seconds: sendSeconds,
          latencies: latencies.map((x) => Math.round(x * 100) / 100), timeline: timeline || undefined,
          // the histogram holds the time between its 10 ms ticks: the delay is what exceeds 10 ms
          lag_p99_ms: Math.max(0, delay.percentile(99) / 1e6 - 10), lag_max_ms: Math.max(0, delay.max / 1e6 - 10),
          lag_windows: timeline ? [...lagWindows.entries()] : undefined });
    latencies.length = 0;
    timeline = null;
  },
  async churn(c) {
    const st = { opened: 0, sessions: 0, started: 0, resumed: 0, errors: 0, connect_errors: 0 };
    const urls = c.urls && c.urls.length ? c.urls : [opts.url];
    const resumeMax = c.resume_max || 5;
    const sessionMs = [];
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    let live = 0;
    const fail = (e) => { st.errors += 1; if (st.errors <= 3) console.error(String(e && e.message || e)); };
    const visit = () => {
      const auth = { ...c.auth };
      if (tokens.length && Math.random() < c.returning) auth.visitor_token = tokens[Math.floor(Math.random() * tokens.length)];
      // not kept in `sockets`: each closes itself
      const began = performance.now();
      if (c.lean) {
        const url = urls[st.opened % urls.length];
        st.opened += 1;
        live += 1;
        let what = null;
        leanVisit(url, "/visitor", auth, {
          session(sess) {
            st.sessions += 1;
            sessionMs.push(Math.round((performance.now() - began) * 100) / 100);
            if (!auth.visitor_token) { tokens.push(sess.visitor_token); if (tokens.length > 5000) tokens.shift(); }
            const convs = sess.conversations || [];
            if (convs.length) {
              what = "resumed";
              return ["resume", { conversations: convs.slice(0, resumeMax).map((x) => ({ conversation_id: x.id, epoch: x.epoch, seq: x.last_seq })) }];
            }
            if (Math.random() < c.start) { what = "started"; return ["conversation:start", {}]; }
            return null;
          },
          ack(ok) { if (ok) st[what] += 1; else fail(new Error(`${what} refused`)); },
          fail(kind, e) { if (kind === "connect") st.connect_errors += 1; else fail(e); },
          close() { live -= 1; },
        });
        return;
      }
      const s = io(urls[st.opened % urls.length] + "/visitor", { ...base, auth });
      st.opened += 1;
      live += 1;
      const done = () => { s.close(); live -= 1; };
      s.once("connect_error", () => { st.connect_errors += 1; done(); });
      s.once("session", async (sess) => {
        st.sessions += 1;
        sessionMs.push(Math.round((performance.now() - began) * 100) / 100);
        if (!auth.visitor_token) { tokens.push(sess.visitor_token); if (tokens.length > 5000) tokens.shift(); }
        try {
          const convs = sess.conversations || [];
          if (convs.length) {
            const r = await call(s, "resume", { conversations: convs.slice(0, resumeMax).map((x) => ({ conversation_id: x.id, epoch: x.epoch, seq: x.last_seq })) });
            if (r.ok) st.resumed += 1; else fail(new Error(JSON.stringify(r)));
          } else if (Math.random() < c.start) {
            const r = await call(s, "conversation:start", {});
            if (r.ok) st.started += 1; else fail(new Error(JSON.stringify(r)));
          }
        } catch (e) { fail(e); }
        setTimeout(done, c.hold_ms);
      });
    };
    const total = Math.round(c.rate * c.seconds);
    const t0 = performance.now();
    await new Promise((finish) => {
      const tick = () => {
        const due = Math.min(total, Math.floor((performance.now() - t0) / 1000 * c.rate));
        while (st.opened < due) visit();
        if (st.opened >= total) finish(); else setTimeout(tick, 5);
      };
      tick();
    });
    const sendSeconds = (performance.now() - t0) / 1000;
    const deadline = performance.now() + c.hold_ms + 10000;
    while (live > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    delay.disable();
    out({ event: "churned", ...st, open_at_end: live, send_seconds: sendSeconds, session_ms: sessionMs,
          lag_p99_ms: Math.max(0, delay.percentile(99) / 1e6 - 10), lag_max_ms: Math.max(0, delay.max / 1e6 - 10) });
  },
  async count() { out({ event: "count", received, events }); },
  async close() {
    for (const s of sockets) s.close();
    out({ event: "closed" });
    setTimeout(() => process.exit(0), 50);
  },
};

createInterface({ input: process.stdin }).on("line", async (line) => {
  const c = JSON.parse(line);
  try { await handlers[c.cmd](c); } catch (e) { out({ event: "error", error: String(e && e.stack || e) }); }
});
out({ event: "started" });
