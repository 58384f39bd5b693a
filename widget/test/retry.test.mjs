// node --test: the retry policy of `message:send` answers (widget and console).
import assert from "node:assert/strict";
import { test } from "node:test";
import { RETRY_MAX_MS, retryDelay } from "../src/retry.js";

const refused = (code, retry_after) => ({ ok: false, error: { code, message: code, ...(retry_after === undefined ? {} : { details: { retry_after } }) } });

test("unavailable is retried after its retry_after at least", () => {
  assert.equal(retryDelay(refused("unavailable", 3), 0, () => 0), 3000);
  assert.equal(retryDelay(refused("unavailable", 3), 0, () => 1), 4500); // jitter: up to half again
  assert.equal(retryDelay(refused("unavailable"), 0, () => 0), 1000); // no hint: the first backoff
});

test("the wait doubles with each refusal, capped", () => {
  const waits = [0, 1, 2, 3, 4, 5, 20].map((n) => retryDelay(refused("unavailable", 1), n, () => 0));
  assert.deepEqual(waits, [1000, 2000, 4000, 8000, 16000, RETRY_MAX_MS, RETRY_MAX_MS]);
  assert.equal(retryDelay(refused("unavailable", 3600), 0, () => 0), RETRY_MAX_MS);
});

test("internal and every other error are final, success is not retried", () => {
  for (const code of ["internal", "bad_request", "forbidden", "conversation_closed", "rate_limited", "not_found"]) {
    assert.equal(retryDelay(refused(code, 1), 0), null, code);
  }
  assert.equal(retryDelay({ ok: true, message: {} }, 0), null);
  assert.equal(retryDelay(undefined, 0), null);
});
