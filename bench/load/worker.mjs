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
//                                                timeline, also [sent ms after start, latency ms] per message
//   {cmd:"count"} / {cmd:"close"}
import { io } from "socket.io-client";
import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline";

const opts = JSON.parse(process.argv[2]);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const base = { transports: ["websocket"], reconnection: false, timeout: 60000, forceNew: true };
if (opts.localAddress) base.localAddress = opts.localAddress;
const sockets = [];
let received = 0;
let expectTotal = Infinity;
let sender = null;
let pairs = [];
const latencies = [];
let timeline = null;  // [sent ms after the run's start, latency ms] while a run asks for it
let runStart = 0;

const open = (ns, auth) => new Promise((res, rej) => {
  const s = io((ns === "/agent" && opts.agentUrl ? opts.agentUrl : opts.url) + ns, { ...base, auth });
  s.once("connect", () => res(s));
  s.once("connect_error", (e) => rej(e));
  sockets.push(s);
});
const call = (s, ev, p) => s.timeout(60000).emitWithAck(ev, p);
const onMessage = () => {
  received += 1;
  if (received === expectTotal) out({ event: "reached", at: Date.now(), received });
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

const handlers = {
  async watchers(c) {
    const failed = await pool(c.count, 50, async () => {
      const s = await open(c.ns, c.auth);
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
    const lost = pairs.reduce((n, p) => n + p.pending.size, 0);
    out({ event: "ran", sent, acked, errors, lost, send_seconds: sendSeconds,
          latencies: latencies.map((x) => Math.round(x * 100) / 100), timeline: timeline || undefined });
    latencies.length = 0;
    timeline = null;
  },
  async count() { out({ event: "count", received }); },
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
