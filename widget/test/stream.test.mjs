// node --test: the widget's per-conversation stream (dedupe, order, gap buffering).
import assert from "node:assert/strict";
import { test } from "node:test";
import { Stream } from "../src/stream.js";

const m = (seq, epoch = "e1") => ({ seq, epoch, text: `m${seq}`, author: { type: "agent" } });
const seqs = (s) => s.visible().map((x) => x.seq);

test("orders by seq and drops duplicates", () => {
  const s = new Stream();
  s.reset("e1", 0);
  for (const x of [1, 2, 2, 3, 1]) s.add(m(x));
  assert.deepEqual(seqs(s), [1, 2, 3]);
  assert.equal(s.add(m(3)), "duplicate");
});

test("holds messages after a gap until it is filled", () => {
  const s = new Stream();
  s.reset("e1", 4);
  assert.equal(s.add(m(4)), "duplicate"); // older than what was loaded
  s.add(m(5)); s.add(m(7)); s.add(m(8));
  assert.deepEqual(seqs(s), [5]);
  assert.equal(s.hasGap, true);
  s.add(m(6));
  assert.deepEqual(seqs(s), [5, 6, 7, 8]);
  assert.equal(s.hasGap, false);
  assert.equal(s.contiguous, 8);
});

test("another epoch is stale", () => {
  const s = new Stream();
  s.reset("e1", 0);
  s.add(m(1));
  assert.equal(s.add(m(2, "e2")), "stale");
  assert.deepEqual(seqs(s), [1]);
});
