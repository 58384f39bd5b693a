// The peer: a minimal Node socket.io v4 server doing the same work as the gateway for the
// bench — namespaces /agent and /visitor, `conversation:start` (new room, the visitor joins),
// `conversation:watch` (join the room), `message:send` (per-room seq, broadcast
// `message:new` to the room, `conversation:updated` to the tenant's agents — coalesced per
// conversation as the gateway does (gateway/realtime/fanout.py: the first at once, then at
// most one per 250 ms window, the newest) — and ack the sender), and for connection churn
// (e) what a widget's handshake does: a `/visitor` connection must carry a known
// `widget_key` (an in-memory map, the peer's "tenants": `wk` and `wk-0` … `wk-19999`), may
// carry the `visitor_token` of an earlier `session` (else a new visitor), and gets
// `session` {visitor_token, visitor_id, conversations} with the visitor's conversations;
// `resume` joins the listed conversations' rooms. No store, no agent auth, no token
// signature (a token is a random id looked up in a Map).
// perMessageDeflate is off (socket.io's default). Usage: node server.mjs <port>   → prints
// "ready" when listening.
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { Server } from "socket.io";

const port = Number(process.argv[2] || 3000);
const http = createServer();
const io = new Server(http, { transports: ["websocket", "polling"], pingInterval: 25000, pingTimeout: 20000 });
const seqs = new Map();
const SUMMARY_INTERVAL_MS = 250;
const keys = new Map([["wk", "t"]]); // widget key → tenant name
for (let i = 0; i < 20000; i++) keys.set(`wk-${i}`, String(i));
const visitors = new Map(); // visitor token → { id, conversations: [{id, epoch, last_seq}] }
const windows = new Map(); // `${tenant} ${conversation}` → the summary held back in its window (or null)

function summary(tenant, id, update) {
  // the gateway's summary windows: deliver the first at once and open a window; inside it
  // keep only the newest; when it ends, deliver what it held and open the next, or close it
  const key = `${tenant} ${id}`;
  if (windows.has(key)) {
    const held = windows.get(key);
    if (held === null || update.last_seq >= held.last_seq) windows.set(key, update);
    return;
  }
  io.of("/agent").to(tenant).emit("conversation:updated", update);
  const end = () => {
    const held = windows.get(key);
    if (held === null || held === undefined) {
      windows.delete(key);
      return;
    }
    windows.set(key, null);
    io.of("/agent").to(tenant).emit("conversation:updated", held);
    setTimeout(end, SUMMARY_INTERVAL_MS);
  };
  windows.set(key, null);
  setTimeout(end, SUMMARY_INTERVAL_MS);
}

const view = (id) => ({ id, epoch: "e", last_seq: seqs.get(id) || 0 });

io.of("/visitor").use((socket, next) => {
  const tenant = keys.get(socket.handshake.auth && socket.handshake.auth.widget_key);
  if (tenant === undefined) return next(new Error("unauthorized"));
  socket.data.tenant = tenant;
  next();
});

for (const name of ["/agent", "/visitor"]) {
  const nsp = io.of(name);
  nsp.on("connection", (socket) => {
    const author = { type: name === "/visitor" ? "contact" : "agent", id: socket.id };
    const auth = socket.handshake.auth || {};
    const tenant = `tenant:${socket.data.tenant || auth.tenant || "t"}`;
    let visitor = null;
    if (name === "/agent") {
      socket.join(tenant);
      socket.emit("session", { ok: true });
    } else {
      let token = auth.visitor_token;
      visitor = token !== undefined ? visitors.get(token) : undefined;
      if (visitor === undefined) {
        token = randomUUID();
        visitor = { id: randomUUID(), conversations: [] };
        visitors.set(token, visitor);
      }
      socket.emit("session", { visitor_token: token, visitor_id: visitor.id, contact_id: visitor.id,
                               identified: false, conversations: visitor.conversations.map(view) });
    }
    socket.on("conversation:start", (_p, ack) => {
      const id = randomUUID();
      seqs.set(id, 0);
      socket.join(id);
      if (visitor) visitor.conversations.push(id);
      ack({ ok: true, conversation: view(id), agents_available: true });
    });
    socket.on("resume", (p, ack) => {
      const results = ((p && p.conversations) || []).slice(0, 200).map((c) => {
        const id = c && c.conversation_id;
        if (!seqs.has(id)) return { conversation_id: id, ok: false, error: { code: "not_found" } };
        socket.join(id);
        return { conversation_id: id, ok: true, conversation: view(id), replayed: 0 };
      });
      ack({ ok: true, results });
    });
    socket.on("conversation:watch", (p, ack) => {
      const id = p && p.conversation_id;
      if (!seqs.has(id)) seqs.set(id, 0);
      // both namespaces share rooms by name: mirror that by joining in each
      socket.join(id);
      ack({ ok: true, conversation: { id, epoch: "e", last_seq: seqs.get(id) }, replayed: 0 });
    });
    socket.on("message:send", (p, ack) => {
      const id = p && p.conversation_id;
      const seq = (seqs.get(id) || 0) + 1;
      seqs.set(id, seq);
      const message = {
        id: randomUUID(), conversation_id: id, seq, epoch: "e", client_id: p.client_id, author,
        text: p.text, attachments: [], created_at: Date.now() / 1000, delivery: { state: "sent", error: null },
      };
      io.of("/agent").to(id).emit("message:new", message);
      io.of("/visitor").to(id).emit("message:new", message);
      // like the gateway's tenant channel: every agent of the tenant learns of it, coalesced
      summary(tenant, id, { id, last_seq: seq, updated_at: message.created_at });
      ack({ ok: true, message, duplicate: false });
    });
  });
}
http.listen(port, "127.0.0.1", () => console.log("ready"));
