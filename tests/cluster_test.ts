/**
 * Scale-out over a real `redis-server`: several real Hubbub processes, on either engine, are one hub. Each test starts
 * its own Redis on a free port and its own nodes, and stops them all.
 *
 * @module
 */

import assert from "node:assert/strict";
import { closeAll, eventually, openClients, TestClient } from "./_harness.ts";
import { signJwt } from "../lib/auth/jwt.ts";
import { runMain } from "./_process.ts";
import { startRedis } from "./_redis.ts";
import { asText, getJson, metric, type Node, startNode, stopNode, waitForMembers, withRedis } from "./_cluster.ts";

const PYTHON = "/usr/bin/python3";

function clusterTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name: `cluster: ${name}`, sanitizeOps: true, sanitizeResources: true, fn });
}

/** A Python `websockets` client in `room` on `node`: joins, prints "ready", collects `count` messages as JSON. */
const PY_COLLECT = `
import asyncio, json, sys, websockets
async def main(url, count):
    async with websockets.connect(url, max_size=None) as ws:
        print("ready", flush=True)
        got = []
        for _ in range(count):
            data = await ws.recv()
            got.append(data if isinstance(data, str) else "b:" + data.hex())
        print(json.dumps(got), flush=True)
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
`;

/** Starts the Python collector; resolves its messages once it has `count` of them. */
async function pythonCollector(url: string, count: number) {
  const child = new Deno.Command(PYTHON, { args: ["-c", PY_COLLECT, url, String(count)], stdout: "piped" }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("ready\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the Python client failed to connect: ${text}`);
    text += value;
  }
  return {
    async messages(): Promise<string[]> {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
      const status = await child.status;
      assert.equal(status.code, 0, "the Python client exited with an error");
      return JSON.parse(text.slice(text.indexOf("\n") + 1));
    },
  };
}

/** A message's comparable form: text as it is, binary as `b:<hex>` (as the Python collector writes it). */
function describe(data: string | ArrayBuffer): string {
  return typeof data === "string"
    ? data
    : "b:" + Array.from(new Uint8Array(data), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

clusterTest("a deno node and a raw node are one hub: every member gets every message once, in one order", async () => {
  const redis = await startRedis();
  const nodes: Node[] = [];
  try {
    nodes.push(await startNode("deno", redis.url()), await startNode("raw", redis.url()));
    const [a, b] = nodes;
    const onA = await openClients(`${a.wsUrl}/rooms/lobby`, 2);
    const onB = await openClients(`${b.wsUrl}/rooms/lobby`, 2);
    const elsewhere = await openClients(`${b.wsUrl}/rooms/other`, 1);
    const echo = await openClients(`${a.wsUrl}/echo`, 1);
    const perPublisher = 300;
    const total = 2 * perPublisher;
    const python = await pythonCollector(`${b.wsUrl}/rooms/lobby`, total);
    await waitForMembers(a, "lobby", 5);
    // One publisher on each node, at the same moment; text and binary (every byte value) mixed.
    for (let i = 0; i < perPublisher; i++) {
      onA[0].socket.send(`a${i}`);
      onB[0].socket.send(i % 3 === 0 ? new Uint8Array([i & 0xff, 0, 255, 0x80, 10]) : `b${i}`);
    }
    echo[0].socket.send("stays on A");
    const seen = await Promise.all([...onA, ...onB].map((client) => client.waitFor(total, 20_000)));
    const order = seen[0].map(describe);
    assert.equal(order.length, total);
    assert.equal(new Set(order).size, total, "no duplicate");
    for (const messages of seen) assert.deepEqual(messages.map(describe), order, "one order for every member");
    assert.deepEqual(await python.messages(), order, "the Python client on the raw node saw the same order");
    // Each publisher's own messages stay in the order it sent them.
    assert.deepEqual(order.filter((m) => m.startsWith("a")), Array.from({ length: perPublisher }, (_, i) => `a${i}`));
    assert.deepEqual(await echo[0].waitFor(1), ["stays on A"]);
    assert.deepEqual(elsewhere[0].received, [], "another room heard nothing");
    // Counts are cluster-wide, with each node's own beside them.
    await waitForMembers(b, "lobby", 4);
    const stats = await getJson(b, "/stats?room=lobby");
    assert.deepEqual(stats.body, { room: "lobby", members: 4, node: { members: 2 } });
    await eventually("healthz to count both nodes", async () => {
      const { body } = await getJson(a, "/healthz");
      return body.connections === 6 && body.rooms === 2 && body.nodes === 2;
    });
    const health = await getJson(a, "/healthz");
    assert.deepEqual(health, {
      status: 200,
      body: { status: "ok", connections: 6, rooms: 2, nodes: 2, node: { connections: 3, rooms: 1 }, broker: "ok" },
    });
    await closeAll([...onA, ...onB, ...elsewhere, ...echo]);
  } finally {
    for (const node of nodes) await stopNode(node);
    await redis.stop();
  }
});

clusterTest(
  "Redis unreachable at start: exit 1 within 5 s, one line naming host:port, never the password",
  async () => {
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (closed.addr as Deno.NetAddr).port;
    closed.close();
    const started = performance.now();
    const result = await runMain([
      "--port",
      "0",
      "--hostname",
      "127.0.0.1",
      "--redis",
      `redis://admin:s3cret-pw@127.0.0.1:${port}/2`,
    ]);
    const elapsed = performance.now() - started;
    assert.equal(result.code, 1);
    assert.ok(elapsed < 5000, `exited after ${elapsed.toFixed(0)} ms`);
    const lines = result.stderr.trim().split("\n").filter((line) => line.startsWith("hubbub:"));
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0], new RegExp(`^hubbub: cannot start: cannot reach Redis at 127\\.0\\.0\\.1:${port}`));
    assert.ok(!(result.stdout + result.stderr).includes("s3cret-pw"), "the password never appears");
    assert.ok(!result.stdout.includes("listening"), "it never said it was listening");
  },
);

/** Sends `count` numbered messages from `client`, one every `everyMs`; resolves with what it sent. */
async function publishNumbered(client: TestClient, prefix: string, count: number, everyMs: number): Promise<string[]> {
  const sent: string[] = [];
  for (let i = 0; i < count; i++) {
    const message = `${prefix}${i}`;
    client.socket.send(message);
    sent.push(message);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  return sent;
}

/** Asserts `received` is `sent` in order with nothing duplicated, allowing `lost` missing ones. */
function assertInOrder(received: (string | ArrayBuffer)[], sent: string[], lost: number, what: string): void {
  const index = new Map(sent.map((message, i) => [message, i]));
  let previous = -1;
  for (const message of received) {
    const at = index.get(message as string);
    assert.ok(at !== undefined && at > previous, `${what}: ${String(message)} out of order or repeated`);
    previous = at;
  }
  assert.equal(sent.length - received.length, lost, `${what}: ${sent.length - received.length} missing`);
}

clusterTest(
  "Redis killed and restarted during traffic: nodes reconnect, buffer in order, clients stay connected",
  async () => {
    const redis = await startRedis();
    const nodes: Node[] = [];
    try {
      nodes.push(await startNode("deno", redis.url()), await startNode("raw", redis.url()));
      const [a, b] = nodes;
      const [publisher] = await openClients(`${a.wsUrl}/rooms/live`, 1);
      const [listener] = await openClients(`${b.wsUrl}/rooms/live`, 1);
      await waitForMembers(a, "live", 2);
      const sending = publishNumbered(publisher, "m", 300, 10);
      await new Promise((resolve) => setTimeout(resolve, 700));
      await redis.kill("SIGKILL");
      await eventually(
        "node A to say the broker is down (503)",
        async () => (await getJson(a, "/healthz")).status === 503,
      );
      const down = await getJson(a, "/healthz");
      assert.equal(down.body.broker, "down");
      assert.equal(down.body.status, "down");
      await new Promise((resolve) => setTimeout(resolve, 800));
      await redis.restart();
      const sent = await sending;
      await eventually("both nodes back up", async () => {
        return (await getJson(a, "/healthz")).status === 200 && (await getJson(b, "/healthz")).status === 200;
      }, 10_000);
      // A marker after everything: once it arrives, everything before it has.
      publisher.socket.send("marker");
      await eventually("the marker", () => listener.received.includes("marker"), 10_000);
      assert.equal(publisher.socket.readyState, WebSocket.OPEN, "the publisher stayed connected");
      assert.equal(listener.socket.readyState, WebSocket.OPEN, "the listener stayed connected");
      const lost = await metric(a, 'hubbub_messages_dropped_total{reason="broker_unavailable"}');
      // Only what was written to Redis as it died can be lost (its fate is unknown, so it is not sent twice).
      assert.ok(lost <= 5, `lost ${lost}`);
      for (const [client, name] of [[listener, "listener on B"], [publisher, "publisher on A"]] as const) {
        assertInOrder(client.received.slice(0, -1), sent, lost, name);
        assert.equal(client.received.at(-1), "marker");
      }
      await closeAll([publisher, listener]);
    } finally {
      for (const node of nodes) await stopNode(node);
      await redis.stop();
    }
  },
);

clusterTest("beyond --redis-buffer-bytes the oldest messages are dropped and counted", async () => {
  const redis = await startRedis();
  const nodes: Node[] = [];
  try {
    nodes.push(await startNode("raw", redis.url(), ["--redis-buffer-bytes", "1000"]));
    const [a] = nodes;
    const [publisher, listener] = await openClients(`${a.wsUrl}/rooms/buffer`, 2);
    await waitForMembers(a, "buffer", 2);
    await redis.kill("SIGKILL");
    await eventually("the broker to be down", async () => (await getJson(a, "/healthz")).status === 503);
    // 50 messages of 100 bytes: only the newest 10 fit in 1,000 bytes.
    const sent = Array.from({ length: 50 }, (_, i) => `${String(i).padStart(2, "0")}${"x".repeat(98)}`);
    for (const message of sent) publisher.socket.send(message);
    await eventually("the drops to be counted", async () => {
      return await metric(a, 'hubbub_messages_dropped_total{reason="broker_unavailable"}') === 40;
    });
    await redis.restart();
    await eventually("the buffered ten to arrive", () => listener.received.length >= 10, 10_000);
    assert.deepEqual(listener.received, sent.slice(40));
    await closeAll([publisher, listener]);
  } finally {
    for (const node of nodes) await stopNode(node);
    await redis.stop();
  }
});

clusterTest("one node's Redis connections cut while another publishes 1,000: all arrive, in order, once", async () => {
  const redis = await startRedis();
  const nodes: Node[] = [];
  try {
    nodes.push(await startNode("raw", redis.url()), await startNode("deno", redis.url()));
    const [a, b] = nodes;
    const [publisher] = await openClients(`${a.wsUrl}/rooms/cut`, 1);
    const listeners = await openClients(`${b.wsUrl}/rooms/cut`, 3);
    await waitForMembers(a, "cut", 4);
    const sending = publishNumbered(publisher, "n", 1000, 1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const killed = await withRedis(redis.url(), async (client) => {
      const list = asText(await client.command(["CLIENT", "LIST"])) ?? "";
      const ids = list.split("\n").filter((line) => line.includes(`name=hubbub-${b.id}`))
        .map((line) => /\bid=(\d+)/.exec(line)![1]);
      for (const id of ids) await client.command(["CLIENT", "KILL", "ID", id]);
      return ids.length;
    });
    assert.equal(killed, 2, "node B's command and subscriber connections");
    const sent = await sending;
    for (const [i, listener] of listeners.entries()) {
      const received = await listener.waitFor(1000, 20_000);
      assert.deepEqual(received, sent, `listener ${i} on the cut node`);
    }
    await closeAll([publisher, ...listeners]);
  } finally {
    for (const node of nodes) await stopNode(node);
    await redis.stop();
  }
});

clusterTest("Redis loses its data: no duplicate, no reorder, and the room's epoch changes", async () => {
  const redis = await startRedis();
  const nodes: Node[] = [];
  try {
    nodes.push(await startNode("deno", redis.url()), await startNode("raw", redis.url()));
    const [a, b] = nodes;
    const [publisher] = await openClients(`${a.wsUrl}/rooms/lost`, 1);
    const [listener] = await openClients(`${b.wsUrl}/rooms/lost`, 1);
    await waitForMembers(a, "lost", 2);
    const epochOf = () =>
      withRedis(
        redis.url(),
        async (client) => asText(await client.command(["HGET", "hubbub:room:{lost}:meta", "epoch"])),
      );
    const first = await publishNumbered(publisher, "before", 100, 0);
    await listener.waitFor(100);
    const before = await epochOf();
    assert.ok(before, "the room has an epoch");
    // A restart without persistence: every key is gone, offsets start again at 1.
    await redis.kill("SIGKILL");
    await redis.restart();
    await eventually("both nodes back up", async () => {
      return (await getJson(a, "/healthz")).status === 200 && (await getJson(b, "/healthz")).status === 200;
    }, 10_000);
    const second = await publishNumbered(publisher, "after", 100, 0);
    const received = await listener.waitFor(200, 10_000);
    assert.deepEqual(received, [...first, ...second]);
    assert.deepEqual(await publisher.waitFor(200), [...first, ...second]);
    const after = await epochOf();
    assert.ok(after && after !== before, `a new epoch: ${before} then ${after}`);
    await closeAll([publisher, listener]);
  } finally {
    for (const node of nodes) await stopNode(node);
    await redis.stop();
  }
});

clusterTest(
  "a node killed with SIGKILL: the others carry on, its clients move over, the counts forget it",
  async () => {
    const redis = await startRedis();
    const nodes: Node[] = [];
    try {
      nodes.push(await startNode("raw", redis.url()), await startNode("deno", redis.url()));
      const [a, b] = nodes;
      const [alice] = await openClients(`${a.wsUrl}/rooms/kill`, 1);
      const [bob] = await openClients(`${b.wsUrl}/rooms/kill`, 1);
      await waitForMembers(a, "kill", 2);
      await eventually("two nodes in the count", async () => (await getJson(a, "/healthz")).body.nodes === 2);
      b.process.child.kill("SIGKILL");
      const closed = await bob.closed;
      assert.notEqual(closed.code, 1000, "bob lost his node");
      // Bob reconnects to the surviving node and chats on.
      const bob2 = new TestClient(`${a.wsUrl}/rooms/kill`);
      await bob2.opened();
      bob2.socket.send("back on A");
      assert.deepEqual(await alice.waitFor(1), ["back on A"]);
      assert.deepEqual(await bob2.waitFor(1), ["back on A"]);
      const killedAt = performance.now();
      await eventually("the killed node to leave the counts", async () => {
        const { body } = await getJson(a, "/healthz");
        return body.nodes === 1 && body.connections === 2;
      }, 15_000);
      await waitForMembers(a, "kill", 2);
      console.log(`  the killed node left the counts after ${((performance.now() - killedAt) / 1000).toFixed(1)} s`);
      await closeAll([alice, bob2]);
    } finally {
      for (const node of nodes) await stopNode(node);
      await redis.stop();
    }
  },
);

/** The README's HAProxy recipe (the block after "```haproxy"), the one this test runs. */
async function readmeHaproxyConfig(): Promise<string> {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const match = /```haproxy\n([\s\S]*?)```/.exec(readme);
  assert.ok(match, "the README has a haproxy block");
  return match[1];
}

clusterTest("behind HAProxy (the README's recipe), two clients on different nodes chat through it", async () => {
  const redis = await startRedis();
  const nodes: Node[] = [];
  const dir = await Deno.makeTempDir({ prefix: "hubbub-haproxy-" });
  let haproxy: Deno.ChildProcess | undefined;
  try {
    nodes.push(await startNode("deno", redis.url()), await startNode("raw", redis.url()));
    const [a, b] = nodes;
    const front = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const frontPort = (front.addr as Deno.NetAddr).port;
    front.close();
    const config = (await readmeHaproxyConfig())
      .replace("127.0.0.1:8765 check", `127.0.0.1:${a.port} check`)
      .replace("127.0.0.1:8766 check", `127.0.0.1:${b.port} check`)
      .replace("bind 127.0.0.1:8080", `bind 127.0.0.1:${frontPort}`);
    assert.ok(config.includes(String(a.port)) && config.includes(String(b.port)) && config.includes(String(frontPort)));
    await Deno.writeTextFile(`${dir}/haproxy.cfg`, config);
    haproxy = new Deno.Command("haproxy", { args: ["-db", "-f", `${dir}/haproxy.cfg`], stdout: "null", stderr: "null" })
      .spawn();
    const via = `ws://127.0.0.1:${frontPort}/rooms/lb`;
    await eventually("HAProxy to listen", async () => {
      try {
        const response = await fetch(`http://127.0.0.1:${frontPort}/healthz`);
        await response.body?.cancel();
        return response.status === 200;
      } catch {
        return false;
      }
    });
    // Round robin: the two clients land on different nodes.
    const alice = new TestClient(via);
    await alice.opened();
    const bob = new TestClient(via);
    await bob.opened();
    await waitForMembers(a, "lb", 2);
    assert.deepEqual((await getJson(a, "/stats?room=lb")).body.node, { members: 1 });
    assert.deepEqual((await getJson(b, "/stats?room=lb")).body.node, { members: 1 });
    alice.socket.send("hi bob, from the other node");
    bob.socket.send(new Uint8Array([1, 2, 3]));
    const order = (await alice.waitFor(2)).map(describe);
    assert.deepEqual(order.toSorted(), ["b:010203", "hi bob, from the other node"]);
    assert.deepEqual((await bob.waitFor(2)).map(describe), order, "one order on both nodes");
    await closeAll([alice, bob]);
  } finally {
    haproxy?.kill("SIGTERM");
    await haproxy?.status;
    for (const node of nodes) await stopNode(node);
    await redis.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Parses envelope frames. */
function parsed(messages: (string | ArrayBuffer)[]): Record<string, unknown>[] {
  return messages.map((message) => JSON.parse(message as string));
}

clusterTest(
  "history in Redis: a client cut on one node recovers on the other with ?since=, all 5,000 once",
  async () => {
    const redis = await startRedis();
    const nodes: Node[] = [];
    try {
      nodes.push(
        await startNode("raw", redis.url(), ["--history", "5000"]),
        await startNode("deno", redis.url(), ["--history", "5000"]),
      );
      const [a, b] = nodes;
      const [publisher] = await openClients(`${a.wsUrl}/rooms/rec`, 1);
      const reader = new TestClient(`${a.wsUrl}/rooms/rec`, ["hubbub.v1"]);
      await reader.opened();
      await waitForMembers(a, "rec", 2);
      const sending = (async () => {
        for (let i = 0; i < 5000; i++) {
          publisher.socket.send(`n${i}`);
          if (i % 500 === 499) await publisher.waitFor(i + 1, 20_000);
        }
      })();
      await eventually("the reader to be in the middle", () => reader.received.length > 1500, 20_000);
      reader.socket.close();
      await reader.closed;
      const before = parsed(reader.received).filter((m) => m.type === "message");
      const { offset, epoch } = before.at(-1) as { offset: number; epoch: string };
      await sending;
      // Back on the other node, from where it stopped.
      const again = new TestClient(`${b.wsUrl}/rooms/rec?since=${offset}&epoch=${epoch}`, ["hubbub.v1"]);
      await again.opened();
      const after = parsed(await again.waitFor(1 + 5000 - offset, 20_000));
      assert.equal(after[0].type, "joined");
      assert.equal(after[0].recovered, true);
      const all = [...before, ...after.slice(1)].map((m) => m.data);
      assert.deepEqual(all, Array.from({ length: 5000 }, (_, i) => `n${i}`));
      // A plain client replays too, from Redis, on either node.
      const plain = new TestClient(`${b.wsUrl}/rooms/rec?replay=3`);
      await plain.opened();
      assert.deepEqual(await plain.waitFor(3), ["n4997", "n4998", "n4999"]);
      const history = await (await fetch(`${a.url}/rooms/rec/history?limit=2`)).json();
      assert.deepEqual(history.map((m: { data: string }) => m.data), ["n4998", "n4999"]);
      await closeAll([publisher, again, plain]);
    } finally {
      for (const node of nodes) await stopNode(node);
      await redis.stop();
    }
  },
);

clusterTest(
  "chaos: 3 nodes, one SIGKILLed mid-stream; its clients recover on the others; everyone ends with every message once, in one order",
  async () => {
    const redis = await startRedis();
    const nodes: Node[] = [];
    try {
      for (const engine of ["raw", "deno", "raw"] as const) {
        nodes.push(await startNode(engine, redis.url(), ["--history", "10000"]));
      }
      const clients = new Map<string, { client: TestClient; kept: Record<string, unknown>[] }>();
      for (const [i, node] of nodes.entries()) {
        for (let k = 0; k < 3; k++) {
          const client = new TestClient(`${node.wsUrl}/rooms/chaos`, ["hubbub.v1"]);
          await client.opened();
          clients.set(`c${i}${k}`, { client, kept: [] });
        }
      }
      await waitForMembers(nodes[0], "chaos", 9);
      // Every client publishes; node 2 dies in the middle.
      const perClient = 100;
      const publishing = [...clients].map(async ([name, entry]) => {
        for (let i = 0; i < perClient; i++) {
          if (entry.client.socket.readyState !== WebSocket.OPEN) return;
          entry.client.socket.send(`${name}:${i}`);
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      nodes[2].process.child.kill("SIGKILL");
      await Promise.all(publishing);
      // The dead node's clients reconnect to the others with what they last saw, and publish the rest.
      for (const [name, entry] of clients) {
        if (!name.startsWith("c2")) continue;
        await entry.client.closed;
        const seen = parsed(entry.client.received).filter((m) => m.type === "message");
        entry.kept.push(...seen);
        const last = seen.at(-1) as { offset: number; epoch: string } | undefined;
        const target = nodes[name.endsWith("0") ? 0 : 1];
        const query = last ? `?since=${last.offset}&epoch=${last.epoch}` : "?since=0";
        const client = new TestClient(`${target.wsUrl}/rooms/chaos${query}`, ["hubbub.v1"]);
        await client.opened();
        entry.client = client;
        const sent = seen.filter((m) => String(m.data).startsWith(`${name}:`)).length;
        for (let i = sent; i < perClient; i++) client.socket.send(`${name}:${i}:again`);
        // Its own last message back means everything it sent is in the room's order, before the end marker.
        const lastAgain = `"data":"${name}:${perClient - 1}:again"`;
        if (sent < perClient) {
          await eventually(
            `${name}'s messages to be in`,
            () => client.received.some((m) => (m as string).includes(lastAgain)),
            20_000,
          );
        }
      }
      publishing.length = 0;
      // Everyone ends with the same messages, once each, in one order.
      const marker = clients.get("c00")!.client;
      marker.socket.send("end");
      const finals = new Map<string, unknown[]>();
      for (const [name, entry] of clients) {
        await eventually(
          `${name} to see the end`,
          () => entry.client.received.some((m) => (m as string).includes('"data":"end"')),
          20_000,
        );
        const messages = [...entry.kept, ...parsed(entry.client.received).filter((m) => m.type === "message")];
        const offsets = messages.map((m) => m.offset as number);
        assert.deepEqual(
          offsets,
          Array.from({ length: offsets.length }, (_, i) => i + 1),
          `${name}: every offset once, in order`,
        );
        finals.set(name, messages.map((m) => m.data));
      }
      const reference = finals.get("c00")!;
      for (const [name, messages] of finals) assert.deepEqual(messages, reference, `${name} agrees with c00`);
      console.log(
        `  chaos: ${clients.size} clients each hold the same ${reference.length} messages (${
          perClient * clients.size
        } published, node 2 killed)`,
      );
      await closeAll([...clients.values()].map((entry) => entry.client));
    } finally {
      for (const node of nodes) await stopNode(node);
      await redis.stop();
    }
  },
);

clusterTest(
  "presence across two nodes: one join per user whichever node its tabs are on, counts from both",
  async () => {
    const redis = await startRedis();
    const nodes: Node[] = [];
    const secret = "a secret of at least thirty-two bytes!";
    const token = (sub: string) => signJwt({ secret, claims: { sub } });
    try {
      const args = ["--jwt-secret", secret];
      nodes.push(await startNode("deno", redis.url(), args), await startNode("raw", redis.url(), args));
      const [a, b] = nodes;
      const frames = (client: TestClient) =>
        parsed(client.received).filter((f) => f.type === "join" || f.type === "leave").map((f) => `${f.type} ${f.sub}`);
      const watcher = new TestClient(`${a.wsUrl}/rooms/team?token=${await token("watcher")}&presence=1`, ["hubbub.v1"]);
      await watcher.opened();
      await eventually("the watcher's join", () => frames(watcher).includes("join watcher"));
      const alice = await token("alice");
      const tabA = new TestClient(`${a.wsUrl}/rooms/team?token=${alice}`);
      await tabA.opened();
      await eventually("alice's join", () => frames(watcher).includes("join alice"));
      const tabB = new TestClient(`${b.wsUrl}/rooms/team?token=${alice}`);
      await tabB.opened();
      await eventually("both of alice's tabs counted on node B", async () => {
        const body = (await getJson(b, `/rooms/team/presence?token=${alice}`)).body;
        return JSON.stringify(body.users) ===
          JSON.stringify([{ sub: "alice", connections: 2 }, { sub: "watcher", connections: 1 }]);
      });
      await eventually("three members counted on node A", async () => {
        return (await getJson(a, `/rooms/team/presence?token=${alice}`)).body.members === 3;
      });
      await tabA.close();
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual(frames(watcher), ["join watcher", "join alice"], "no leave while her other tab is open");
      await tabB.close();
      await eventually("alice's leave", () => frames(watcher).includes("leave alice"));
      assert.deepEqual(frames(watcher), ["join watcher", "join alice", "leave alice"]);
      await watcher.close();
    } finally {
      for (const node of nodes) await stopNode(node);
      await redis.stop();
    }
  },
);
