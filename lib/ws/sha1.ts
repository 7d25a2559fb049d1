/**
 * SHA-1 (FIPS 180-4), synchronous, for the one place RFC 6455 needs it: `Sec-WebSocket-Accept` (§4.2.2).
 *
 * Web Crypto's `crypto.subtle.digest` is asynchronous: each handshake would pay a promise and a trip through the
 * event loop for 60 bytes of input. SHA-1 is broken for signatures: use it for nothing else. Here it only shows that the
 * server read the client's key, as the RFC requires.
 *
 * @example
 * ```ts
 * import { sha1 } from "./sha1.ts";
 * import assert from "node:assert/strict";
 * const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
 * assert.equal(hex(sha1(new TextEncoder().encode("abc"))), "a9993e364706816aba3e25717850c26c9cd0d89d");
 * ```
 *
 * @module
 */

const BLOCK_BYTES = 64;
// The message schedule, reused by every call: SHA-1 is only ever run to completion, never re-entered.
const schedule = new Int32Array(80);

/** Compresses the 64-byte block at `bytes[at]` into `state` (FIPS 180-4 §6.1.2). */
function compress(state: Int32Array, bytes: Uint8Array, at: number): void {
  const w = schedule;
  for (let t = 0; t < 16; t++, at += 4) {
    w[t] = (bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3];
  }
  for (let t = 16; t < 80; t++) {
    const x = w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16];
    w[t] = (x << 1) | (x >>> 31);
  }
  let a = state[0], b = state[1], c = state[2], d = state[3], e = state[4];
  for (let t = 0; t < 80; t++) {
    let f: number, k: number;
    if (t < 20) {
      f = (b & c) | (~b & d);
      k = 0x5a827999;
    } else if (t < 40) {
      f = b ^ c ^ d;
      k = 0x6ed9eba1;
    } else if (t < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8f1bbcdc;
    } else {
      f = b ^ c ^ d;
      k = 0xca62c1d6;
    }
    const temp = (((a << 5) | (a >>> 27)) + f + e + k + w[t]) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = temp;
  }
  state[0] = (state[0] + a) | 0;
  state[1] = (state[1] + b) | 0;
  state[2] = (state[2] + c) | 0;
  state[3] = (state[3] + d) | 0;
  state[4] = (state[4] + e) | 0;
}

/** The 20-byte SHA-1 digest of `bytes`. */
export function sha1(bytes: Uint8Array): Uint8Array {
  const state = new Int32Array([0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476, 0xc3d2e1f0 | 0]);
  const length = bytes.length;
  const whole = length - (length % BLOCK_BYTES);
  for (let at = 0; at < whole; at += BLOCK_BYTES) compress(state, bytes, at);
  // The tail, the 0x80 marker and the 64-bit bit length, in one or two final blocks (§5.1.1).
  const rest = length - whole;
  const tail = new Uint8Array(rest < 56 ? BLOCK_BYTES : 2 * BLOCK_BYTES);
  tail.set(bytes.subarray(whole));
  tail[rest] = 0x80;
  const bits = length * 8;
  const end = tail.length;
  const high = Math.floor(bits / 0x1_0000_0000);
  tail[end - 8] = high >>> 24;
  tail[end - 7] = (high >>> 16) & 0xff;
  tail[end - 6] = (high >>> 8) & 0xff;
  tail[end - 5] = high & 0xff;
  tail[end - 4] = (bits >>> 24) & 0xff;
  tail[end - 3] = (bits >>> 16) & 0xff;
  tail[end - 2] = (bits >>> 8) & 0xff;
  tail[end - 1] = bits & 0xff;
  for (let at = 0; at < end; at += BLOCK_BYTES) compress(state, tail, at);
  const digest = new Uint8Array(20);
  for (let i = 0; i < 5; i++) {
    const word = state[i];
    digest[4 * i] = word >>> 24;
    digest[4 * i + 1] = (word >>> 16) & 0xff;
    digest[4 * i + 2] = (word >>> 8) & 0xff;
    digest[4 * i + 3] = word & 0xff;
  }
  return digest;
}
