import assert from "node:assert/strict";
import { sha1 } from "../lib/ws/sha1.ts";
import { computeAcceptKey } from "../lib/ws/http1.ts";

const encoder = new TextEncoder();
const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

async function webCryptoSha1(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-1", bytes)));
}

Deno.test("sha1() matches the FIPS 180 examples", () => {
  assert.equal(hex(sha1(encoder.encode("abc"))), "a9993e364706816aba3e25717850c26c9cd0d89d");
  assert.equal(hex(sha1(new Uint8Array(0))), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  assert.equal(
    hex(sha1(encoder.encode("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
    "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
  );
  assert.equal(hex(sha1(new Uint8Array(1_000_000).fill(0x61))), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
});

Deno.test("sha1() matches crypto.subtle.digest on every length up to three blocks and on random inputs", async () => {
  // Every length around the padding boundaries (55, 56, 63, 64...), then random lengths and bytes.
  const inputs: Uint8Array<ArrayBuffer>[] = [];
  for (let length = 0; length <= 200; length++) inputs.push(crypto.getRandomValues(new Uint8Array(length)));
  for (let i = 0; i < 200; i++) {
    inputs.push(crypto.getRandomValues(new Uint8Array(Math.floor(Math.random() * 5000))));
  }
  for (const input of inputs) assert.equal(hex(sha1(input)), await webCryptoSha1(input), `length ${input.length}`);
});

Deno.test("sha1() reads only the view it is given", async () => {
  const backing = crypto.getRandomValues(new Uint8Array(300));
  const view = backing.subarray(17, 250);
  assert.equal(hex(sha1(view)), await webCryptoSha1(view.slice()));
});

Deno.test("computeAcceptKey() matches the RFC 6455 example and Web Crypto on random keys", async () => {
  assert.equal(computeAcceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  for (let i = 0; i < 100; i++) {
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    const digest = await crypto.subtle.digest("SHA-1", encoder.encode(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"));
    assert.equal(computeAcceptKey(key), btoa(String.fromCharCode(...new Uint8Array(digest))));
  }
});
