/**
 * `--workers N`: one process, N workers on one port, one hub. Real processes (the CLI), real sockets, both engines.
 *
 * @module
 */

import assert from "node:assert/strict";
import { CLOSE_CODE } from "../lib/ws/close_code.ts";
import { ENGINES, eventually, openClients, TestClient, upgradeHead } from "./_harness.ts";
import { runMain, startMain } from "./_process.ts";
import { startRedis } from "./_redis.ts";

function workersTest(name: string, fn: (engine: "deno" | "raw") => Promise<void>): void {
  for (const engine of ENGINES) {
    Deno.test({
      name: `[${engine}] workers: ${name}`,
      sanitizeOps: true,
      sanitizeResources: true,
      fn: () => fn(engine),
    });
  }
}

async function json(url: string): Promise<Record<string, unknown>> {
  return await (await fetch(url, { signal: AbortSignal.timeout(3000) })).json();
}

async function metric(base: string, series: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
  const line = text.split("\n").find((line) => line.startsWith(series + " "));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}

workersTest(
  "two workers on one port are one hub: once, in one order, echo local, counts for the whole server",
  async (engine) => {
    const server = await startMain(["--engine", engine, "--workers", "2", "--log-level", "warn", "--history", "100"]);
    const base = `http://127.0.0.1:${server.port}`;
    const ws = `ws://127.0.0.1:${server.port}`;
    try {
      assert.match(server.banner, /2 workers on one port/);
      const clients = await openClients(`${ws}/rooms/lobby`, 20);
      // The kernel spread them over both workers.
      await eventually("both workers to hold clients", async () => {
        const health = await json(`${base}/healthz`);
        return health.connections === 20 && health.nodes === 2;
      });
      const publishers = clients.slice(0, 5);
      for (let i = 0; i < 100; i++) {
        for (const [p, publisher] of publishers.entries()) {
          publisher.socket.send(i % 10 === 0 ? new Uint8Array([p, i]) : `p${p}-${i}`);
        }
      }
      const describe = (m: string | ArrayBuffer) => typeof m === "string" ? m : `b${[...new Uint8Array(m)].join(".")}`;
      const order = (await clients[0].waitFor(500, 20_000)).map(describe);
      assert.equal(new Set(order).size, 500, "each message once");
      for (const client of clients) assert.deepEqual((await client.waitFor(500, 20_000)).map(describe), order);
      // Each publisher's own order is kept.
      assert.deepEqual(
        order.filter((m) => m.startsWith("p3-")),
        Array.from({ length: 100 }, (_, i) => `p3-${i}`).filter((_, i) => i % 10 !== 0),
      );
      // Echo never leaves its worker; the history is shared (a replay on any worker).
      const [echo] = await openClients(`${ws}/echo`, 1);
      echo.socket.send("just me");
      assert.deepEqual(await echo.waitFor(1), ["just me"]);
      const replay = new TestClient(`${ws}/rooms/lobby?replay=3`);
      await replay.opened();
      assert.deepEqual((await replay.waitFor(3)).map(describe), order.slice(-3));
      assert.deepEqual(await json(`${base}/stats?room=lobby`).then((s) => s.members), 21);
      await eventually("/metrics to add up both workers", async () => {
        return await metric(base, "hubbub_messages_received_total") === 501 &&
          await metric(base, "hubbub_connections") === 22;
      }, 5000);
      assert.equal(await metric(base, "hubbub_history_messages"), 100);
      for (const client of [...clients, echo, replay]) await client.close();
    } finally {
      server.child.kill("SIGTERM");
      assert.equal((await server.exited).code, 0);
    }
  },
);

workersTest("limits and slow consumers hold in every worker", async (engine) => {
  const server = await startMain([
    "--engine",
    engine,
    "--workers",
    "2",
    "--log-level",
    "error",
    "--max-message-bytes",
    "1000",
  ]);
  const ws = `ws://127.0.0.1:${server.port}`;
  try {
    const clients = await openClients(`${ws}/rooms/limits`, 6);
    clients[0].socket.send("x".repeat(1001));
    assert.equal((await clients[0].closed).code, CLOSE_CODE.MessageTooBig);
    clients[1].socket.send("still fine");
    for (const client of clients.slice(1)) assert.deepEqual(await client.waitFor(1), ["still fine"]);
    // A client that reads nothing, on whichever worker the kernel puts it, is evicted as a slow consumer (1013)
    // while 20 MB go through the room; the others get everything.
    const stalled = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await stalled.write(new TextEncoder().encode(upgradeHead("/rooms/limits")));
    const base = `http://127.0.0.1:${server.port}`;
    await eventually("the stalled client to join", async () => (await json(`${base}/stats?room=limits`)).members === 6);
    const body = "y".repeat(900);
    for (let i = 0; i < 22_000; i++) {
      clients[1].socket.send(`${i} ${body}`);
      if (i % 200 === 199) await clients[1].waitFor(i + 2, 20_000);
    }
    await eventually("the eviction to be counted", async () => {
      return await metric(base, 'hubbub_messages_dropped_total{reason="slow_consumer"}') === 1;
    }, 10_000);
    for (const client of clients.slice(1)) assert.equal((await client.waitFor(22_001, 20_000)).length, 22_001);
    stalled.close();
    for (const client of clients) await client.close();
  } finally {
    server.child.kill("SIGTERM");
    assert.equal((await server.exited).code, 0);
  }
});

workersTest("SIGTERM: every client of every worker gets 1001, the process exits 0 within 2 s", async (engine) => {
  const server = await startMain(["--engine", engine, "--workers", "2", "--log-level", "error"]);
  const clients = await openClients(`ws://127.0.0.1:${server.port}/rooms/bye`, 40);
  const started = performance.now();
  server.child.kill("SIGTERM");
  const closes = await Promise.all(clients.map((client) => client.closed));
  const { code } = await server.exited;
  assert.equal(code, 0);
  assert.ok(performance.now() - started < 2000, "within 2 s");
  assert.deepEqual(
    new Set(closes.map((close) => `${close.code} ${close.reason}`)),
    new Set(["1001 server shutting down"]),
  );
});

Deno.test({
  name: "workers: with --redis each worker is a node, and a plain node chats with them",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    const redis = await startRedis();
    const workers = await startMain([
      "--workers",
      "2",
      "--engine",
      "raw",
      "--redis",
      redis.url(),
      "--log-level",
      "warn",
    ]);
    const single = await startMain(["--redis", redis.url(), "--log-level", "warn"]);
    try {
      assert.match(workers.banner, /2 workers, each a node of the Redis hub/);
      const many = await openClients(`ws://127.0.0.1:${workers.port}/rooms/mixed`, 6);
      const [one] = await openClients(`ws://127.0.0.1:${single.port}/rooms/mixed`, 1);
      await eventually("3 nodes and 7 members", async () => {
        const stats = await json(`http://127.0.0.1:${single.port}/stats?room=mixed`);
        const health = await json(`http://127.0.0.1:${single.port}/healthz`);
        return stats.members === 7 && health.nodes === 3;
      });
      one.socket.send("to every worker");
      many[0].socket.send("and back");
      const order = await one.waitFor(2);
      for (const client of many) assert.deepEqual(await client.waitFor(2), order);
      for (const client of [...many, one]) await client.close();
    } finally {
      workers.child.kill("SIGTERM");
      single.child.kill("SIGTERM");
      assert.equal((await workers.exited).code, 0);
      assert.equal((await single.exited).code, 0);
      await redis.stop();
    }
  },
});

Deno.test("workers: --workers must be auto or 1 to 256", async () => {
  for (const value of ["0", "abc", "257"]) {
    const result = await runMain(["--workers", value, "--port", "0"]);
    assert.equal(result.code, 2, value);
    assert.match(result.stderr, /--workers must be/);
  }
});
