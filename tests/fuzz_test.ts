/**
 * Seeded, reproducible random tests of the two parsers an attacker feeds directly: the HTTP head parser and the
 * WebSocket frame parser. Random valid inputs are mutated (bytes flipped, inserted, dropped, lengths broken) and fed
 * whole and in random splits: a parser never throws, never loops, and gives the same answer however its input was
 * cut. A failure names the seed and case, so it replays exactly.
 *
 * @module
 */

import assert from "node:assert/strict";
import { concatBytes } from "../lib/bytes.ts";
import { findHeadEnd, parseRequestHead, parseResponseHead } from "../lib/ws/http1.ts";
import { ServerProtocol } from "../lib/ws/protocol.ts";
import { clientFrame } from "./_harness.ts";

/** mulberry32: a small seeded PRNG, so every run sees the same cases. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = 20261202;
const encoder = new TextEncoder();
/** Bytes that matter to the parsers, favoured when mutating. */
const SPECIAL = [0x0d, 0x0a, 0x20, 0x09, 0x3a, 0x00, 0x7f, 0x80, 0xff, 0x2f, 0x3f, 0x23, 0x7e, 0x7d];

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)];
}

function mutate(rand: () => number, input: Uint8Array, count: number): Uint8Array {
  let bytes = Array.from(input);
  for (let i = 0; i < count; i++) {
    const at = Math.floor(rand() * (bytes.length + 1));
    const byte = rand() < 0.7 ? pick(rand, SPECIAL) : Math.floor(rand() * 256);
    const kind = rand();
    if (kind < 0.4 && at < bytes.length) bytes[at] = byte;
    else if (kind < 0.7) bytes.splice(at, 0, byte);
    else if (kind < 0.9) bytes.splice(at, 1);
    else bytes = bytes.concat(bytes.slice(at, at + 1 + Math.floor(rand() * 40)));
  }
  return new Uint8Array(bytes);
}

function splits(rand: () => number, length: number): number[] {
  const cuts = new Set<number>();
  const count = Math.floor(rand() * 6);
  for (let i = 0; i < count; i++) cuts.add(1 + Math.floor(rand() * Math.max(1, length - 1)));
  return [...cuts].sort((a, b) => a - b);
}

function chunks(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut > from) out.push(bytes.slice(from, cut));
    from = cut;
  }
  return out;
}

function randomHead(rand: () => number): string {
  const method = pick(rand, ["GET", "HEAD", "POST", "get", "OPTIONS"]);
  const target = pick(rand, ["/", "/echo", "/rooms/lobby?token=a%2Bb", "http://h:1/healthz", "/rooms/%2e%2e", "*"]);
  const version = pick(rand, ["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0"]);
  const headers = [
    "Host: 127.0.0.1:8765",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    `X-Pad: ${"a".repeat(Math.floor(rand() * 300))}`,
  ].filter(() => rand() < 0.8);
  return `${method} ${target} ${version}\r\n${headers.join("\r\n")}\r\n\r\n`;
}

/** What a head parse says, in a form that can be compared (Headers objects compare by entries). */
function describeHead(result: ReturnType<typeof parseRequestHead>): unknown {
  return result.kind === "request" ? { ...result, headers: [...result.headers] } : result;
}

/** Reads a head the way the raw engine does: accumulate, look for the blank line in new bytes, then parse. */
function readIncrementally(pieces: Uint8Array[], maxHeadBytes: number): unknown {
  let bytes = new Uint8Array(0);
  let scanned = 0;
  for (const piece of pieces) {
    const joined = new Uint8Array(bytes.length + piece.length);
    joined.set(bytes);
    joined.set(piece, bytes.length);
    bytes = joined;
    if (findHeadEnd(bytes, scanned - 3) < 0 && bytes.length < maxHeadBytes) {
      scanned = bytes.length;
      continue;
    }
    scanned = bytes.length;
    const result = parseRequestHead(bytes, { maxHeadBytes });
    if (result.kind !== "incomplete") return describeHead(result);
  }
  return describeHead(parseRequestHead(bytes, { maxHeadBytes }));
}

Deno.test("fuzz: parseRequestHead() never throws and answers the same however a mutated head is split", () => {
  const rand = random(SEED);
  const maxHeadBytes = 512;
  const kinds = new Map<string, number>();
  for (let i = 0; i < 3000; i++) {
    let head = mutate(rand, encoder.encode(randomHead(rand)), Math.floor(rand() * 4));
    // Some heads are cut short, as a client that has not finished sending.
    if (rand() < 0.2) head = head.subarray(0, Math.floor(rand() * head.length));
    const whole = describeHead(parseRequestHead(head, { maxHeadBytes }));
    const kind = (whole as { kind: string }).kind;
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    assert.ok(["incomplete", "error", "request"].includes(kind), `seed ${SEED} case ${i}`);
    const incremental = readIncrementally(chunks(head, splits(rand, head.length)), maxHeadBytes);
    assert.deepEqual(incremental, whole, `seed ${SEED} case ${i}: ${JSON.stringify(new TextDecoder().decode(head))}`);
    // parseResponseHead takes the same mutated bytes without throwing.
    assert.ok(["incomplete", "error", "response"].includes(parseResponseHead(head).kind));
  }
  // The cases really reach all three answers, not just errors.
  for (const kind of ["incomplete", "error", "request"]) assert.ok((kinds.get(kind) ?? 0) > 50, `few ${kind}`);
});

type Event = [string, ...unknown[]];

function runProtocol(pieces: Uint8Array[], maxMessageBytes: number): Event[] {
  const events: Event[] = [];
  const protocol = new ServerProtocol({
    maxMessageBytes,
    onMessage: (data) =>
      events.push(typeof data === "string" ? ["text", data] : ["binary", Array.from(new Uint8Array(data))]),
    onPing: (payload) => events.push(["ping", Array.from(payload)]),
    onPong: (payload) => events.push(["pong", Array.from(payload)]),
    onClose: (code, reason) => events.push(["close", code, reason]),
    onError: (code) => events.push(["error", code]),
    write: (bytes) => events.push(["write", Array.from(bytes)]),
  });
  // A copy per piece: the protocol unmasks in place.
  for (const piece of pieces) protocol.receive(piece.slice());
  return events;
}

function randomFrames(rand: () => number): Uint8Array {
  const frames: Uint8Array[] = [];
  const count = 1 + Math.floor(rand() * 8);
  for (let i = 0; i < count; i++) {
    const length = pick(rand, [0, 1, 5, 125, 126, 200, 70_000 * (rand() < 0.05 ? 1 : 0)]);
    const payload = new Uint8Array(length).map(() => (rand() < 0.8 ? 0x61 : Math.floor(rand() * 256)));
    const kind = rand();
    if (kind < 0.3) frames.push(clientFrame(0x1, payload));
    else if (kind < 0.5) frames.push(clientFrame(0x2, payload));
    else if (kind < 0.6) frames.push(clientFrame(0x9, payload.subarray(0, 125)));
    else if (kind < 0.65) frames.push(clientFrame(0xa, payload.subarray(0, 125)));
    else if (kind < 0.9) {
      frames.push(clientFrame(pick(rand, [0x1, 0x2]), payload.subarray(0, 3), { fin: false }));
      frames.push(clientFrame(0x0, payload.subarray(3), { fin: rand() < 0.8 }));
    } else frames.push(clientFrame(0x8, new Uint8Array([0x03, 0xe8, 0x6f, 0x6b])));
  }
  return concatBytes(...frames);
}

Deno.test("fuzz: ServerProtocol never throws and reports the same events however a mutated stream is split", () => {
  const rand = random(SEED + 1);
  const outcomes = new Map<string, number>();
  for (let i = 0; i < 1500; i++) {
    const stream = mutate(rand, randomFrames(rand), Math.floor(rand() * 3));
    const maxMessageBytes = pick(rand, [64, 1024, 1 << 20]);
    const whole = runProtocol([stream], maxMessageBytes);
    const last = whole.at(-1)?.[0] ?? "none";
    outcomes.set(String(last), (outcomes.get(String(last)) ?? 0) + 1);
    const split = runProtocol(chunks(stream, splits(rand, stream.length)), maxMessageBytes);
    assert.deepEqual(split, whole, `seed ${SEED + 1} case ${i}`);
    // A failed connection reports one error and then nothing more.
    const errors = whole.filter((event) => event[0] === "error");
    assert.ok(errors.length <= 1, `seed ${SEED + 1} case ${i}: ${errors.length} errors`);
  }
  // The cases reach protocol errors, clean closes and plain traffic alike.
  for (const kind of ["error", "close", "text"]) assert.ok((outcomes.get(kind) ?? 0) > 20, `few ending in ${kind}`);
});
