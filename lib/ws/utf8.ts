/**
 * UTF-8 sizes without encoding.
 *
 * @module
 */

/**
 * Number of bytes `text` takes in UTF-8 (a lone surrogate counts 3, as `TextEncoder` writes U+FFFD).
 *
 * @example
 * ```ts
 * import { utf8Length } from "./utf8.ts";
 * import assert from "node:assert/strict";
 * assert.equal(utf8Length("héllo 👋"), new TextEncoder().encode("héllo 👋").length);
 * ```
 */
export function utf8Length(text: string): number {
  if (text.length > SHORT_TEXT) return utf8LengthNative(text);
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 2; // 4 bytes for 2 UTF-16 units
        i++;
      } else bytes += 2;
    } else bytes += 2;
  }
  return bytes;
}

/** Up to this many UTF-16 units a JavaScript loop is fastest; beyond it `TextEncoder` wins (~40× at 4 KiB). */
const SHORT_TEXT = 64;
const CHUNK_UNITS = 16 * 1024;
const encoder = new TextEncoder();
const scratch = new Uint8Array(3 * CHUNK_UNITS);

/** `utf8Length` through `TextEncoder.encodeInto`, a chunk at a time into one scratch buffer, pairs kept whole. */
function utf8LengthNative(text: string): number {
  let bytes = 0;
  for (let at = 0; at < text.length;) {
    let end = Math.min(at + CHUNK_UNITS, text.length);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;
    bytes += encoder.encodeInto(at === 0 && end === text.length ? text : text.slice(at, end), scratch).written;
    at = end;
  }
  return bytes;
}

/** Byte size of a relayed message: UTF-8 length for text, `byteLength` for binary. */
export function messageSize(data: string | ArrayBuffer): number {
  return typeof data === "string" ? utf8Length(data) : data.byteLength;
}

/** Cuts `text` to at most `maxBytes` UTF-8 bytes without splitting a code point. */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (text.length * 3 <= maxBytes || utf8Length(text) <= maxBytes) return text;
  let out = "";
  let used = 0;
  for (const ch of text) {
    const size = utf8Length(ch);
    if (used + size > maxBytes) break;
    out += ch;
    used += size;
  }
  return out;
}
