// The peer: a minimal Node socket.io v4 server doing the same work as the gateway for the
// bench — namespaces /agent and /visitor, `conversation:start` (new room, the visitor joins),
// `conversation:watch` (join the room), `message:send` (per-room seq, broadcast
// `message:new` to the room, `conversation:updated` to the tenant's agents — coalesced per
// conversation as the gateway does (gateway/realtime/fanout.py: the first at once, then at
// most one per 250 ms window, the newest) — and ack the sender). No store, no auth.
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

for (const name of ["/agent", "/visitor"]) {
  const nsp = io.of(name);
  nsp.on("connection", (socket) => {
    const author = { type: name === "/visitor" ? "contact" : "agent", id: socket.id };
    const tenant = `tenant:${(socket.handshake.auth && socket.handshake.auth.tenant) || "t"}`;
    if (name === "/agent") socket.join(tenant);
    socket.emit("session", { ok: true });
    socket.on("conversation:start", (_p, ack) => {
      const id = randomUUID();
      seqs.set(id, 0);
      socket.join(id);
      ack({ ok: true, conversation: { id, epoch: "e", last_seq: 0 }, agents_available: true });
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
