/**
 * History, replay and recovery on one node (the cluster variants are in `cluster_test.ts`): `?replay=`, the
 * `hubbub.v1` envelope, `?since=&epoch=`, `GET /rooms/<name>/history`, and the `RoomLog` behind them.
 *
 * @module
 */

import assert from "node:assert/strict";
import { RoomLog } from "../lib/broker/history.ts";
import { CLOSE_CODE } from "../lib/ws/close_code.ts";
import {
  closeAll,
  engineTest,
  eventually,
  openClients,
  rawRequest,
  startServer,
  TestClient,
  upgradeHead,
} from "./_harness.ts";

Deno.test("RoomLog keeps the newest N per room, within the TTL and the byte cap, with consecutive offsets", () => {
  let now = 1_000_000;
  const log = new RoomLog({ size: 3, ttlSeconds: 10, maxBytes: 10, now: () => now });
  for (let i = 1; i <= 5; i++) assert.equal(log.append("a", `m${i}`, 2).offset, i);
  let page = log.read("a");
  assert.deepEqual(page.entries.map((entry) => entry.offset), [3, 4, 5]);
  assert.equal(page.first, 3);
  assert.equal(page.latest, 5);
  assert.deepEqual(log.read("a", { after: 3 }).entries.map((entry) => entry.data), ["m4", "m5"]);
  assert.deepEqual(log.read("a", { last: 1 }).entries.map((entry) => entry.data), ["m5"]);
  // The byte cap: 6 bytes kept of a 10-byte cap, then a 7-byte message leaves room for itself alone.
  log.append("a", "big", 7);
  assert.deepEqual(log.read("a").entries.map((entry) => entry.data), ["m5", "big"]);
  assert.equal(log.bytes, 9);
  now += 10_001;
  page = log.read("a");
  assert.deepEqual(page.entries, [], "expired");
  assert.equal(page.latest, 6, "the offsets go on");
  // An idle room with nothing kept is forgotten: its next message starts a new epoch.
  const epoch = page.epoch;
  log.setActive("a", false);
  assert.equal(log.rooms, 0);
  assert.notEqual(log.append("a", "again", 5).epoch, epoch);
});

Deno.test("RoomLog without history still counts offsets, and forgets rooms with no members", () => {
  const log = new RoomLog();
  assert.equal(log.append("r", "x", 1).offset, 1);
  assert.equal(log.append("r", "y", 1).offset, 2);
  assert.deepEqual(log.read("r").entries, []);
  log.setActive("r", true);
  log.setActive("r", false);
  assert.equal(log.rooms, 0);
  log.append("s", "x", 1);
  log.sweep();
  assert.equal(log.rooms, 0, "a room published to without members goes at the next sweep");
});

/** Parses envelope frames. */
function envelopes(messages: (string | ArrayBuffer)[]): Record<string, unknown>[] {
  return messages.map((message) => JSON.parse(message as string));
}

engineTest("?replay=N delivers the newest N verbatim, then live ones, with no gap or duplicate", async (engine) => {
  const server = startServer(engine, { historySize: 100 });
  const [publisher] = await openClients(`${server.wsUrl}/rooms/replay`, 1);
  try {
    // Joiners arrive while a publisher sends 1,000 messages.
    const total = 1000;
    const joiners: TestClient[] = [];
    const plain: TestClient[] = [];
    for (let i = 0; i < total; i++) {
      publisher.socket.send(`m${i}`);
      if (i % 200 === 100) {
        await publisher.waitFor(i + 1);
        joiners.push(new TestClient(`${server.wsUrl}/rooms/replay?replay=20`, ["hubbub.v1"]));
        plain.push(new TestClient(`${server.wsUrl}/rooms/replay?replay=20`));
      }
    }
    await Promise.all([...joiners, ...plain].map((client) => client.opened()));
    await publisher.waitFor(total);
    publisher.socket.send("end");
    for (const client of joiners) {
      await eventually("the end marker", () => client.received.some((m) => (m as string).includes('"data":"end"')));
      const [joined, ...messages] = envelopes(client.received);
      assert.equal(joined.type, "joined");
      const offsets = messages.map((message) => message.offset as number);
      // Gapless and duplicate-free: consecutive offsets from the first replayed one to the end marker.
      assert.deepEqual(offsets, Array.from({ length: offsets.length }, (_, i) => offsets[0] + i));
      assert.equal(offsets[0], (joined.offset as number) - 19, "exactly the newest 20 first");
      assert.equal(offsets.at(-1), total + 1);
      assert.ok(
        messages.every((message) =>
          message.data === (message.offset === total + 1 ? "end" : `m${(message.offset as number) - 1}`)
        ),
      );
    }
    for (const client of plain) {
      await eventually("the end marker", () => client.received.includes("end"));
      const numbers = client.received.slice(0, -1).map((m) => Number((m as string).slice(1)));
      assert.deepEqual(numbers, Array.from({ length: numbers.length }, (_, i) => numbers[0] + i));
      assert.equal(numbers.at(-1), total - 1);
    }
    await closeAll([...joiners, ...plain]);
  } finally {
    await closeAll([publisher]);
    await server.shutdown();
  }
});

engineTest(
  "the envelope: a joined frame, then every message with its offset and epoch, binary in base64",
  async (engine) => {
    const server = startServer(engine);
    const [client] = await openClients(`${server.wsUrl}/rooms/env`, 1);
    const enveloped = new TestClient(`${server.wsUrl}/rooms/env`, ["hubbub.v1", "chat"]);
    try {
      await enveloped.opened();
      assert.equal(enveloped.socket.protocol, "hubbub.v1");
      client.socket.send("hello");
      client.socket.send(new Uint8Array([1, 2, 3]));
      const [joined, text, binary] = envelopes(await enveloped.waitFor(3));
      const epoch = joined.epoch;
      assert.deepEqual(joined, { type: "joined", room: "env", offset: 0, epoch, recovered: false, missed: 0 });
      assert.deepEqual(text, { type: "message", room: "env", offset: 1, epoch, data: "hello" });
      assert.deepEqual(binary, { type: "message", room: "env", offset: 2, epoch, binary: "AQID" });
      // What an envelope client sends is plain: the other client gets it as it was sent.
      enveloped.socket.send("from the envelope client");
      assert.equal((await client.waitFor(3))[2], "from the envelope client");
    } finally {
      await closeAll([client, enveloped]);
      await server.shutdown();
    }
  },
);

/** Reads the room's messages as an envelope client and returns the offset and epoch of the last one. */
function lastPosition(client: TestClient): { offset: number; epoch: string } {
  const last = envelopes(client.received).filter((m) => m.type === "message").at(-1)!;
  return { offset: last.offset as number, epoch: last.epoch as string };
}

engineTest(
  "a client cut in the middle of 5,000 messages recovers with ?since=: all of them, once, in order",
  async (engine) => {
    const server = startServer(engine, { historySize: 5000, historyMaxBytes: 1 << 20 });
    const [publisher] = await openClients(`${server.wsUrl}/rooms/cut`, 1);
    try {
      const reader = new TestClient(`${server.wsUrl}/rooms/cut`, ["hubbub.v1"]);
      await reader.opened();
      const sending = (async () => {
        for (let i = 0; i < 5000; i++) {
          publisher.socket.send(`n${i}`);
          if (i % 500 === 499) await publisher.waitFor(i + 1);
        }
      })();
      await eventually("the reader to be in the middle", () => reader.received.length > 1500);
      const { offset, epoch } = lastPosition(reader);
      const before = envelopes(reader.received).filter((m) => m.type === "message");
      reader.socket.close();
      await reader.closed;
      await sending;
      const again = new TestClient(`${server.wsUrl}/rooms/cut?since=${offset}&epoch=${epoch}`, ["hubbub.v1"]);
      await again.opened();
      const after = envelopes(await again.waitFor(1 + 5000 - offset));
      assert.deepEqual(after[0], {
        type: "joined",
        room: "cut",
        offset: 5000,
        epoch,
        recovered: true,
        missed: 5000 - offset,
      });
      const all = [...before, ...after.slice(1)].map((m) => m.data);
      assert.deepEqual(all, Array.from({ length: 5000 }, (_, i) => `n${i}`));
      assert.equal(server.hub.stats.recoveries.recovered, 1);
      await again.close();
    } finally {
      await closeAll([publisher]);
      await server.shutdown();
    }
  },
);

engineTest("a slow consumer gets 1013, reconnects with ?since= and has everything", async (engine) => {
  const server = startServer(engine, { historySize: 5000, historyMaxBytes: 32 << 20 });
  const [publisher, healthy] = await openClients(`${server.wsUrl}/rooms/slow`, 2);
  try {
    // A raw client that reads its first frames, notes its position, then stops reading.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await conn.write(new TextEncoder().encode(upgradeHead("/rooms/slow")));
    await eventually("the stalled client to join", () => server.hub.members("slow") === 3);
    // 20 MB: more than the kernel's buffers hold for a client that reads nothing. The publisher waits for its own
    // copy every 100 messages, so the healthy clients never come near the 1 MiB cap.
    const body = "x".repeat(4000);
    const count = 5000;
    for (let i = 0; i < count; i++) {
      publisher.socket.send(`${i} ${body}`);
      if (i % 100 === 99) await publisher.waitFor(i + 1, 20_000);
    }
    await eventually("the stalled client to be evicted", () => server.hub.stats.dropped.slow_consumer === 1, 10_000);
    conn.close();
    // It reconnects from before anything it could have read (offset 0): the history has all of them.
    const back = new TestClient(`${server.wsUrl}/rooms/slow?since=0`);
    await back.opened();
    const got = await back.waitFor(count, 20_000);
    assert.deepEqual(got, Array.from({ length: count }, (_, i) => `${i} ${body}`));
    assert.equal((await healthy.waitFor(count, 20_000)).length, count);
    await back.close();
  } finally {
    await closeAll([publisher, healthy]);
    await server.shutdown();
  }
});

engineTest("recovery is all or nothing: trimmed, wrong epoch or future since recover nothing", async (engine) => {
  const server = startServer(engine, { historySize: 10 });
  const [publisher] = await openClients(`${server.wsUrl}/rooms/lossy`, 1);
  try {
    for (let i = 1; i <= 30; i++) publisher.socket.send(`m${i}`);
    await publisher.waitFor(30);
    const join = async (query: string) => {
      const client = new TestClient(`${server.wsUrl}/rooms/lossy?${query}`, ["hubbub.v1"]);
      await client.opened();
      const [joined] = envelopes(await client.waitFor(1));
      publisher.socket.send("live");
      const rest = envelopes(await client.waitFor(2)).slice(1);
      await client.close();
      return { joined, rest };
    };
    const { joined } = await join("since=25");
    const epoch = joined.epoch as string;
    assert.deepEqual(joined.recovered, true);
    // Offsets 11–20 are trimmed (history 10): since=5 cannot be recovered whole, so nothing is replayed.
    let result = await join(`since=5&epoch=${epoch}`);
    assert.equal(result.joined.recovered, false);
    assert.equal(result.joined.missed, 31 - 5, "it says how many it missed");
    assert.deepEqual(result.rest.map((m) => m.data), ["live"], "no partial replay, only live messages");
    result = await join(`since=25&epoch=ffff`);
    assert.equal(result.joined.recovered, false);
    assert.deepEqual(result.rest.map((m) => m.data), ["live"]);
    result = await join(`since=999&epoch=${epoch}`);
    assert.equal(result.joined.recovered, false);
    assert.equal(server.hub.stats.recoveries.lost, 3);
  } finally {
    await closeAll([publisher]);
    await server.shutdown();
  }
});

engineTest("messages past --history-ttl are not recovered", async (engine) => {
  const server = startServer(engine, { historySize: 10, historyTtl: 1 });
  const [publisher] = await openClients(`${server.wsUrl}/rooms/ttl`, 1);
  try {
    publisher.socket.send("old");
    await publisher.waitFor(1);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const client = new TestClient(`${server.wsUrl}/rooms/ttl?since=0`, ["hubbub.v1"]);
    await client.opened();
    const [joined] = envelopes(await client.waitFor(1));
    assert.equal(joined.recovered, false);
    assert.equal(joined.missed, 1);
    await client.close();
  } finally {
    await closeAll([publisher]);
    await server.shutdown();
  }
});

engineTest("garbage replay or since is a 400 with a reason; so is asking a server without history", async (engine) => {
  const withHistory = startServer(engine, { historySize: 10 });
  const without = startServer(engine);
  try {
    for (const query of ["replay=abc", "since=-1", "since=1&epoch=XYZ", "replay=5&since=1", "epoch=ab"]) {
      const response = await rawRequest(withHistory.addr.port, upgradeHead(`/rooms/bad?${query}`));
      assert.equal(response.status, 400, query);
      assert.ok(response.body.length > 10, `${query}: a reason`);
    }
    const response = await rawRequest(without.addr.port, upgradeHead("/rooms/bad?replay=5"));
    assert.equal(response.status, 400);
    assert.match(response.body, /--history N/);
  } finally {
    await withHistory.shutdown();
    await without.shutdown();
  }
});

engineTest(
  "GET /rooms/<name>/history answers the envelope objects, newest last, guarded like the room",
  async (engine) => {
    const server = startServer(engine, { historySize: 5, token: "s3cret" });
    const [publisher] = await openClients(`${server.wsUrl}/rooms/log?token=s3cret`, 1);
    try {
      for (let i = 1; i <= 7; i++) publisher.socket.send(`m${i}`);
      await publisher.waitFor(7);
      const get = (query: string, token = "s3cret") =>
        fetch(`${server.url}/rooms/log/history?${query}`, { headers: { authorization: `Bearer ${token}` } });
      let response = await get("");
      const all = await response.json();
      assert.deepEqual(all.map((m: { data: string }) => m.data), ["m3", "m4", "m5", "m6", "m7"]);
      assert.deepEqual(Object.keys(all[0]), ["type", "room", "offset", "epoch", "data"]);
      response = await get("since=5&limit=1");
      assert.deepEqual((await response.json()).map((m: { offset: number }) => m.offset), [6]);
      response = await get("limit=2");
      assert.deepEqual((await response.json()).map((m: { offset: number }) => m.offset), [6, 7]);
      response = await get("", "wrong");
      assert.equal(response.status, 401);
      await response.body?.cancel();
      response = await get("since=x");
      assert.equal(response.status, 400);
      await response.body?.cancel();
    } finally {
      await closeAll([publisher]);
      await server.shutdown();
    }
  },
);

Deno.test("a close code table entry for 1013 says the cure: reconnect with since", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const row = readme.split("\n").find((line) => line.startsWith(`| ${CLOSE_CODE.TryAgainLater} `));
  assert.ok(row, "the 1013 row");
  assert.match(row, /since/);
});

Deno.test("memory: 10,000 rooms with full histories stay within --history-max-bytes per room plus a stated overhead", async () => {
  // In a process of its own, with a garbage collector we can call, so the heap figures mean something.
  const script = `
    import { RoomLog } from ${JSON.stringify(new URL("../lib/broker/history.ts", import.meta.url).href)};
    const rooms = 10_000, perRoom = 50, maxBytes = 2048;
    gc(); const before = Deno.memoryUsage().heapUsed;
    const log = new RoomLog({ size: perRoom, maxBytes });
    const decoder = new TextDecoder();
    const bytes = new Uint8Array(100).fill(120);
    for (let r = 0; r < rooms; r++) {
      for (let m = 0; m < perRoom; m++) {
        // Each message a flat string of its own, decoded from bytes as messages off the wire are.
        bytes[0] = 48 + (m % 10);
        log.append("room-" + r, decoder.decode(bytes), 100);
      }
    }
    gc(); const after = Deno.memoryUsage().heapUsed;
    console.log(JSON.stringify({ rooms, maxBytes, messages: log.messages, bytes: log.bytes, heap: after - before }));
  `;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--expose-gc", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const result = JSON.parse(new TextDecoder().decode(stdout));
  // The cap: 2,048 bytes per room keeps 20 of the 50 messages of 100 bytes.
  assert.equal(result.messages, 20 * result.rooms);
  assert.ok(result.bytes <= result.maxBytes * result.rooms);
  // Stated overhead: 1 KiB per room and 160 bytes per kept message (entry object, string header, array slot), above
  // the payload bytes themselves.
  const bound = result.bytes + result.rooms * 1024 + result.messages * 160;
  console.log(
    `  10,000 rooms: ${(result.bytes / 1e6).toFixed(1)} MB kept, heap +${(result.heap / 1e6).toFixed(1)} MB ` +
      `(bound ${(bound / 1e6).toFixed(1)} MB)`,
  );
  assert.ok(result.heap <= bound, `heap grew by ${result.heap}, over ${bound}`);
});
