/**
 * The abuse table, one test per row. For every row: the offender gets the documented status or close code (or, on
 * the deno engine, what Deno itself decides, named as such), a bystander pair in the same room keeps talking, the
 * server keeps serving, and `/healthz` shows 0 connections and 0 rooms once everyone has gone.
 *
 * What Deno decides on the deno engine (Deno 2.9.6), against the RFC 6455 behaviour of the raw engine:
 *
 * | row                          | deno engine (Deno's behaviour)            | raw engine            |
 * | ---------------------------- | ----------------------------------------- | --------------------- |
 * | HTTP/1.0 upgrade             | `HTTP/1.0 101`: upgraded                  | 400                   |
 * | 100 KB request header        | 400, empty body (before the handler runs) | 431                   |
 * | POST upgrade with a body len | 400, empty body (before the handler runs) | 405                   |
 * | invalid UTF-8 text           | TCP closed, no close frame                | 1007                  |
 * | unmasked client frame        | accepted and relayed to the room          | 1002                  |
 * | reserved opcode              | TCP closed, no close frame                | 1002                  |
 * | fragmented control frame     | TCP closed, no close frame                | 1002                  |
 * | RSV bit without extension    | TCP closed, no close frame                | 1002                  |
 * | close frame, invalid code    | 1002                                      | 1002                  |
 * | flooding after our 1008      | TCP closed, no close frame (client: 0)    | 1008                  |
 *
 * @module
 */

import assert from "node:assert/strict";
import { CLOSE_CODE } from "../lib/ws/close_code.ts";
import type { Engine, ServerOptions } from "../lib/config.ts";
import type { HubbubServer } from "../lib/server.ts";
import {
  assertEmpty,
  assertTalking,
  clientFrame,
  closeAll,
  ENGINES,
  engineTest,
  eventually,
  health,
  openClients,
  rawSocket,
  readUntilClose,
  ServerFrameReader,
  startServer,
  type TestClient,
  upgradeHead,
} from "./_harness.ts";
import { startMain } from "./_process.ts";
import { concatBytes } from "./_ws_client_frames.ts";

const ROOM = "abuse";

/** What a row's abuse gets to work with. */
interface Scene {
  readonly server: HubbubServer;
  readonly port: number;
  /** Two well-behaved members of the room `abuse`. */
  readonly alice: TestClient;
  readonly bob: TestClient;
}

/**
 * Runs one row: a server with a bystander pair in `/rooms/abuse`, then `abuse`, then checks that the pair still
 * talks, that nobody else is left in the room, and that `/healthz` shows 0 and 0 once the pair has gone.
 */
async function row(engine: Engine, options: ServerOptions, abuse: (scene: Scene) => Promise<void>): Promise<void> {
  const server = startServer(engine, options);
  const [alice, bob] = await openClients(`${server.wsUrl}/rooms/${ROOM}`, 2);
  try {
    await abuse({ server, port: server.addr.port, alice, bob });
    await eventually("only the bystanders left in the room", () => server.hub.members(ROOM) === 2);
    await assertTalking(alice, bob, `still talking after the abuse (${engine})`);
    assert.deepEqual(await health(server), { status: "ok", connections: 2, rooms: 1 });
  } finally {
    await closeAll([alice, bob]);
  }
  await assertEmpty(server);
  await server.shutdown();
}

// --- Malformed handshakes -------------------------------------------------------------------------------------

/** Handshake rows: the request head, and the status (and reason) each engine answers with. */
const HANDSHAKES: {
  name: string;
  head: string;
  status: Record<Engine, number>;
  reason?: Partial<Record<Engine, RegExp>>;
  headers?: Record<string, string>;
}[] = [
  {
    name: "missing Sec-WebSocket-Key",
    head: upgradeHead(`/rooms/${ROOM}`, "", { omit: ["Sec-WebSocket-Key"] }),
    status: { deno: 400, raw: 400 },
    reason: { deno: /^Missing Sec-WebSocket-Key/, raw: /^Missing Sec-WebSocket-Key/ },
  },
  {
    name: "Sec-WebSocket-Key of the wrong length",
    head: upgradeHead(`/rooms/${ROOM}`, "Sec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\n", { omit: ["Sec-WebSocket-Key"] }),
    status: { deno: 400, raw: 400 },
    reason: { deno: /^Invalid Sec-WebSocket-Key/, raw: /^Invalid Sec-WebSocket-Key/ },
  },
  {
    name: "Sec-WebSocket-Version 8",
    head: upgradeHead(`/rooms/${ROOM}`, "Sec-WebSocket-Version: 8\r\n", { omit: ["Sec-WebSocket-Version"] }),
    status: { deno: 400, raw: 400 },
    reason: { deno: /^Unsupported Sec-WebSocket-Version/, raw: /^Unsupported Sec-WebSocket-Version/ },
    // RFC 6455 §4.4: tell the client which version we speak.
    headers: { "sec-websocket-version": "13" },
  },
  {
    name: "no Upgrade header",
    head: upgradeHead(`/rooms/${ROOM}`, "", { omit: ["Upgrade"] }),
    status: { deno: 400, raw: 400 },
    reason: { deno: /^Missing or invalid Upgrade header/, raw: /^Missing or invalid Upgrade header/ },
  },
  {
    name: "no Connection header",
    head: upgradeHead(`/rooms/${ROOM}`, "", { omit: ["Connection"] }),
    status: { deno: 400, raw: 400 },
    reason: { deno: /^Missing or invalid Connection header/, raw: /^Missing or invalid Connection header/ },
  },
  {
    name: "POST upgrade",
    head: upgradeHead(`/rooms/${ROOM}`).replace(/^GET /, "POST "),
    status: { deno: 405, raw: 405 },
    reason: { deno: /^WebSocket upgrades must use GET, not POST/, raw: /^WebSocket upgrades must use GET, not POST/ },
    headers: { allow: "GET" },
  },
  {
    // Deno's behaviour: Deno's HTTP layer answers a bare 400 (empty body, `Connection: close`) to a request that
    // has both `Connection: Upgrade` and a body length, before Hubbub's handler runs.
    name: "POST upgrade with Content-Length: 0",
    head: upgradeHead(`/rooms/${ROOM}`).replace(/^GET /, "POST ").replace("\r\n\r\n", "\r\nContent-Length: 0\r\n\r\n"),
    status: { deno: 400, raw: 405 },
    reason: { deno: /^$/, raw: /^WebSocket upgrades must use GET, not POST/ },
  },
  {
    // Deno's behaviour: Deno.serve hands the handler an HTTP/1.0 upgrade without saying which version it was, and
    // answers `HTTP/1.0 101 Switching Protocols`. The raw engine refuses it (RFC 6455 §4.1 needs HTTP/1.1).
    name: "HTTP/1.0 upgrade",
    head: upgradeHead(`/rooms/${ROOM}`, "", { version: "1.0" }),
    status: { deno: 101, raw: 400 },
    reason: { raw: /HTTP\/1\.1/ },
  },
  {
    // Deno's behaviour: Deno's HTTP layer refuses a head this large with a bare 400 (empty body, `Connection: close`)
    // before Hubbub's handler runs. The raw engine answers 431 Request Header Fields Too Large.
    name: "a 100 KB header",
    head: upgradeHead(`/rooms/${ROOM}`, `X-Padding: ${"a".repeat(100_000)}\r\n`),
    status: { deno: 400, raw: 431 },
    reason: { deno: /^$/, raw: /too large/i },
  },
  {
    name: "a 100 KB head of many small headers",
    head: upgradeHead(
      `/rooms/${ROOM}`,
      Array.from({ length: 100 }, (_, i) => `X-Padding-${i}: ${"a".repeat(1000)}\r\n`).join(""),
    ),
    status: { deno: 400, raw: 431 },
  },
];

/** A parsed HTTP response: status line, lower-cased headers, body. */
interface Answer {
  statusLine: string;
  status: number;
  headers: Map<string, string>;
  body: string;
}

/**
 * Sends `head` on a fresh connection and reads the response head and a body of `Content-Length` bytes. (The harness's
 * rawRequest stops early only on "HTTP/1.1 101", and Deno answers an HTTP/1.0 upgrade with "HTTP/1.0 101".)
 */
async function respond(port: number, head: string): Promise<Answer> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(head)).catch(() => 0);
    let bytes = new Uint8Array(0);
    const buffer = new Uint8Array(65536);
    const decoder = new TextDecoder();
    for (;;) {
      const text = decoder.decode(bytes);
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
        const headers = new Map<string, string>();
        for (const line of lines) {
          const colon = line.indexOf(":");
          headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
        }
        const status = Number(statusLine.split(" ")[1]);
        const length = status === 101 ? 0 : Number(headers.get("content-length") ?? 0);
        const body = bytes.subarray(new TextEncoder().encode(text.slice(0, end + 4)).length);
        if (body.length >= length) return { statusLine, status, headers, body: decoder.decode(body) };
      }
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) throw new Error(`Connection ended before a whole response: ${JSON.stringify(text)}`);
      const joined = new Uint8Array(bytes.length + n);
      joined.set(bytes);
      joined.set(buffer.subarray(0, n), bytes.length);
      bytes = joined;
    }
  } finally {
    conn.close();
  }
}

for (const handshake of HANDSHAKES) {
  engineTest(`abuse: ${handshake.name} is refused with the documented status`, async (engine) => {
    await row(engine, {}, async ({ server, port }) => {
      const response = await respond(port, handshake.head);
      assert.equal(response.status, handshake.status[engine], `${handshake.name}: ${response.statusLine}`);
      const reason = handshake.reason?.[engine];
      if (reason) assert.match(response.body, reason);
      for (const [name, value] of Object.entries(handshake.headers ?? {})) {
        assert.equal(response.headers.get(name), value, name);
      }
      if (response.status === 101) {
        assert.match(response.statusLine, /^HTTP\/1\.0 101 /, "Deno answers in the request's version");
      } else {
        assert.equal(response.headers.get("sec-websocket-accept"), undefined);
        assert.equal(server.hub.stats.upgrades, 2, "only the bystanders upgraded");
      }
    });
  });
}

// --- Protocol violations on an open connection ----------------------------------------------------------------

/**
 * Frame rows: what the offender sends, and what each engine does: the close code it sends, `null` for a TCP close
 * without a close frame, or `"relayed"` when the frame is taken as a normal message.
 */
const FRAMES: { name: string; frame: Uint8Array; outcome: Record<Engine, number | null | "relayed"> }[] = [
  {
    name: "a text frame with invalid UTF-8",
    frame: clientFrame(0x1, new Uint8Array([0x48, 0x69, 0xc3, 0x28])),
    // Deno's behaviour: Deno fails the connection ("Invalid UTF-8") by closing TCP without a close frame.
    outcome: { deno: null, raw: CLOSE_CODE.InvalidPayload },
  },
  {
    name: "an unmasked client frame",
    frame: clientFrame(0x1, "unmasked", { mask: false }),
    // Deno's behaviour: Deno accepts unmasked client frames (RFC 6455 §5.1 says fail with 1002) and the message is
    // relayed like any other; the connection stays open.
    outcome: { deno: "relayed", raw: CLOSE_CODE.ProtocolError },
  },
  {
    name: "a reserved opcode (0x3)",
    frame: clientFrame(0x3, "reserved"),
    outcome: { deno: null, raw: CLOSE_CODE.ProtocolError },
  },
  {
    name: "a reserved control opcode (0xB)",
    frame: clientFrame(0xb, "reserved"),
    outcome: { deno: null, raw: CLOSE_CODE.ProtocolError },
  },
  {
    name: "a fragmented control frame (ping without FIN)",
    frame: clientFrame(0x9, "ping", { fin: false }),
    outcome: { deno: null, raw: CLOSE_CODE.ProtocolError },
  },
  {
    name: "an RSV1 bit without a negotiated extension",
    frame: clientFrame(0x1, "compressed?", { rsv: 4 }),
    outcome: { deno: null, raw: CLOSE_CODE.ProtocolError },
  },
  {
    name: "a close frame with code 999",
    frame: clientFrame(0x8, new Uint8Array([0x03, 0xe7])),
    outcome: { deno: CLOSE_CODE.ProtocolError, raw: CLOSE_CODE.ProtocolError },
  },
  {
    name: "a close frame with the reserved code 1005",
    frame: clientFrame(0x8, new Uint8Array([0x03, 0xed])),
    outcome: { deno: CLOSE_CODE.ProtocolError, raw: CLOSE_CODE.ProtocolError },
  },
  {
    name: "a close frame with code 5000",
    frame: clientFrame(0x8, new Uint8Array([0x13, 0x88])),
    outcome: { deno: CLOSE_CODE.ProtocolError, raw: CLOSE_CODE.ProtocolError },
  },
];

for (const abuse of FRAMES) {
  engineTest(`abuse: ${abuse.name} fails only the offender's connection`, async (engine) => {
    await row(engine, {}, async ({ server, port, bob }) => {
      const offender = await rawSocket(port, `/rooms/${ROOM}`);
      try {
        await eventually("3 members", () => server.hub.members(ROOM) === 3);
        await offender.write(abuse.frame);
        const outcome = abuse.outcome[engine];
        if (outcome === "relayed") {
          // Deno's behaviour (see the table): the unmasked frame is taken as a normal message.
          assert.deepEqual(await bob.waitFor(1), ["unmasked"]);
          assert.equal(server.hub.members(ROOM), 3, "the offender is still connected");
          return;
        }
        const started = performance.now();
        assert.equal(await readUntilClose(offender), outcome);
        // readUntilClose also gives null when nothing came for 5 s: make sure the connection really ended.
        assert.ok(performance.now() - started < 4000, "the connection ended (EOF), not a silent timeout");
        await eventually("the offender to leave", () => server.hub.members(ROOM) === 2);
        assert.deepEqual(bob.received, [], "nothing of the offending frame reached the room");
      } finally {
        offender.close();
      }
    });
  });
}

// --- Volume ---------------------------------------------------------------------------------------------------

engineTest("abuse: a 2 MB message closes its sender with 1009 and reaches nobody", async (engine) => {
  await row(engine, {}, async ({ server, bob }) => {
    const [offender] = await openClients(`${server.wsUrl}/rooms/${ROOM}`, 1);
    offender.socket.send(new Uint8Array(2_000_000));
    const close = await offender.closed;
    assert.equal(close.code, CLOSE_CODE.MessageTooBig);
    assert.match(close.reason, /^message too big$/i);
    assert.equal(server.hub.stats.dropped.too_big, 1);
    assert.deepEqual(bob.received, []);
  });
});

engineTest(
  "abuse: 10,000 messages as fast as one client can send all reach another member, in order",
  async (engine) => {
    await row(engine, {}, async ({ server, bob }) => {
      const [sender] = await openClients(`${server.wsUrl}/rooms/${ROOM}`, 1);
      try {
        const count = 10_000;
        for (let i = 0; i < count; i++) sender.socket.send(`#${i}`);
        const expected = Array.from({ length: count }, (_, i) => `#${i}`);
        assert.deepEqual(await bob.waitFor(count, 20_000), expected);
        assert.deepEqual(await sender.waitFor(count, 20_000), expected);
        assert.equal(sender.socket.readyState, WebSocket.OPEN);
      } finally {
        await sender.close();
      }
    });
  },
);

engineTest("abuse: 10,000 messages as fast as possible under rateLimit close the sender (1008)", async (engine) => {
  const rate = 100;
  await row(engine, { rateLimit: rate }, async ({ server, alice, bob }) => {
    const [sender] = await openClients(`${server.wsUrl}/rooms/${ROOM}`, 1);
    for (let i = 0; i < 10_000; i++) sender.socket.send(`#${i}`);
    const close = await sender.closed;
    // Deno's behaviour: the sender is still sending when the 1008 is due, and Deno drops a connection that sends a
    // data frame after the server's close() without writing the close frame; Deno's client then reports code 0.
    assert.deepEqual(
      close,
      engine === "deno" ? { code: 0, reason: "" } : {
        code: CLOSE_CODE.PolicyViolation,
        reason: "rate limit exceeded",
      },
    );
    assert.equal(server.hub.stats.dropped.rate_limit, 1);
    // The burst (2N) got through, plus at most what the flood's few milliseconds refilled, in order. Alice's
    // marker is queued for bob after all of them, so once it arrives bob has everything the hub let through.
    await eventually("the sender to leave", () => server.hub.members(ROOM) === 2);
    await assertTalking(alice, bob, "marker");
    const flood = bob.received.slice(0, -1);
    assert.ok(flood.length >= 2 * rate && flood.length <= 2 * rate + 10, `bystander got ${flood.length} of the flood`);
    assert.deepEqual(flood, Array.from({ length: flood.length }, (_, i) => `#${i}`));
  });
});

engineTest("abuse: a flood of 10,000 pings is answered and slows nobody down", async (engine) => {
  await row(engine, {}, async ({ server, port, alice, bob }) => {
    const flooder = await rawSocket(port, `/rooms/${ROOM}`);
    try {
      await eventually("3 members", () => server.hub.members(ROOM) === 3);
      const payload = "p".repeat(125);
      const count = 10_000;
      const pongs = readPongs(flooder, payload);
      // 1.3 MB of pings in one write, while the bystanders talk.
      const flood = flooder.write(concatBytes(...Array.from({ length: count }, () => clientFrame(0x9, payload))));
      await assertTalking(alice, bob, "during the ping flood");
      await flood;
      const answered = await pongs.until((n) => n >= count, 10_000);
      // RFC 6455 §5.5.3 lets a server answer only the latest of several pings; both engines answer every one.
      assert.equal(answered, count);
      // The flooder is still a member and can talk.
      await flooder.write(clientFrame(0x1, "flooder says hi"));
      assert.equal((await bob.waitFor(2)).at(-1), "flooder says hi");
      pongs.stop();
    } finally {
      flooder.close();
    }
  });
});

/** Counts the pongs carrying `payload` read from `conn`; fails on any other frame. */
function readPongs(conn: Deno.Conn, payload: string) {
  let count = 0;
  let stopped = false;
  const reader = new ServerFrameReader();
  const expected = new TextEncoder().encode(payload);
  const buffer = new Uint8Array(65536);
  let failure: Error | undefined;
  const loop = (async () => {
    while (!stopped) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) return;
      for (const { opcode, payload: body } of reader.push(buffer.subarray(0, n))) {
        if (opcode === 0xa) {
          if (body.length !== expected.length || body.some((byte, i) => byte !== expected[i])) {
            failure ??= new Error("a pong did not echo its ping's payload");
          }
          count++;
        } else if (opcode !== 0x1) {
          failure ??= new Error(`unexpected frame with opcode ${opcode}`);
        }
      }
    }
  })();
  return {
    async until(done: (count: number) => boolean, timeoutMs: number): Promise<number> {
      await eventually("the pongs", () => done(count) || failure !== undefined, timeoutMs);
      if (failure) throw failure;
      return count;
    },
    stop(): Promise<void> {
      stopped = true;
      return loop;
    },
  };
}

// --- Broken connections ---------------------------------------------------------------------------------------

engineTest("abuse: a client that hangs up in the middle of a frame leaves no trace", async (engine) => {
  await row(engine, {}, async ({ server, port, bob }) => {
    for (let i = 0; i < 5; i++) {
      const conn = await rawSocket(port, `/rooms/${ROOM}`);
      await eventually("3 members", () => server.hub.members(ROOM) === 3);
      // A header announcing 1,000 bytes, then 300 of them, then FIN.
      const frame = clientFrame(0x1, "x".repeat(1000));
      await conn.write(frame.subarray(0, 4 + 4 + 300));
      conn.close();
      await eventually("the half-frame client to leave", () => server.hub.members(ROOM) === 2);
    }
    assert.deepEqual(bob.received, [], "no fragment of a half frame reached the room");
  });
});

engineTest(
  "abuse: a client that resets the TCP connection in the middle of a frame leaves no trace",
  async (engine) => {
    await row(engine, {}, async ({ server, port, alice, bob }) => {
      for (let i = 0; i < 5; i++) {
        const conn = await rawSocket(port, `/rooms/${ROOM}`);
        await eventually("3 members", () => server.hub.members(ROOM) === 3);
        // Unread data in our receive buffer makes close() send an RST instead of a FIN (Linux, RFC 2525 §2.17).
        await assertTalking(alice, bob, `unread by the resetter ${i}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
        const frame = clientFrame(0x2, new Uint8Array(100_000));
        await conn.write(frame.subarray(0, 50_000));
        conn.close();
        await eventually("the resetter to leave", () => server.hub.members(ROOM) === 2);
      }
      assert.ok(bob.received.every((message) => typeof message === "string"), "no binary fragment reached the room");
    });
  },
);

engineTest("abuse: 10,000 connect/disconnect cycles, 50 at a time, leave only the bystanders", async (engine) => {
  await row(engine, {}, async ({ server, port }) => {
    // 10,000 clean WebSocket open/close cycles take about 2 s per engine on the 2-core test machine.
    for (let batch = 0; batch < 10_000 / 50; batch++) {
      const clients = await openClients(`${server.wsUrl}/rooms/${ROOM}`, 50);
      await closeAll(clients);
    }
    // And 500 that upgrade and then drop TCP without a close frame.
    for (let batch = 0; batch < 10; batch++) {
      const conns = await Promise.all(Array.from({ length: 50 }, () => rawSocket(port, `/rooms/${ROOM}`)));
      for (const conn of conns) conn.close();
    }
    await eventually("the churn to drain", () => server.hub.members(ROOM) === 2);
    assert.equal(server.hub.stats.upgrades, 2 + 10_000 + 500);
  });
});

// --- Shutdown under load --------------------------------------------------------------------------------------

for (const engine of ENGINES) {
  Deno.test({
    name: `[${engine}] abuse: SIGTERM while 1,000 clients receive a broadcast: all get 1001, exit 0 within 2 s`,
    sanitizeOps: true,
    sanitizeResources: true,
  }, async () => {
    // 1,000 clients from one address: lift the per-IP cap (256 by default).
    const server = await startMain(["--engine", engine, "--max-connections-per-ip", "2000", "--log-level", "warn"]);
    const url = `ws://127.0.0.1:${server.port}/rooms/${ROOM}`;
    const clients: TestClient[] = [];
    for (let i = 0; i < 1000; i += 100) clients.push(...await openClients(url, 100));
    const [publisher] = await openClients(url, 1);
    // The broadcast: the publisher sends continuously, waiting for its own copy every 10 messages.
    let publishing = true;
    const broadcast = (async () => {
      for (let i = 0; publishing && publisher.socket.readyState === WebSocket.OPEN; i++) {
        publisher.socket.send(`tick ${i} ${"x".repeat(200)}`);
        if (i % 10 === 9) await publisher.waitFor(i + 1, 1000);
      }
    })();
    await eventually("every client to be receiving", () => clients.every((client) => client.received.length > 0));
    const started = performance.now();
    server.child.kill("SIGTERM");
    const closes = await Promise.all(clients.map((client) => client.closed));
    const { code } = await server.exited;
    const elapsed = performance.now() - started;
    publishing = false;
    await broadcast;
    await publisher.closed;
    assert.equal(code, 0);
    assert.ok(elapsed < 2000, `exited after ${elapsed.toFixed(0)} ms`);
    const codes = new Map<string, number>();
    for (const close of closes) {
      const key = `${close.code} ${close.reason}`;
      codes.set(key, (codes.get(key) ?? 0) + 1);
    }
    assert.deepEqual([...codes], [["1001 server shutting down", 1000]]);
    // Every receiver saw an unbroken prefix of the broadcast.
    for (const client of clients) {
      const ticks = client.received.map((message) => Number((message as string).split(" ")[1]));
      assert.ok(ticks.every((tick, i) => tick === i), "in order, no gaps");
    }
  });
}
