// The reference Node server (socket.io 4) shaped like the gateway's realtime surface, to
// check the conformance tests themselves: /visitor with a widget_key, `session` on connect,
// requests acked {ok: true}.
import { createServer } from "node:http";
import { Server } from "socket.io";
const env = process.env;
const httpServer = createServer();
const io = new Server(httpServer, {
  pingInterval: Number(env.PING_INTERVAL_MS),
  pingTimeout: Number(env.PING_TIMEOUT_MS),
  connectTimeout: Number(env.CONNECT_TIMEOUT_MS),
  maxHttpBufferSize: 1048576,
  cors: { origin: "*" },
});
const visitor = io.of("/visitor");
visitor.use((socket, next) => {
  if (socket.handshake.auth && socket.handshake.auth.widget_key === env.WIDGET_KEY) return next();
  const err = new Error("unknown widget key");
  err.data = { code: "unauthorized" };
  next(err);
});
visitor.on("connection", (socket) => {
  socket.emit("session", { visitor_id: "v", conversations: [] });
  for (const name of ["session:get", "conversation:list"]) {
    socket.on(name, (...args) => { const ack = args.pop(); if (typeof ack === "function") ack({ ok: true }); });
  }
});
httpServer.listen(0, "127.0.0.1", () => { console.log(`PORT ${httpServer.address().port}`); });
