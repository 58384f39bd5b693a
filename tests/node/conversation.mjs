// Drives the gateway with the stock npm socket.io-client (websocket, or the transports given):
// a visitor starts a conversation and sends; an agent watches and replies; the visitor
// gets the reply; a repeated client_id is acknowledged with the same seq.
// Usage: node conversation.mjs <url> <widget_key> <agent_token> [transports, e.g. polling,websocket]
//   → prints a JSON report.
import { io } from "socket.io-client";
import { randomUUID } from "node:crypto";

const [url, widgetKey, agentToken, transports = "websocket"] = process.argv.slice(2);
const opts = { transports: transports.split(","), reconnection: false, timeout: 5000 };
const fail = (msg) => { console.error(msg); process.exit(1); };
setTimeout(() => fail("timed out"), 15000).unref();

const once = (sock, ev) => new Promise((res, rej) => {
  sock.once(ev, res);
  sock.once("connect_error", rej);
});
const call = (sock, ev, payload) => sock.timeout(5000).emitWithAck(ev, payload);

const agent = io(`${url}/agent`, { ...opts, auth: { token: agentToken } });
await once(agent, "connect");
const visitor = io(`${url}/visitor`, { ...opts, auth: { widget_key: widgetKey, name: "Node visitor" } });
const session = await once(visitor, "session");

const started = await call(visitor, "conversation:start", {});
if (!started.ok) fail(JSON.stringify(started));
const convId = started.conversation.id;
const watched = await call(agent, "conversation:watch", { conversation_id: convId });
if (!watched.ok) fail(JSON.stringify(watched));

const agentGot = new Promise((res) => agent.on("message:new", (m) => { if (m.author.type === "contact") res(m); }));
const visitorGot = new Promise((res) => visitor.on("message:new", (m) => { if (m.author.type === "agent") res(m); }));
const clientId = randomUUID();
const sent = await call(visitor, "message:send", { conversation_id: convId, client_id: clientId, text: "hello from node" });
const again = await call(visitor, "message:send", { conversation_id: convId, client_id: clientId, text: "hello from node" });
const inbound = await agentGot;
const replied = await call(agent, "message:send", { conversation_id: convId, client_id: randomUUID(), text: "hi node" });
const outbound = await visitorGot;
const bad = await call(visitor, "message:send", { conversation_id: convId, client_id: "x", text: "y" });

console.log(JSON.stringify({
  session_has_token: typeof session.visitor_token === "string",
  sent_seq: sent.message.seq, again_seq: again.message.seq, again_duplicate: again.duplicate,
  agent_received: inbound.text, reply_seq: replied.message.seq, visitor_received: outbound.text,
  bad_code: bad.error && bad.error.code,
}));
agent.close();
visitor.close();
process.exit(0);
