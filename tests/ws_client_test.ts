/**
 * Tests for `connectWebSocket` (lib/ws_client.ts): against a real Hubbub server on both engines, and against fake
 * servers written by hand on `Deno.listen` for what a real server never does (a masked frame, a bad 101, frames in
 * the same packet as the 101, silence).
 *
 * @module
 */

import assert from "node:assert/strict";
import { computeAcceptKey } from "../lib/ws/http1.ts";
import { connectWebSocket, type WebSocketClient, WebSocketHandshakeError } from "../lib/client/ws_client.ts";
import { engineTest, startServer } from "./_harness.ts";
import { selfSignedCertificate } from "./_tls.ts";
import { clientFrame, concatBytes, utf8 } from "./_ws_client_frames.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Collects what a client receives, and lets a test wait for a number of messages. */
function collect(
  socket: WebSocketClient,
): { messages: (string | ArrayBuffer)[]; next: (count: number) => Promise<void> } {
  const messages: (string | ArrayBuffer)[] = [];
  let wake = () => {};
  socket.onmessage = (data) => {
    messages.push(data);
    wake();
  };
  const next = async (count: number) => {
    while (messages.length < count && socket.readyState === "open") await new Promise<void>((r) => wake = r);
  };
  return { messages, next };
}

function pattern(length: number, seed = 7): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);
}

// ---------------------------------------------------------------------------------------------------------------
// Against Hubbub, on both engines

engineTest("connectWebSocket() echoes text and binary messages exactly", async (engine) => {
  const server = startServer(engine);
  try {
    const socket = await connectWebSocket(`${server.wsUrl}/echo`, { protocols: ["chat.v1"] });
    assert.equal(socket.protocol, "chat.v1"); // without --subprotocol, Hubbub selects the first offer
    assert.equal(socket.readyState, "open");
    const { messages, next } = collect(socket);
    const texts = ["hello", "", "ünïcödé ✓ 😀 日本語", "x".repeat(70_000)];
    const binaries = [0, 1, 125, 126, 65_535, 65_536, 200_000].map((length) => pattern(length));
    for (const text of texts) socket.send(text);
    for (const [i, bytes] of binaries.entries()) socket.send(i % 2 ? bytes : bytes.slice().buffer);
    // A view sends just its bytes.
    socket.send(new Uint8Array([9, 1, 2, 9]).subarray(1, 3));
    await next(texts.length + binaries.length + 1);
    assert.deepEqual(messages.slice(0, texts.length), texts);
    for (const [i, bytes] of binaries.entries()) {
      const received = messages[texts.length + i];
      assert.ok(received instanceof ArrayBuffer, `binary ${i} is an ArrayBuffer`);
      assert.deepEqual(new Uint8Array(received), bytes, `binary of ${bytes.length} bytes`);
    }
    assert.deepEqual(new Uint8Array(messages.at(-1) as ArrayBuffer), new Uint8Array([1, 2]));
    socket.close();
    assert.equal((await socket.closed).code, 1000);
  } finally {
    await server.shutdown();
  }
});

engineTest("connectWebSocket() ping() resolves with the round-trip time of each ping", async (engine) => {
  const server = startServer(engine);
  try {
    const socket = await connectWebSocket(`${server.wsUrl}/echo`);
    const times = await Promise.all([
      socket.ping(),
      socket.ping(),
      socket.ping("hello"),
      socket.ping(new Uint8Array(125).fill(0xff)),
    ]);
    for (const ms of times) assert.ok(Number.isFinite(ms) && ms >= 0 && ms < 5000, `round trip ${ms} ms`);
    await assert.rejects(socket.ping("x".repeat(126)), RangeError);
    socket.close();
    await socket.closed;
    await assert.rejects(socket.ping(), /Cannot ping: the connection is closed/);
  } finally {
    await server.shutdown();
  }
});

engineTest("connectWebSocket() rejects a refused handshake with the status and the server's reason", async (engine) => {
  const server = startServer(engine);
  try {
    const notFound = await connectWebSocket(`${server.wsUrl}/nope`).catch((error) => error);
    assert.ok(notFound instanceof WebSocketHandshakeError);
    assert.equal(notFound.status, 404);
    assert.equal(notFound.message, "HTTP 404: No such path: /nope (try /, /echo or /rooms/<name>)");
    const badRoom = await connectWebSocket(`${server.wsUrl}/rooms/${"x".repeat(300)}`).catch((error) => error);
    assert.ok(badRoom instanceof WebSocketHandshakeError);
    assert.equal(badRoom.status, 400);
    assert.match(badRoom.message, /^HTTP 400: Room name must be 1-64 characters/);
  } finally {
    await server.shutdown();
  }
});

engineTest("connectWebSocket() reports the server's shutdown as 1001 'server shutting down'", async (engine) => {
  const server = startServer(engine);
  const socket = await connectWebSocket(`${server.wsUrl}/rooms/lobby`);
  const events: unknown[] = [];
  socket.onclose = (code, reason) => events.push(["close", code, reason]);
  socket.onerror = (error) => events.push(["error", error.message]);
  await server.shutdown();
  assert.deepEqual(await socket.closed, { code: 1001, reason: "server shutting down", wasClean: true });
  assert.deepEqual(events, [["close", 1001, "server shutting down"]]);
  assert.equal(socket.readyState, "closed");
});

engineTest("connectWebSocket() close() completes the closing handshake; later sends are dropped", async (engine) => {
  const server = startServer(engine);
  try {
    const socket = await connectWebSocket(`${server.wsUrl}/echo`);
    let closes = 0;
    socket.onclose = () => closes++;
    socket.close(4000, "bye");
    assert.equal(socket.readyState, "closing");
    socket.send("dropped");
    socket.close(1000); // no second close frame
    const closed = await socket.closed;
    // Both engines echo the code and the reason (issue 15: one behaviour from outside).
    assert.deepEqual(closed, { code: 4000, reason: "bye", wasClean: true });
    assert.equal(closes, 1);
    assert.equal(socket.bufferedAmount, 0);
    assert.throws(() => socket.close(1005), RangeError);
    assert.throws(() => socket.close(1000, "é".repeat(62)), RangeError);
  } finally {
    await server.shutdown();
  }
});

engineTest("connectWebSocket() trusts a self-signed wss:// server only through caCerts", async (engine) => {
  const { cert, key } = await selfSignedCertificate();
  const server = startServer(engine, { cert, key });
  try {
    assert.match(server.wsUrl, /^wss:/);
    await assert.rejects(connectWebSocket(`${server.wsUrl}/echo`), /certificate|UnknownIssuer/i);
    const socket = await connectWebSocket(`${server.wsUrl}/echo`, { caCerts: [cert] });
    const { messages, next } = collect(socket);
    socket.send("over TLS");
    assert.ok((await socket.ping()) >= 0);
    await next(1);
    assert.deepEqual(messages, ["over TLS"]);
    socket.close();
    assert.equal((await socket.closed).wasClean, true);
  } finally {
    await server.shutdown();
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Against fake servers

/** A frame read from the client, unmasked, with whether it was masked. */
interface ReadFrame {
  fin: boolean;
  opcode: number;
  masked: boolean;
  payload: Uint8Array;
}

/** The server end of one connection: buffered reads of the request head and of client frames, and raw writes. */
class FakeConnection {
  readonly conn: Deno.Conn;
  #buffered: Uint8Array = new Uint8Array(0);

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  async #fill(count: number): Promise<boolean> {
    const buffer = new Uint8Array(65_536);
    while (this.#buffered.length < count) {
      const n = await this.conn.read(buffer).catch(() => null);
      if (n === null) return false;
      this.#buffered = concatBytes(this.#buffered, buffer.subarray(0, n));
    }
    return true;
  }

  #take(count: number): Uint8Array {
    const taken = this.#buffered.subarray(0, count);
    this.#buffered = this.#buffered.subarray(count);
    return taken;
  }

  /** Reads the request head (through the blank line). */
  async head(): Promise<string> {
    for (;;) {
      const end = decoder.decode(this.#buffered).indexOf("\r\n\r\n");
      if (end >= 0) return decoder.decode(this.#take(end + 4));
      if (!(await this.#fill(this.#buffered.length + 1))) throw new Error("EOF before the request head ended");
    }
  }

  /** Reads one frame, or `null` at EOF. */
  async frame(): Promise<ReadFrame | null> {
    if (!(await this.#fill(2))) return null;
    const [b0, b1] = this.#buffered;
    let length = b1 & 0x7f;
    const extended = length === 126 ? 2 : length === 127 ? 8 : 0;
    const masked = (b1 & 0x80) !== 0;
    const headerSize = 2 + extended + (masked ? 4 : 0);
    if (!(await this.#fill(headerSize))) return null;
    if (extended > 0) {
      length = 0;
      for (let i = 0; i < extended; i++) length = length * 256 + this.#buffered[2 + i];
    }
    if (!(await this.#fill(headerSize + length))) return null;
    const frame = this.#take(headerSize + length);
    const key = frame.subarray(2 + extended, headerSize);
    const payload = frame.slice(headerSize);
    if (masked) { for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3]; }
    return { fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, masked, payload };
  }

  /** Reads until EOF, so that closing never meets unread input. */
  async drain(): Promise<void> {
    while (await this.#fill(this.#buffered.length + 1)) this.#take(this.#buffered.length);
  }

  async write(...parts: (Uint8Array | string)[]): Promise<void> {
    const bytes = concatBytes(...parts.map((part) => typeof part === "string" ? encoder.encode(part) : part));
    let offset = 0;
    while (offset < bytes.length) offset += await this.conn.write(bytes.subarray(offset));
  }
}

/** The 101 for a request head, with `extra` header lines (each ending in CRLF). */
async function switching(head: string, extra = ""): Promise<string> {
  const key = /\r\nsec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? "";
  return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${await computeAcceptKey(key)}\r\n${extra}\r\n`;
}

/** A frame as a server writes it: unmasked. */
function serverFrame(opcode: number, payload: Uint8Array | string = "", options: { mask?: Uint8Array } = {}) {
  return clientFrame(opcode, payload, { mask: options.mask ?? false });
}

function closePayload(code: number, reason = ""): Uint8Array {
  return concatBytes(new Uint8Array([code >>> 8, code & 0xff]), utf8(reason));
}

/**
 * Runs `body` with the URL of a one-connection fake server that runs `script` on the connection it accepts; the
 * connection is closed when the script returns, and a failing script fails the test.
 */
async function withFakeServer(
  script: (connection: FakeConnection) => Promise<void>,
  body: (url: string) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let accepted = false;
  const serving = (async () => {
    const conn = await listener.accept();
    accepted = true;
    try {
      await script(new FakeConnection(conn));
    } finally {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  })();
  const outcome = await body(`ws://127.0.0.1:${listener.addr.port}`).then(() => undefined, (error) => ({ error }));
  listener.close(); // ends an accept() still waiting when the body never connected
  const failure = await serving.then(() => undefined, (error) => ({ error }));
  // A failed script explains a failed body better than the other way round.
  if (accepted && failure !== undefined) throw failure.error;
  if (outcome !== undefined) throw outcome.error;
}

Deno.test("connectWebSocket() sends a complete upgrade request and uses the selected subprotocol", async () => {
  let head = "";
  await withFakeServer(async (connection) => {
    head = await connection.head();
    await connection.write(await switching(head, "Sec-WebSocket-Protocol: chat.v1\r\n"));
    await connection.write(serverFrame(0x8, closePayload(1000)));
    assert.deepEqual(await connection.frame(), { fin: true, opcode: 0x8, masked: true, payload: closePayload(1000) });
  }, async (url) => {
    const socket = await connectWebSocket(`${url}/rooms/a?token=t`, {
      protocols: ["chat.v2", "chat.v1"],
      origin: "https://example.test",
      headers: { Authorization: "Bearer s3cret", "X-Trace": "42" },
    });
    assert.equal(socket.protocol, "chat.v1");
    assert.deepEqual(await socket.closed, { code: 1000, reason: "", wasClean: true });
  });
  const [requestLine, ...lines] = head.trimEnd().split("\r\n");
  assert.equal(requestLine, "GET /rooms/a?token=t HTTP/1.1");
  const headers = new Map(
    lines.map((line) => [line.slice(0, line.indexOf(":")).toLowerCase(), line.slice(line.indexOf(":") + 2)]),
  );
  assert.equal(lines[0].toLowerCase().startsWith("host: 127.0.0.1:"), true, "Host comes first");
  assert.equal(headers.get("upgrade"), "websocket");
  assert.equal(headers.get("connection"), "Upgrade");
  assert.equal(headers.get("sec-websocket-version"), "13");
  assert.equal(atob(headers.get("sec-websocket-key")!).length, 16);
  assert.equal(headers.get("sec-websocket-protocol"), "chat.v2, chat.v1");
  assert.equal(headers.get("origin"), "https://example.test");
  assert.equal(headers.get("authorization"), "Bearer s3cret");
  assert.equal(headers.get("x-trace"), "42");
  assert.equal(lines.length, headers.size, "no header twice");
});

Deno.test("connectWebSocket() delivers frames that arrive in the same packet as the 101", async () => {
  const events: unknown[] = [];
  await withFakeServer(async (connection) => {
    const head = await connection.head();
    // One write: the 101, two messages, a ping, and the server's close.
    await connection.write(
      await switching(head),
      serverFrame(0x1, "right after the 101"),
      serverFrame(0x2, new Uint8Array([1, 2, 3])),
      serverFrame(0x9, "are you there"),
      serverFrame(0x8, closePayload(4001, "kicked")),
    );
    // The pong, then the answer to the close: masked, the same payload, the same code.
    assert.deepEqual(await connection.frame(), {
      fin: true,
      opcode: 0xa,
      masked: true,
      payload: utf8("are you there"),
    });
    assert.deepEqual(await connection.frame(), {
      fin: true,
      opcode: 0x8,
      masked: true,
      payload: closePayload(4001, "kicked"),
    });
  }, async (url) => {
    const socket = await connectWebSocket(url);
    socket.onmessage = (data) => events.push(typeof data === "string" ? data : Array.from(new Uint8Array(data)));
    socket.onclose = (code, reason) => events.push(["close", code, reason]);
    assert.deepEqual(await socket.closed, { code: 4001, reason: "kicked", wasClean: true });
  });
  assert.deepEqual(events, ["right after the 101", [1, 2, 3], ["close", 4001, "kicked"]]);
});

Deno.test("connectWebSocket() fails the connection with 1002 on a masked server frame", async () => {
  const errors: string[] = [];
  await withFakeServer(async (connection) => {
    const head = await connection.head();
    await connection.write(await switching(head), serverFrame(0x1, "masked", { mask: new Uint8Array([1, 2, 3, 4]) }));
    const frame = await connection.frame();
    assert.deepEqual(frame, { fin: true, opcode: 0x8, masked: true, payload: closePayload(1002, "Frame masked") });
    // The server ends the connection, as RFC 6455 §7.1.1 expects.
  }, async (url) => {
    const socket = await connectWebSocket(url);
    let messages = 0;
    socket.onmessage = () => messages++;
    socket.onerror = (error) => errors.push(error.message);
    const closed = await socket.closed;
    assert.equal(closed.code, 1002);
    assert.equal(closed.reason, "Frame masked");
    assert.equal(closed.wasClean, false);
    assert.match(closed.error!.message, /Frame masked/);
    assert.equal(messages, 0);
  });
  assert.deepEqual(errors, ["The server broke the WebSocket protocol: Frame masked (closing with 1002)"]);
});

Deno.test("connectWebSocket() fails with 1009 on a message over maxMessageBytes", async () => {
  await withFakeServer(async (connection) => {
    const head = await connection.head();
    await connection.write(await switching(head), serverFrame(0x2, new Uint8Array(2048)));
    assert.deepEqual((await connection.frame())?.payload.subarray(0, 2), new Uint8Array([0x03, 0xf1]));
  }, async (url) => {
    const socket = await connectWebSocket(url, { maxMessageBytes: 1024 });
    assert.equal((await socket.closed).code, 1009);
  });
});

Deno.test("connectWebSocket() reports 1006 when the connection drops without a close frame", async () => {
  const events: unknown[] = [];
  await withFakeServer(async (connection) => {
    await connection.write(await switching(await connection.head()));
  }, async (url) => {
    const socket = await connectWebSocket(url);
    socket.onclose = (code, reason) => events.push([code, reason]);
    const pong = socket.ping();
    assert.deepEqual(await socket.closed, { code: 1006, reason: "", wasClean: false });
    await assert.rejects(pong, /closed before the pong arrived/);
  });
  assert.deepEqual(events, [[1006, ""]]);
});

Deno.test("connectWebSocket() gives up on a server that does not answer its close within the timeout", async () => {
  await withFakeServer(async (connection) => {
    await connection.write(await switching(await connection.head()));
    // Reads the close frame but never answers: the client cuts the connection.
    assert.equal((await connection.frame())?.opcode, 0x8);
    await connection.drain();
  }, async (url) => {
    const socket = await connectWebSocket(url);
    const start = Date.now();
    socket.close(1000);
    assert.deepEqual(await socket.closed, { code: 1006, reason: "", wasClean: false });
    assert.ok(Date.now() - start >= 1500, "waited for the answer");
  });
});

Deno.test("connectWebSocket() writes a large message whole through partial writes, masked", async () => {
  const big = pattern(8 * 1024 * 1024, 3);
  await withFakeServer(async (connection) => {
    await connection.write(await switching(await connection.head()));
    const frames = [await connection.frame(), await connection.frame(), await connection.frame()];
    assert.deepEqual(frames.map((frame) => [frame?.opcode, frame?.masked]), [[1, true], [2, true], [1, true]]);
    assert.equal(decoder.decode(frames[0]!.payload), "before");
    assert.ok(frames[1]!.payload.length === big.length && frames[1]!.payload.every((byte, i) => byte === big[i]));
    assert.equal(decoder.decode(frames[2]!.payload), "after");
    await connection.write(serverFrame(0x1, "got it"), serverFrame(0x8, closePayload(1000)));
    assert.equal((await connection.frame())?.opcode, 0x8);
  }, async (url) => {
    const socket = await connectWebSocket(url);
    const { messages, next } = collect(socket);
    socket.send("before");
    socket.send(big);
    socket.send("after");
    assert.ok(socket.bufferedAmount > big.length, `bufferedAmount ${socket.bufferedAmount}`);
    await next(1);
    assert.deepEqual(messages, ["got it"]);
    // The server read everything, but the last write's completion may reach us after its answer: allow a moment.
    for (let i = 0; i < 100 && socket.bufferedAmount > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(socket.bufferedAmount, 0);
    assert.equal((await socket.closed).code, 1000);
  });
});

Deno.test("connectWebSocket() refuses an invalid 101", async () => {
  const cases: [string, (head: string) => Promise<string>, RegExp][] = [
    ["wrong accept", async () => (await switching("Sec-WebSocket-Key: x\r\n")), /wrong Sec-WebSocket-Accept/],
    ["no Upgrade", async (head) => (await switching(head)).replace("Upgrade: websocket\r\n", ""), /Upgrade: websocket/],
    [
      "no Connection",
      async (head) => (await switching(head)).replace("Connection: Upgrade\r\n", "Connection: keep-alive\r\n"),
      /Connection: Upgrade/,
    ],
    [
      "an extension",
      (head) => switching(head, "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
      /extension not offered/,
    ],
    ["a subprotocol", (head) => switching(head, "Sec-WebSocket-Protocol: other\r\n"), /subprotocol not offered: other/],
  ];
  for (const [name, answer, message] of cases) {
    await withFakeServer(async (connection) => {
      await connection.write(await answer(await connection.head()));
      await connection.drain();
    }, async (url) => {
      const error = await connectWebSocket(url, { protocols: ["chat"] }).catch((error) => error);
      assert.ok(error instanceof WebSocketHandshakeError, name);
      assert.equal(error.status, 101, name);
      assert.match(error.message, message, name);
    });
  }
});

Deno.test("connectWebSocket() takes a refusal's reason from the first line of its body, bounded", async () => {
  const cases: [string, string, string][] = [
    [
      "403 with Content-Length",
      "HTTP/1.1 403 Forbidden\r\nContent-Length: 24\r\n\r\nOrigin not allowed\nmore\n",
      "HTTP 403: Origin not allowed",
    ],
    [
      "503 to EOF",
      "HTTP/1.1 503 Service Unavailable\r\n\r\n\n  Too many connections  \r\n",
      "HTTP 503: Too many connections",
    ],
    ["401 without a body", "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", "HTTP 401: Unauthorized"],
    [
      "500 in HTML",
      "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/html\r\nContent-Length: 13\r\n\r\n<html></html>",
      "HTTP 500: Internal Server Error",
    ],
    // Content-Length promises far more than comes: the client reads 4 KiB at most and does not wait for the rest.
    [
      "a huge body",
      `HTTP/1.1 400 Bad Request\r\nContent-Length: 100000\r\n\r\n${"a".repeat(5000)}`,
      `HTTP 400: ${"a".repeat(200)}…`,
    ],
    ["a control character", "HTTP/1.1 404 Not Found\r\n\r\nNo \x1b[31mroute", "HTTP 404: No [31mroute"],
  ];
  for (const [name, response, message] of cases) {
    await withFakeServer(async (connection) => {
      await connection.head();
      await connection.write(response);
      if (!name.startsWith("a huge")) await connection.conn.closeWrite();
      await connection.drain();
    }, async (url) => {
      const error = await connectWebSocket(url).catch((error) => error);
      assert.ok(error instanceof WebSocketHandshakeError, name);
      assert.equal(error.message, message, name);
    });
  }
});

Deno.test("connectWebSocket() still reports the refusal when its body stalls past the timeout", async () => {
  await withFakeServer(async (connection) => {
    await connection.head();
    await connection.write("HTTP/1.1 429 Too Many Requests\r\nContent-Length: 100\r\n\r\nSlow down\n");
    await connection.drain(); // the other 90 bytes never come
  }, async (url) => {
    const error = await connectWebSocket(url, { timeoutMs: 200 }).catch((error) => error);
    assert.ok(error instanceof WebSocketHandshakeError, String(error));
    assert.equal(error.message, "HTTP 429: Slow down");
  });
});

Deno.test("connectWebSocket() times out on a silent server, and stops when its signal aborts", async () => {
  await withFakeServer(async (connection) => {
    await connection.head();
    await connection.drain(); // never answers; ends when the client gives up
  }, async (url) => {
    const error = await connectWebSocket(url, { timeoutMs: 100 }).catch((error) => error);
    assert.ok(error instanceof DOMException);
    assert.equal(error.name, "TimeoutError");
  });
  await withFakeServer(async (connection) => {
    await connection.head();
    await connection.drain();
  }, async (url) => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("user gave up")), 50);
    await assert.rejects(connectWebSocket(url, { signal: controller.signal }), /user gave up/);
  });
});

Deno.test("connectWebSocket() rejects bad URLs and options at once, and reports a refused TCP connection", async () => {
  const cases: [string, Parameters<typeof connectWebSocket>[1], RegExp][] = [
    ["http://127.0.0.1:1/", {}, /Not a ws:\/\/ or wss:\/\/ URL/],
    ["ws://127.0.0.1:1/", { protocols: ["a b"] }, /Invalid subprotocol name: "a b"/],
    ["ws://127.0.0.1:1/", { protocols: ["a", "a"] }, /Duplicate subprotocol/],
    ["ws://127.0.0.1:1/", { headers: { "Sec-WebSocket-Key": "x" } }, /set by the WebSocket handshake itself/],
    ["ws://127.0.0.1:1/", { headers: { Origin: "a" }, origin: "b" }, /origin conflicts with an Origin header/],
    ["ws://127.0.0.1:1/", { headers: { "X-Bad": "a\r\nInjected: yes" } }, /./],
    ["ws://127.0.0.1:1/", { timeoutMs: 0 }, /timeoutMs must be a positive number/],
    ["ws://127.0.0.1:1/", { maxMessageBytes: -1 }, /maxMessageBytes must be a non-negative safe integer/],
  ];
  for (const [url, options, message] of cases) {
    await assert.rejects(connectWebSocket(url, options), (error: Error) => {
      assert.ok(error instanceof TypeError || error instanceof RangeError, `${error}`);
      assert.match(error.message, message);
      return true;
    });
  }
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  await assert.rejects(connectWebSocket(`ws://127.0.0.1:${port}/`), Deno.errors.ConnectionRefused);
});
