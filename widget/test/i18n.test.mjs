// node --test: server error codes become the visitor's language, never the server's text.
import assert from "node:assert/strict";
import { test } from "node:test";
import { STRINGS, errorText, translator } from "../src/i18n.js";

test("a known code has its sentence in each language, with its details", () => {
  const e = { code: "text_too_long", message: "text is longer than 4000 characters", details: { limit: 4000 } };
  assert.equal(errorText(translator("en"), e), "The message is too long (at most 4000 characters).");
  assert.equal(errorText(translator("vi"), e), "Tin nhắn quá dài (tối đa 4000 ký tự).");
});

test("an unknown code or no error: the generic sentence, never the server's message", () => {
  for (const e of [{ code: "brand_new", message: "raw english" }, null, {}, { code: "constructor" }]) {
    assert.equal(errorText(translator("vi"), e), STRINGS.vi.err_generic);
  }
});

test("every string has both languages", () => {
  assert.deepEqual(Object.keys(STRINGS.vi).sort(), Object.keys(STRINGS.en).sort());
});

test("every string the widget asks for exists (no key shown raw to a visitor)", async () => {
  const { readFileSync, readdirSync } = await import("node:fs");
  const dir = new URL("../src/", import.meta.url);
  const visitor = readdirSync(dir).filter((f) => f.endsWith(".js") && !/^(console|consoleratings|agentcall|keys)\.js$/.test(f));
  const used = new Set();
  for (const f of visitor) for (const m of readFileSync(new URL(f, dir), "utf8").matchAll(/\bt\("(\w+)"/g)) used.add(m[1]);
  assert.ok(used.has("rateTitle") && used.has("resolved"), [...used].join());
  assert.deepEqual([...used].filter((k) => !(k in STRINGS.en)), []);
});
