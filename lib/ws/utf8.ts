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

/**
 * Validates UTF-8 incrementally, a chunk at a time, without decoding: a fragmented text message is checked as its
 * fragments arrive (so bad input fails at once) and decoded once at the end, instead of keeping a string per fragment.
 *
 * @example
 * ```ts
 * import { Utf8Validator } from "./utf8.ts";
 * import assert from "node:assert/strict";
 * const validator = new Utf8Validator();
 * assert.equal(validator.push(new Uint8Array([0x68, 0xc3])), true); // "h" and half of "é"
 * assert.equal(validator.complete, false);
 * assert.equal(validator.push(new Uint8Array([0xa9])), true);
 * assert.equal(validator.complete, true);
 * assert.equal(validator.push(new Uint8Array([0xff])), false);
 * ```
 */
export class Utf8Validator {
  /** Continuation bytes still due for the current code point. */
  #need = 0;
  /** Bounds of the next continuation byte: narrower after E0, ED, F0 and F4 (no overlongs, surrogates, > U+10FFFF). */
  #lower = 0x80;
  #upper = 0xbf;

  /** Whether the bytes so far end on a code point boundary. */
  get complete(): boolean {
    return this.#need === 0;
  }

  /** Forgets any partial code point, for a new message. */
  reset(): void {
    this.#need = 0;
    this.#lower = 0x80;
    this.#upper = 0xbf;
  }

  /** Checks `bytes[start, end)` as the continuation of what came before; false once the input is not UTF-8. */
  push(bytes: Uint8Array, start = 0, end: number = bytes.length): boolean {
    let need = this.#need;
    let lower = this.#lower;
    let upper = this.#upper;
    for (let i = start; i < end; i++) {
      const byte = bytes[i];
      if (need === 0) {
        if (byte < 0x80) continue;
        if (byte < 0xc2) return false; // a stray continuation byte, or an overlong 2-byte lead (C0, C1)
        if (byte < 0xe0) need = 1;
        else if (byte < 0xf0) {
          need = 2;
          if (byte === 0xe0) lower = 0xa0;
          else if (byte === 0xed) upper = 0x9f;
        } else if (byte < 0xf5) {
          need = 3;
          if (byte === 0xf0) lower = 0x90;
          else if (byte === 0xf4) upper = 0x8f;
        } else return false;
      } else {
        if (byte < lower || byte > upper) return false;
        lower = 0x80;
        upper = 0xbf;
        need--;
      }
    }
    this.#need = need;
    this.#lower = lower;
    this.#upper = upper;
    return true;
  }
}
