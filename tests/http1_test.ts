import assert from "node:assert/strict";
import {
  computeAcceptKey,
  parseRequestHead,
  parseResponseHead,
  serializeResponseHead,
  STATUS_TEXT,
} from "../lib/ws/http1.ts";

const encoder = new TextEncoder();

function head(text: string): Uint8Array {
  return encoder.encode(text);
}

const UPGRADE = "GET /chat?room=a HTTP/1.1\r\n" +
  "Host: server.example.com\r\n" +
  "Upgrade: websocket\r\n" +
  "Connection: Upgrade\r\n" +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
  "Sec-WebSocket-Version: 13\r\n" +
  "\r\n";

function assertError(result: ReturnType<typeof parseRequestHead>, status: number, message: string): void {
  assert.equal(result.kind, "error", message);
  if (result.kind === "error") assert.equal(result.status, status, `${message}: ${result.reason}`);
}

Deno.test("computeAcceptKey() matches the RFC 6455 §1.3 example", () => {
  assert.equal(computeAcceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
});

Deno.test("parseRequestHead() parses a complete upgrade request", () => {
  const result = parseRequestHead(head(UPGRADE));
  assert.equal(result.kind, "request");
  if (result.kind !== "request") return;
  assert.equal(result.method, "GET");
  assert.equal(result.target, "/chat?room=a");
  assert.equal(result.version, "1.1");
  assert.equal(result.headLength, UPGRADE.length);
  assert.equal(result.headers.get("host"), "server.example.com");
  assert.equal(result.headers.get("sec-websocket-key"), "dGhlIHNhbXBsZSBub25jZQ==");
  assert.equal(result.headers.get("connection"), "Upgrade");
});

Deno.test("parseRequestHead() reports the head length when frames follow the head", () => {
  const bytes = new Uint8Array([...head(UPGRADE), 0x81, 0x80, 1, 2, 3, 4]);
  const result = parseRequestHead(bytes);
  assert.equal(result.kind === "request" && result.headLength, UPGRADE.length);
});

Deno.test("parseRequestHead() is incomplete at every prefix, then complete", () => {
  const bytes = head(UPGRADE);
  for (let length = 0; length < bytes.length; length++) {
    assert.deepEqual(parseRequestHead(bytes.subarray(0, length)), { kind: "incomplete" }, `prefix ${length}`);
  }
  assert.equal(parseRequestHead(bytes).kind, "request");
});

Deno.test("parseRequestHead() trims optional whitespace and combines repeated headers", () => {
  const result = parseRequestHead(head("GET / HTTP/1.1\r\nHost:a\r\nX-A: \t one \t\r\nx-a: two\r\nX-Empty:\r\n\r\n"));
  assert.equal(result.kind, "request");
  if (result.kind !== "request") return;
  assert.equal(result.headers.get("x-a"), "one, two");
  assert.equal(result.headers.get("x-empty"), "");
  assert.equal(result.headers.get("host"), "a");
});

Deno.test("parseRequestHead() keeps obs-text bytes in values as Latin-1", () => {
  const bytes = new Uint8Array([...head("GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf"), 0xe9, ...head("\r\n\r\n")]);
  const result = parseRequestHead(bytes);
  assert.equal(result.kind === "request" && result.headers.get("x-name"), "caf\u00e9");
});

Deno.test("parseRequestHead() accepts HTTP/1.0 without Host", () => {
  const result = parseRequestHead(head("GET / HTTP/1.0\r\n\r\n"));
  assert.equal(result.kind === "request" && result.version, "1.0");
});

Deno.test("parseRequestHead() skips blank lines before the request line", () => {
  const text = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
  const result = parseRequestHead(head(text));
  assert.equal(result.kind === "request" && result.headLength, text.length);
});

Deno.test("parseRequestHead() fails with 431 beyond maxHeadBytes", () => {
  const big = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + "b".repeat(20_000) + "\r\n\r\n";
  assertError(parseRequestHead(head(big)), 431, "complete but too big");
  assertError(parseRequestHead(head(big).subarray(0, 16_384)), 431, "incomplete at the limit");
  assert.deepEqual(parseRequestHead(head(big).subarray(0, 16_383)), { kind: "incomplete" });
  const small = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  assert.equal(parseRequestHead(head(small), { maxHeadBytes: small.length }).kind, "request");
  assertError(parseRequestHead(head(small), { maxHeadBytes: small.length - 1 }), 431, "one byte over");
  assert.throws(() => parseRequestHead(head(small), { maxHeadBytes: 0 }), RangeError);
});

Deno.test("parseRequestHead() fails with 505 on other HTTP versions", () => {
  for (const version of ["HTTP/2.0", "HTTP/2", "HTTP/3", "HTTP/0.9", "HTTP/1.2"]) {
    assertError(parseRequestHead(head(`GET / ${version}\r\nHost: a\r\n\r\n`)), 505, version);
  }
});

Deno.test("parseRequestHead() fails with 400 on a malformed request line", () => {
  const lines = [
    "GET /",
    "GET  / HTTP/1.1",
    "GET / HTTP/1.1 ",
    " GET / HTTP/1.1",
    "GET / http/1.1",
    "GET / HTTP/1.1.1",
    "GET / HTTP/11",
    "G(T / HTTP/1.1",
    "GET /a b HTTP/1.1",
    "GET /\u0001 HTTP/1.1",
    "GET\t/ HTTP/1.1",
  ];
  for (const line of lines) {
    assertError(parseRequestHead(head(`${line}\r\nHost: a\r\n\r\n`)), 400, JSON.stringify(line));
  }
});

Deno.test("parseRequestHead() fails with 400 on bad header names and values", () => {
  const fields = [
    "Host : a",
    "Bad Name: x",
    ": empty name",
    "No-Colon",
    "X-(paren): x",
    "X-Ctl: a\u0001b",
    "X-Del: a\u007fb",
    "X-Nul: a\u0000b",
  ];
  for (const field of fields) {
    assertError(parseRequestHead(head(`GET / HTTP/1.1\r\nHost: a\r\n${field}\r\n\r\n`)), 400, JSON.stringify(field));
  }
});

Deno.test("parseRequestHead() fails with 400 on obs-fold", () => {
  assertError(parseRequestHead(head("GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n")), 400, "space fold");
  assertError(parseRequestHead(head("GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n\ttwo\r\n\r\n")), 400, "tab fold");
});

Deno.test("parseRequestHead() fails with 400 on a bare CR or LF", () => {
  assertError(parseRequestHead(head("GET / HTTP/1.1\nHost: a\n\n")), 400, "bare LF");
  assertError(parseRequestHead(head("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n")), 400, "bare CR");
});

Deno.test("parseRequestHead() fails with 400 on a missing or repeated Host in HTTP/1.1", () => {
  assertError(parseRequestHead(head("GET / HTTP/1.1\r\n\r\n")), 400, "missing");
  assertError(parseRequestHead(head("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n")), 400, "repeated");
});

Deno.test("serializeResponseHead() writes the 101 of RFC 6455 §1.3", () => {
  const headers = new Headers({ Upgrade: "websocket", Connection: "Upgrade" });
  headers.set("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  assert.equal(
    new TextDecoder().decode(serializeResponseHead(101, headers)),
    "HTTP/1.1 101 Switching Protocols\r\n" +
      "connection: Upgrade\r\n" +
      "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
      "upgrade: websocket\r\n" +
      "\r\n",
  );
});

Deno.test("serializeResponseHead() keeps header order and case from an array", () => {
  const bytes = serializeResponseHead(426, [["Sec-WebSocket-Version", "13"], ["Content-Length", "0"]], {
    statusText: "Upgrade Required",
  });
  assert.equal(
    new TextDecoder().decode(bytes),
    "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n",
  );
});

Deno.test("serializeResponseHead() uses the standard phrase or none", () => {
  assert.equal(STATUS_TEXT[431], "Request Header Fields Too Large");
  assert.equal(
    new TextDecoder().decode(serializeResponseHead(431, [])),
    "HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n",
  );
  assert.equal(new TextDecoder().decode(serializeResponseHead(299, [])), "HTTP/1.1 299 \r\n\r\n");
});

Deno.test("serializeResponseHead() refuses anything that could inject a line", () => {
  assert.throws(() => serializeResponseHead(200, [["X-A", "a\r\nSet-Cookie: x"]]), TypeError);
  assert.throws(() => serializeResponseHead(200, [["X A", "a"]]), TypeError);
  assert.throws(() => serializeResponseHead(200, [["X-A", "\u20ac"]]), TypeError);
  assert.throws(() => serializeResponseHead(200, [], { statusText: "OK\r\n" }), TypeError);
  assert.throws(() => serializeResponseHead(99, []), RangeError);
  assert.throws(() => serializeResponseHead(600, []), RangeError);
});

Deno.test("serializeResponseHead() writes Latin-1 text as single bytes and ends with a blank line", () => {
  const bytes = serializeResponseHead(400, [["Content-Type", "text/plain"], ["X-Latin", "caf\u00e9"]]);
  assert.deepEqual(Array.from(bytes.subarray(-4)), [0x0d, 0x0a, 0x0d, 0x0a]);
  assert.equal(bytes.includes(0xe9), true);
});

// Response heads, as the client reads them

const SWITCHING = "HTTP/1.1 101 Switching Protocols\r\n" +
  "Upgrade: websocket\r\n" +
  "Connection: Upgrade\r\n" +
  "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
  "\r\n";

function assertResponseError(result: ReturnType<typeof parseResponseHead>, message: string): void {
  assert.equal(result.kind, "error", message);
}

Deno.test("parseResponseHead() parses the 101 of RFC 6455 §1.3 and reports where frames begin", () => {
  const frame = [0x81, 0x02, 0x68, 0x69];
  const result = parseResponseHead(new Uint8Array([...head(SWITCHING), ...frame]));
  assert.equal(result.kind, "response");
  if (result.kind !== "response") return;
  assert.equal(result.version, "1.1");
  assert.equal(result.status, 101);
  assert.equal(result.statusText, "Switching Protocols");
  assert.equal(result.headers.get("upgrade"), "websocket");
  assert.equal(result.headers.get("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  assert.equal(result.headLength, SWITCHING.length);
});

Deno.test("parseResponseHead() is incomplete at every prefix, then complete", () => {
  const bytes = head(SWITCHING);
  for (let end = 0; end < bytes.length; end++) {
    assert.deepEqual(parseResponseHead(bytes.subarray(0, end)), { kind: "incomplete" }, `prefix ${end}`);
  }
  assert.equal(parseResponseHead(bytes).kind, "response");
});

Deno.test("parseResponseHead() accepts an empty reason with or without its space, and HTTP/1.0", () => {
  for (const line of ["HTTP/1.1 404", "HTTP/1.1 404 ", "HTTP/1.0 404 Nope"]) {
    const result = parseResponseHead(head(`${line}\r\nContent-Length: 0\r\n\r\n`));
    assert.equal(result.kind, "response", line);
    if (result.kind !== "response") continue;
    assert.equal(result.status, 404);
    assert.equal(result.statusText, line.endsWith("Nope") ? "Nope" : "");
    assert.equal(result.version, line.startsWith("HTTP/1.0") ? "1.0" : "1.1");
  }
});

Deno.test("parseResponseHead() trims values and combines repeated headers", () => {
  const result = parseResponseHead(head("HTTP/1.1 400 Bad Request\r\nX-A:  one \r\nx-a: two\r\n\r\n"));
  assert.equal(result.kind, "response");
  if (result.kind === "response") assert.equal(result.headers.get("x-a"), "one, two");
});

Deno.test("parseResponseHead() refuses a malformed status line", () => {
  for (
    const line of [
      "HTTP/2 101 Switching Protocols",
      "HTTP/1.1 1010 Switching Protocols",
      "HTTP/1.1 10 x",
      "HTTP/1.1 099 Low",
      "HTTP/1.1 600 High",
      "HTTP/1.1 1O1 Letter",
      "HTTP/1.1  101 Two spaces",
      "http/1.1 101 Lower case",
      "ICY 200 OK",
      "HTTP/1.1 101 Bad\x01control",
    ]
  ) {
    assertResponseError(parseResponseHead(head(`${line}\r\n\r\n`)), line);
  }
});

Deno.test("parseResponseHead() refuses bare CR or LF, obs-fold, bad fields, and a head beyond maxHeadBytes", () => {
  assertResponseError(parseResponseHead(head("HTTP/1.1 101 OK\nUpgrade: websocket\r\n\r\n")), "bare LF");
  assertResponseError(parseResponseHead(head("HTTP/1.1 101 OK\r\nA: b\rc\r\n\r\n")), "bare CR");
  assertResponseError(parseResponseHead(head("HTTP/1.1 101 OK\r\nA: b\r\n c\r\n\r\n")), "obs-fold");
  assertResponseError(parseResponseHead(head("HTTP/1.1 101 OK\r\nA b: c\r\n\r\n")), "space in name");
  assertResponseError(parseResponseHead(head("HTTP/1.1 101 OK\r\nA: b\x00\r\n\r\n")), "NUL in value");
  assertResponseError(parseResponseHead(head("\r\n\r\n")), "empty head");
  const long = head(`HTTP/1.1 200 OK\r\nX: ${"a".repeat(100)}\r\n\r\n`);
  assertResponseError(parseResponseHead(long, { maxHeadBytes: 64 }), "too large");
  assert.deepEqual(parseResponseHead(long.subarray(0, 50), { maxHeadBytes: 64 }), { kind: "incomplete" });
  assert.throws(() => parseResponseHead(long, { maxHeadBytes: 0 }), RangeError);
});
