/**
 * Tests for `lib/client/reconnect.ts`: the backoff, the recovery URL, reading envelopes and `joined` frames, and a
 * {@linkcode ReconnectingClient} over real sockets (the CLI's end-to-end runs are in `client_test.ts`).
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  backoffDelay,
  describeRecovery,
  parseEnvelope,
  readRecovery,
  type ReconnectEvent,
  ReconnectingClient,
  recoveryUrl,
  unwrapMessage,
} from "../lib/client/reconnect.ts";
import { connectWebSocket } from "../lib/client/ws_client.ts";
import type { EnvelopeJoined } from "../lib/hub/envelope.ts";
import { HUBBUB_PROTOCOL } from "../lib/ws/subprotocol.ts";
import { engineTest, eventually, startServer, TestClient } from "./_harness.ts";

Deno.test("backoffDelay() doubles from 250 ms to 10 s and jitters within the upper half of each step", () => {
  const ceilings = [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000];
  assert.deepEqual(ceilings.map((_, attempt) => backoffDelay(attempt, { random: () => 1 })), ceilings);
  assert.deepEqual(
    ceilings.map((_, attempt) => backoffDelay(attempt, { random: () => 0 })),
    ceilings.map((c) => c / 2),
  );
  // A thousand clients dropped together spread over the step instead of coming back at once.
  const delays = Array.from({ length: 1000 }, () => backoffDelay(4));
  assert.ok(delays.every((delay) => delay >= 2000 && delay <= 4000));
  assert.ok(new Set(delays.map((delay) => Math.floor(delay / 100))).size >= 15, "spread over the step");
  assert.equal(backoffDelay(1e6, { random: () => 1 }), 10_000, "no overflow for a long outage");
});

Deno.test("recoveryUrl() asks for everything after the position, keeps the token and drops replay", () => {
  assert.equal(
    recoveryUrl("wss://h:8/rooms/a?token=t%20k&replay=20", { offset: 7, epoch: "ab12" }),
    "wss://h:8/rooms/a?token=t+k&since=7&epoch=ab12",
  );
  assert.equal(recoveryUrl("ws://h/?since=1&epoch=old", { offset: 9, epoch: "new" }), "ws://h/?since=9&epoch=new");
  assert.equal(recoveryUrl("ws://h/?since=1&epoch=old", undefined), "ws://h/");
});

Deno.test("parseEnvelope() knows joined and message frames, passes others, and refuses what is not one", () => {
  const joined = { type: "joined", room: "a", offset: 4, epoch: "e", recovered: false, missed: 0 };
  assert.deepEqual(parseEnvelope(JSON.stringify(joined)), joined);
  assert.deepEqual(parseEnvelope('{"type":"join","room":"a","sub":"u"}'), { type: "other" });
  const binary = parseEnvelope('{"type":"message","room":"a","offset":5,"epoch":"e","binary":"AQID"}');
  assert.ok(binary?.type === "message");
  assert.deepEqual(new Uint8Array(unwrapMessage(binary) as ArrayBuffer), new Uint8Array([1, 2, 3]));
  for (const text of ["", "{", "[1]", "null", '{"type":"message","offset":"5","epoch":"e","data":"x"}', "{}"]) {
    assert.equal(parseEnvelope(text), undefined, text);
  }
});

Deno.test("readRecovery() and describeRecovery(): recovered, lost with a count, lost without one", () => {
  const joined: EnvelopeJoined = { type: "joined", room: "a", offset: 30, epoch: "e", recovered: true, missed: 5 };
  const before = { offset: 25, epoch: "e" };
  const said = (frame: EnvelopeJoined, askedSince: boolean, position = before) =>
    describeRecovery(readRecovery(frame, askedSince, position));
  assert.equal(said(joined, true), "recovered 5 missed messages");
  assert.equal(said({ ...joined, recovered: false, missed: 26 }, true), "some messages were lost (26 missed)");
  assert.equal(said({ ...joined, recovered: false, missed: 0, epoch: "f" }, true), "some messages were lost");
  // Without since (the server keeps no history), the offsets tell.
  assert.equal(said({ ...joined, recovered: false, missed: 0 }, false), "some messages were lost (5 missed)");
  assert.equal(
    said({ ...joined, recovered: false, missed: 0 }, false, { offset: 30, epoch: "e" }),
    "recovered 0 missed messages",
  );
  assert.equal(said({ ...joined, recovered: false, missed: 0, epoch: "f" }, false), "some messages were lost");
});

engineTest(
  "ReconnectingClient unwraps the envelope, waits to reconnect after 1001, and close() then ends it as asked",
  async (engine) => {
    const server = startServer(engine, { historySize: 10 });
    await server.ready;
    const open = (url: string, signal?: AbortSignal) => connectWebSocket(url, { protocols: [HUBBUB_PROTOCOL], signal });
    const first = await open(`${server.wsUrl}/rooms/r`);
    const client = new ReconnectingClient(first, { open, minDelayMs: 60_000, maxDelayMs: 60_000 });
    const events: ReconnectEvent[] = [];
    const received: unknown[] = [];
    client.onevent = (event) => events.push(event);
    client.onmessage = (data) => received.push(data);
    const publisher = new TestClient(`${server.wsUrl}/rooms/r`);
    try {
      await publisher.opened();
      publisher.socket.send("hello");
      await eventually("the unwrapped message", () => received.length === 1);
      assert.deepEqual(received, ["hello"]);
      assert.equal(client.protocol, HUBBUB_PROTOCOL);
    } finally {
      await publisher.close();
      await server.shutdown();
    }
    // The server went away (1001): the client waits for its next attempt (a minute here), and close() stops it.
    await eventually("the drop", () => client.readyState === "reconnecting");
    assert.equal(events[0].type, "dropped");
    assert.equal(events[0].type === "dropped" && events[0].closed.code, 1001);
    await assert.rejects(client.ping(), /Cannot ping: the connection is reconnecting/);
    client.close(4000, "bye");
    assert.deepEqual(await client.closed, { code: 4000, reason: "bye", wasClean: true });
    assert.equal(client.readyState, "closed");
  },
);
