// What a visitor whose conversation has no agent yet is told (issue 31, item 2): "all agents
// are busy" with their place in the queue while agents are online but at capacity, "no agent
// online" (with the leave-your-email form) only when none is. `ack` is the server's answer to
// conversation:start or conversation:availability: {agents: "available"|"busy"|"none", queue_position}.

export function waiting(conv, agentsAvailable, ack) {
  if (!conv || conv.assigned || conv.status === "resolved" || agentsAvailable) return "available";
  return ack && ack.agents === "busy" ? "busy" : ack && ack.agents === "available" ? "available" : "none";
}

export function waitingText(t, state, ack) {
  if (state !== "busy") return t("offline");
  const n = ack && Number.isInteger(ack.queue_position) ? ack.queue_position : 0;
  return n > 0 ? t("busyQueue", { n }) : t("busy");
}

// Ask the server where the conversation stands (after a reload, or when it is adopted).
export async function askAvailability(call, convId) {
  try {
    const ack = await call("conversation:availability", { conversation_id: convId });
    return ack && ack.ok ? ack : null;
  } catch {
    return null;
  }
}
