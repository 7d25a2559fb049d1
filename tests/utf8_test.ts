import assert from "node:assert/strict";
import { messageSize, truncateUtf8, utf8Length } from "../lib/ws/utf8.ts";

const encoder = new TextEncoder();

Deno.test("utf8Length() matches TextEncoder for short and long text, pairs across chunk edges and lone surrogates", () => {
  const samples = [
    "",
    "ascii",
    "é",
    "日本語",
    "👋",
    "\ud800", // lone high surrogate: U+FFFD, 3 bytes
    "\udc00x",
    "a".repeat(64) + "é",
    "é".repeat(65),
    // A surrogate pair straddling the 16 Ki-unit chunk boundary of the long-text path.
    "a".repeat(16 * 1024 - 1) + "👋" + "b".repeat(10),
    "a".repeat(16 * 1024 - 1) + "\ud800",
    "🎉".repeat(20_000),
  ];
  for (const text of samples) assert.equal(utf8Length(text), encoder.encode(text).length, text.slice(0, 20));
  for (let i = 0; i < 200; i++) {
    const units = Array.from(
      { length: 1 + Math.floor(Math.random() * 300) },
      () => Math.floor(Math.random() * 0x10000),
    );
    const text = String.fromCharCode(...units);
    assert.equal(utf8Length(text), encoder.encode(text).length);
  }
});

Deno.test("messageSize() counts text in UTF-8 bytes and binary in bytes", () => {
  assert.equal(messageSize("é"), 2);
  assert.equal(messageSize(new ArrayBuffer(7)), 7);
});

Deno.test("truncateUtf8() never splits a code point", () => {
  assert.equal(truncateUtf8("héllo", 2), "h");
  assert.equal(truncateUtf8("👋👋", 5), "👋");
  assert.equal(truncateUtf8("short", 123), "short");
  assert.ok(encoder.encode(truncateUtf8("é".repeat(100), 123)).length <= 123);
});
