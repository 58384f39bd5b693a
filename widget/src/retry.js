// Which `message:send` answers the widget and the console send again, and when
// (docs/protocol.md, "unavailable"). Only `unavailable` is retried — the server could not
// store the message now (database down, hung, read-only or full) and says how long to wait
// in `details.retry_after` (seconds); the retry carries the same client_id, so a message
// that was stored after all is answered as a duplicate, never stored twice. Every other
// error (`internal` included) is final.

export const RETRY_CODES = new Set(["unavailable"]);
export const RETRY_MAX_MS = 30000; // the longest wait between two tries
const FIRST_MS = 1000; // the wait after a first refusal without a hint

// -> milliseconds to wait before sending `ack`'s message again (same client_id), or null
//    when the answer is final. `attempt`: the refusals of this message before this one
//    (0, 1, ...). The wait is the server's hint or the doubling backoff, whichever is
//    longer, capped, then stretched by up to half again at random (so that the clients
//    of one outage do not all come back at the same instant).
export function retryDelay(ack, attempt, random = Math.random) {
  if (!ack || ack.ok || !ack.error || !RETRY_CODES.has(ack.error.code)) return null;
  const hinted = Number(ack.error.details && ack.error.details.retry_after) * 1000;
  const backoff = FIRST_MS * 2 ** Math.min(attempt, 10);
  const base = Math.min(RETRY_MAX_MS, Math.max(Number.isFinite(hinted) ? hinted : 0, backoff));
  return Math.round(base * (1 + random() / 2));
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
