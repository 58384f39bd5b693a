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
