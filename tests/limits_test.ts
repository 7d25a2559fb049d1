/**
 * Per-connection limits over real sockets: `maxMessageBytes` (1009), `rateLimit` (1008) and `idleTimeout` (1001).
 * Every test checks that the offender alone is closed, that the others keep talking, and that `/healthz` counts
 * nothing once every client has gone.
 *
 * @module
 */

import assert from "node:assert/strict";
import { CLOSE_CODE } from "../lib/ws/close_code.ts";
import {
  assertEmpty,
  assertTalking,
  clientFrame,
  closeAll,
  engineTest,
  eventually,
  health,
  openClients,
  rawSocket,
  readServerFrames,
  readUntilClose,
  startServer,
} from "./_harness.ts";
import { concatBytes } from "./_ws_client_frames.ts";

/** Waits until `/healthz` reports no connection and no room. */

engineTest("maxMessageBytes: a larger message closes its sender with 1009 and reaches nobody", async (engine) => {
  const server = startServer(engine, { maxMessageBytes: 1024 });
  const [offender, alice, bob] = await openClients(`${server.wsUrl}/rooms/limits`, 3);
  try {
    // Exactly the limit passes: sizes are UTF-8 bytes, so 512 "é" are 1,024 bytes but only 512 characters.
    const atLimit = "é".repeat(512);
    offender.socket.send(atLimit);
    assert.equal((await bob.waitFor(1))[0], atLimit);

    // 513 "é" are 1,026 bytes: over the limit although it is far fewer than 1,024 characters.
    offender.socket.send("é".repeat(513));
    const { code, reason } = await offender.closed;
    assert.equal(code, CLOSE_CODE.MessageTooBig);
    // The same reason whether the deno engine's hub or the raw engine's frame parser (before reading the payload)
    // caught it.
    assert.equal(reason, "message too big");
    assert.equal(server.hub.stats.dropped.too_big, 1);

    await assertTalking(alice, bob, "still here");
    assert.deepEqual(bob.received, [atLimit, "still here"], "nothing of the large message reached the room");
    assert.deepEqual(alice.received, [atLimit, "still here"]);
    assert.equal(server.hub.members("limits"), 2);
  } finally {
    await closeAll([offender, alice, bob]);
  }
  await assertEmpty(server);
  await server.shutdown();
});

engineTest("maxMessageBytes: a binary message one byte over the limit closes with 1009", async (engine) => {
  const server = startServer(engine, { maxMessageBytes: 4096 });
  const [offender, alice, bob] = await openClients(`${server.wsUrl}/rooms/binary`, 3);
  try {
    offender.socket.send(new Uint8Array(4096).fill(1));
    assert.equal(((await alice.waitFor(1))[0] as ArrayBuffer).byteLength, 4096);
    offender.socket.send(new Uint8Array(4097).fill(2));
    assert.equal((await offender.closed).code, CLOSE_CODE.MessageTooBig);
    await assertTalking(bob, alice, "after");
    assert.equal(alice.received.length, 2, "the 4,097-byte message reached nobody");
    assert.equal(server.hub.stats.dropped.too_big, 1);
  } finally {
    await closeAll([offender, alice, bob]);
  }
  await assertEmpty(server);
  await server.shutdown();
});

engineTest("rateLimit: one message over the 2N burst closes its sender with 1008", async (engine) => {
  // N = 2: the burst is 4 and a token takes 500 ms to refill, so a stalled test machine cannot refill one in time.
  const rate = 2;
  const server = startServer(engine, { rateLimit: rate });
  const [sender, alice, bob] = await openClients(`${server.wsUrl}/rooms/rate`, 3);
  try {
    // Exactly one over the burst, and nothing after it: the close frame then reaches the sender on every engine.
    for (let i = 0; i <= 2 * rate; i++) sender.socket.send(`burst ${i}`);
    assert.deepEqual(await sender.closed, { code: CLOSE_CODE.PolicyViolation, reason: "rate limit exceeded" });
    assert.equal(server.hub.stats.dropped.rate_limit, 1);

    await assertTalking(alice, bob, "calm");
    const burst = Array.from({ length: 2 * rate }, (_, i) => `burst ${i}`);
    assert.deepEqual(bob.received, [...burst, "calm"], "the burst got through, the message over it did not");
    assert.equal(server.hub.members("rate"), 2);
  } finally {
    await closeAll([sender, alice, bob]);
  }
  await assertEmpty(server);
  await server.shutdown();
});

engineTest(
  "rateLimit: a client that keeps flooding after its 1008 is cut off; others are untouched",
  async (engine) => {
    const rate = 2;
    const server = startServer(engine, { rateLimit: rate });
    const [alice, bob] = await openClients(`${server.wsUrl}/rooms/flood`, 2);
    const flooder = await rawSocket(server.addr.port, "/rooms/flood");
    try {
      await eventually("3 members", () => server.hub.members("flood") === 3);
      // 40 frames in one write: the server reads frames past its own close.
      const frames = Array.from({ length: 40 }, (_, i) => clientFrame(0x1, `flood ${i}`));
      await flooder.write(concatBytes(...frames));
      const started = performance.now();
      const code = await readUntilClose(flooder);
      assert.ok(performance.now() - started < 4000, "the connection ended, not a 5 s read timeout");
      // Deno's behaviour: a data frame read after the server's close() makes Deno drop the TCP connection without
      // writing the close frame (a bare Deno.upgradeWebSocket server does the same), so the flooder sees EOF and no
      // code. An RFC 6455 engine keeps reading and discarding until the client's close, and its 1008 arrives.
      assert.equal(code, engine === "deno" ? null : CLOSE_CODE.PolicyViolation);
      assert.equal(server.hub.stats.dropped.rate_limit, 1);
      await eventually("the flooder to leave", () => server.hub.members("flood") === 2);

      await assertTalking(alice, bob, "calm");
      const burst = Array.from({ length: 2 * rate }, (_, i) => `flood ${i}`);
      assert.deepEqual(bob.received, [...burst, "calm"]);
    } finally {
      flooder.close();
      await closeAll([alice, bob]);
    }
    await assertEmpty(server);
    await server.shutdown();
  },
);

engineTest("rateLimit: a client using its burst and then staying under the rate is never closed", async (engine) => {
  const rate = 10;
  const server = startServer(engine, { rateLimit: rate });
  const [sender, receiver] = await openClients(`${server.wsUrl}/rooms/steady`, 2);
  try {
    const sent: string[] = [];
    const send = (text: string) => {
      sent.push(text);
      sender.socket.send(text);
    };
    for (let i = 0; i < 2 * rate; i++) send(`burst ${i}`);
    // Then 8 messages a second, under the 10/s refill, for one second.
    for (let i = 0; i < 8; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1000 / 8));
      send(`steady ${i}`);
    }
    assert.deepEqual(await receiver.waitFor(sent.length), sent);
    assert.deepEqual(await sender.waitFor(sent.length), sent);
    assert.equal(sender.socket.readyState, WebSocket.OPEN);
    assert.equal(server.hub.stats.dropped.rate_limit, 0);
  } finally {
    await closeAll([sender, receiver]);
  }
  await assertEmpty(server);
  await server.shutdown();
});

// README contract for --idle-timeout S: "ping after S/2 seconds of silence, close 1001 after S/2 more" (Deno's own
// semantics for `Deno.upgradeWebSocket`'s idleTimeout). Only incoming traffic counts as life.
engineTest(
  "idleTimeout: a client that never answers pings is pinged, closed with 1001, and leaves its room",
  async (engine) => {
    const idleTimeout = 2;
    const server = startServer(engine, { idleTimeout });
    // The bystanders are just as quiet, but their WebSocket client answers pings.
    const [alice, bob] = await openClients(`${server.wsUrl}/rooms/idle`, 2);
    const silent = await rawSocket(server.addr.port, "/rooms/idle");
    try {
      const start = performance.now();
      await eventually("3 members", () => server.hub.members("idle") === 3);
      const frames = await readFrames(silent, 3 * idleTimeout * 1000, start);
      const ping = frames.find((frame) => frame.opcode === 0x9);
      const close = frames.find((frame) => frame.opcode === 0x8);
      assert.ok(ping && close, `pinged and closed, got opcodes ${frames.map((frame) => frame.opcode)}`);
      assert.equal(close.code, CLOSE_CODE.GoingAway);
      // One reason on both engines (Deno's own words; the raw engine uses the same).
      assert.equal(close.reason, "No response from ping frame.");
      // 250 ms of slack below for timer coarseness; above, a dead peer must be gone within twice the timeout.
      assert.ok(ping.at >= idleTimeout * 500 - 250, `ping after ${Math.round(ping.at)} ms, expected >= ~1000 ms`);
      assert.ok(close.at >= idleTimeout * 1000 - 250, `close after ${Math.round(close.at)} ms, expected >= ~2000 ms`);
      assert.ok(close.at <= 2 * idleTimeout * 1000, `close after ${Math.round(close.at)} ms, expected <= 4000 ms`);
      await eventually("the silent client to leave the room", () => server.hub.members("idle") === 2);
      assert.deepEqual(await health(server), { status: "ok", connections: 2, rooms: 1 });

      // Quiet for longer than idleTimeout, but answering pings: still connected.
      assert.equal(alice.socket.readyState, WebSocket.OPEN);
      assert.equal(bob.socket.readyState, WebSocket.OPEN);
      await assertTalking(alice, bob, "still awake");
    } finally {
      silent.close();
      await closeAll([alice, bob]);
    }
    await assertEmpty(server);
    await server.shutdown();
  },
);

/** One server frame as read off a raw connection: opcode, close code, and when it arrived. */
interface ServerFrame {
  opcode: number;
  code?: number;
  /** A close frame's reason. */
  reason?: string;
  /** Milliseconds since `start`. */
  at: number;
}

/** Reads unmasked server frames (never answering anything) until a close frame, EOF, or `timeoutMs`. */
async function readFrames(conn: Deno.Conn, timeoutMs: number, start = performance.now()): Promise<ServerFrame[]> {
  const frames: ServerFrame[] = [];
  await readServerFrames(conn, {
    timeoutMs,
    keep: false,
    onFrame: ({ opcode, code, payload }) =>
      frames.push({
        opcode,
        code,
        reason: opcode === 0x8 ? new TextDecoder().decode(payload.subarray(2)) : undefined,
        at: performance.now() - start,
      }),
  });
  return frames;
}
