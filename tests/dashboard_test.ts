/**
 * `/dashboard.json` without a browser: its shape, its agreement with `/metrics` on both engines, its rooms table, the
 * admin guard, the admin token on HTTP publish, and the node table of a two-node cluster on a real Redis.
 *
 * @module
 */

import assert from "node:assert/strict";
import { checkAdmin, isLoopbackAddress, isLoopbackHost } from "../lib/auth/admin.ts";
import { createJwtVerifier } from "../lib/auth/jwt.ts";
import { resolveOptions } from "../lib/config.ts";
import { DASHBOARD_ROOM_LIMIT, type DashboardSnapshot, dashboardSnapshot } from "../lib/dashboard.ts";
import { Hub } from "../lib/hub/hub.ts";
import { DROP_REASONS } from "../lib/hub/stats.ts";
import { SILENT_LOGGER } from "../lib/log.ts";
import { serve } from "../lib/server.ts";
import { getJson, type Node, startNode, stopNode, waitForMembers } from "./_cluster.ts";
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
import { startMain } from "./_process.ts";
import { startRedis } from "./_redis.ts";

const ADMIN = "admin-s3cret-token";
const CLIENT_TOKEN = "client-s3cret-token";

/** Every sample of a Prometheus exposition, by series (`name{labels}`). */
async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

async function snapshot(url: string, init: RequestInit = {}, query = ""): Promise<DashboardSnapshot> {
  const response = await fetch(`${url}/dashboard.json${query}`, init);
  assert.equal(response.status, 200, await response.clone().text());
  assert.equal(response.headers.get("content-type"), "application/json; charset=utf-8");
  assert.equal(response.headers.get("cache-control"), "no-store");
  return await response.json();
}

/** The series `/metrics` would show for a snapshot's counters (memory aside: it moves between two requests). */
function asMetrics(s: DashboardSnapshot): Map<string, number> {
  const t = s.totals;
  const series = new Map<string, number>([
    ["hubbub_connections", t.connections],
    ["hubbub_rooms", t.rooms],
    ["hubbub_upgrades_total", t.upgrades],
    ["hubbub_upgrades_aborted_total", t.upgradesAborted],
    ["hubbub_messages_received_total", t.messagesReceived],
    ["hubbub_messages_delivered_total", t.messagesDelivered],
    ["hubbub_bytes_in_total", t.bytesIn],
    ["hubbub_bytes_out_total", t.bytesOut],
    ["hubbub_history_messages", t.historyMessages],
    ["hubbub_history_bytes", t.historyBytes],
    ['hubbub_recoveries_total{result="recovered"}', t.recoveries.recovered],
    ['hubbub_recoveries_total{result="lost"}', t.recoveries.lost],
  ]);
  for (const [reason, n] of Object.entries(t.dropped)) {
    series.set(`hubbub_messages_dropped_total{reason="${reason}"}`, n);
  }
  for (const [reason, n] of Object.entries(t.refused)) {
    series.set(`hubbub_handshakes_refused_total{reason="${reason}"}`, n);
  }
  for (const [code, n] of Object.entries(t.closes)) series.set(`hubbub_closes_total{code="${code}"}`, n);
  for (const [reason, n] of Object.entries(t.acceptErrors)) {
    series.set(`hubbub_accept_errors_total{reason="${reason}"}`, n);
  }
  return series;
}

/** The samples of `metrics` that a snapshot covers: every series but process memory. */
function countersOf(metrics: Map<string, number>): Map<string, number> {
  return new Map([...metrics].filter(([name]) => !name.startsWith("hubbub_process_")));
}

/** The README's two `/dashboard.json` examples: a whole snapshot, then a `cluster`. */
async function readmeExamples(): Promise<[unknown, unknown]> {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const section = readme.slice(readme.indexOf("**`/dashboard.json`**"));
  const blocks = [...section.matchAll(/```json\n([\s\S]*?)```/g)].slice(0, 2).map((m) => JSON.parse(m[1]));
  assert.equal(blocks.length, 2, "the README shows a snapshot and a cluster");
  return [blocks[0], blocks[1]];
}

/** A value's shape: keys and types all the way down; the records keyed by reason or code are just records. */
function shape(value: unknown, key = ""): unknown {
  if (["refused", "closes", "acceptErrors"].includes(key)) return "record";
  if (value === null) return "null";
  if (Array.isArray(value)) return value.length === 0 ? "[]" : [shape(value[0])];
  if (typeof value === "object") {
    return Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, shape(v, k)]));
  }
  return typeof value;
}

engineTest("/dashboard.json has its documented shape and every counter equals /metrics", async (engine) => {
  const server = startServer(engine, { maxMessageBytes: 1000 });
  const clients: TestClient[] = [];
  try {
    const before = await snapshot(server.url);
    assert.deepEqual(Object.keys(before), ["server", "totals", "memory", "rooms", "cluster"]);
    assert.deepEqual(Object.keys(before.server), [
      "engine",
      "mode",
      "hostname",
      "loopback",
      "access",
      "startedAt",
      "uptimeMs",
      "now",
    ]);
    assert.deepEqual(
      { ...before.server, startedAt: 0, uptimeMs: 0, now: 0 },
      {
        engine,
        mode: "broadcast",
        hostname: "127.0.0.1",
        loopback: true,
        access: "loopback",
        startedAt: 0,
        uptimeMs: 0,
        now: 0,
      },
    );
    assert.ok(Math.abs(before.server.now - Date.now()) < 60_000, "now is the server's wall clock");
    assert.ok(before.server.startedAt <= before.server.now);
    assert.deepEqual(Object.keys(before.totals), [
      "connections",
      "rooms",
      "upgrades",
      "upgradesAborted",
      "messagesReceived",
      "messagesDelivered",
      "bytesIn",
      "bytesOut",
      "dropped",
      "refused",
      "closes",
      "acceptErrors",
      "historyMessages",
      "historyBytes",
      "recoveries",
    ]);
    assert.deepEqual(Object.keys(before.totals.dropped), [...DROP_REASONS]);
    assert.deepEqual(Object.keys(before.memory), ["rss", "heapUsed", "heapTotal", "external"]);
    assert.ok(before.memory.rss > 0 && before.memory.heapUsed > 0);
    assert.deepEqual(before.rooms, { filter: "", matched: 0, limit: DASHBOARD_ROOM_LIMIT, list: [] });
    assert.equal(before.cluster, null);

    // Three rooms, traffic, a drop (too big), a refusal (no such path) and two closes.
    clients.push(...await openClients(`${server.wsUrl}/rooms/alpha`, 3));
    clients.push(...await openClients(`${server.wsUrl}/rooms/beta`, 2));
    clients.push(...await openClients(`${server.wsUrl}/rooms/gamma`, 1));
    clients[0].socket.send("héllo"); // 6 bytes in, 3 × 6 out
    clients[1].socket.send("again");
    clients[3].socket.send(new Uint8Array(4).buffer);
    await Promise.all(clients.slice(0, 3).map((client) => client.waitFor(2)));
    await Promise.all(clients.slice(3, 5).map((client) => client.waitFor(1)));
    const published = await fetch(`${server.url}/rooms/gamma`, { method: "POST", body: "from http" });
    assert.equal(published.status, 202);
    await published.body?.cancel();
    await clients[5].waitFor(1);
    await rawRequest(server.addr.port, upgradeHead("/nope"));
    clients[4].socket.send("x".repeat(2000));
    assert.equal((await clients[4].closed).code, 1009);
    await clients[2].close();
    await eventually("the closes to be counted", () => server.hub.stats.closes.size === 2);

    const during = await snapshot(server.url);
    const metrics = await scrape(server.url);
    assert.deepEqual(asMetrics(during), countersOf(metrics), "every counter equals its /metrics series");
    assert.equal(during.totals.connections, 4);
    assert.equal(during.totals.rooms, 3);
    // Four messages, and the raw engine refuses the too-big one in its frame parser before the hub counts it in.
    assert.equal(during.totals.messagesReceived, engine === "raw" ? 4 : 5);
    assert.equal(during.totals.messagesDelivered, 3 + 3 + 2 + 1);
    assert.deepEqual(during.totals.refused, { not_found: 1 });
    assert.equal(during.totals.dropped.too_big, 1);
    assert.deepEqual(during.totals.closes, { 1000: 1, 1009: 1 });
    for (const name of ["resident_memory", "heap_used", "heap_total", "external_memory"]) {
      assert.ok(metrics.has(`hubbub_process_${name}_bytes`), name);
    }
    // One count per message, not per member: alpha fanned out two messages to three (then two) members.
    assert.deepEqual(during.rooms.list, [
      { name: "alpha", members: 2, messages: 2, history: null },
      { name: "beta", members: 1, messages: 1, history: null },
      { name: "gamma", members: 1, messages: 1, history: null },
    ]);
    assert.ok(during.server.uptimeMs > before.server.uptimeMs);
    assert.equal(during.server.startedAt, before.server.startedAt);

    const [documented] = await readmeExamples();
    assert.deepEqual(shape(during), shape(documented), "the README's example has the real shape");

    // The filter is a case-insensitive part of the name.
    const filtered = await snapshot(server.url, {}, "?filter=ALP");
    assert.deepEqual(filtered.rooms.list.map((room) => room.name), ["alpha"]);
    assert.equal(filtered.rooms.matched, 1);
    const tooLong = await fetch(`${server.url}/dashboard.json?filter=${"a".repeat(65)}`);
    assert.equal(tooLong.status, 400);
    assert.match(await tooLong.text(), /^Filter too long: at most 64 characters/);

    // HEAD answers GET's headers; other methods are 405.
    const head = await fetch(`${server.url}/dashboard.json`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
    const post = await fetch(`${server.url}/dashboard`, { method: "POST", body: "x" });
    assert.equal(post.status, 405);
    await post.body?.cancel();
  } finally {
    await closeAll(clients);
    await server.shutdown();
  }
});

Deno.test("dashboardSnapshot lists the 100 largest rooms, most members first, then by name", async () => {
  const hub = new Hub();
  let id = 0;
  const peer = () => ({ id: ++id, bufferedAmount: 0, send() {}, close() {} });
  // Room i has (i % 7) + 1 members: many ties, which must come out by name.
  for (let i = 0; i < 130; i++) {
    for (let m = 0; m <= i % 7; m++) hub.connect(peer(), { kind: "room", room: `room-${String(i).padStart(3, "0")}` });
  }
  const options = resolveOptions({});
  const take = (filter = "") =>
    dashboardSnapshot({
      hub,
      options,
      memory: { rss: 1, heapUsed: 1, heapTotal: 1, external: 0 },
      clock: { startedAt: 0, uptimeMs: 0, now: 0 },
      filter,
      history: (room) => room === "room-006" ? 42 : null,
    });
  const all = await take();
  assert.equal(all.rooms.matched, 130);
  assert.equal(all.rooms.list.length, DASHBOARD_ROOM_LIMIT);
  const expected = Array.from(
    { length: 130 },
    (_, i) => ({ name: `room-${String(i).padStart(3, "0")}`, members: (i % 7) + 1 }),
  )
    .sort((a, b) => b.members - a.members || (a.name < b.name ? -1 : 1))
    .slice(0, DASHBOARD_ROOM_LIMIT);
  assert.deepEqual(all.rooms.list.map(({ name, members }) => ({ name, members })), expected);
  assert.equal(all.rooms.list[0].name, "room-006");
  assert.equal(all.rooms.list[0].history, 42, "history comes from the hook");
  assert.equal(all.rooms.list[1].history, null);
  const some = await take("-12");
  // Members (i % 7) + 1: 125 has 7, 124 has 6, 123 has 5, 122 and 129 have 4, 121 and 128 have 3 …
  assert.deepEqual(some.rooms.list.map((room) => room.name.slice(5)), [
    "125",
    "124",
    "123",
    "122",
    "129",
    "121",
    "128",
    "120",
    "127",
    "126",
  ]);
  assert.equal(some.rooms.matched, 10);
});

Deno.test("checkAdmin: admin token as a header only, 403 without one when clients need a credential, else loopback", () => {
  const at = (ip: string, headers: Record<string, string> = {}) => ({ headers: new Headers(headers), ip });
  const open = { adminToken: "", token: "" };
  assert.equal(checkAdmin(at("127.0.0.1", { host: "127.0.0.1:8765" }), open), undefined);
  assert.equal(checkAdmin(at("::1", { host: "[::1]:8765" }), open), undefined);
  assert.equal(checkAdmin(at("127.0.0.1", { host: "localhost" }), open), undefined);
  assert.equal(checkAdmin(at("::ffff:127.0.0.1", { host: "app.localhost:1" }), open), undefined);
  assert.match(
    checkAdmin(at("192.0.2.7", { host: "127.0.0.1" }), open)!.reason,
    /not from it: it came from 192\.0\.2\.7$/,
  );
  assert.match(
    checkAdmin(at("127.0.0.1", { host: "evil.example:8765" }), open)!.reason,
    /names the host "evil\.example:8765"$/,
  );
  for (const proxy of ["forwarded", "x-forwarded-for", "x-real-ip"]) {
    const refusal = checkAdmin(at("127.0.0.1", { host: "localhost", [proxy]: "203.0.113.9" }), open);
    assert.equal(refusal?.status, 403, proxy);
    assert.match(refusal!.reason, /it came through a proxy$/);
  }

  const unset = checkAdmin(at("127.0.0.1"), { adminToken: "", token: CLIENT_TOKEN });
  assert.equal(unset?.status, 403);
  assert.match(unset!.reason, /--admin-token/);
  assert.equal(checkAdmin(at("127.0.0.1"), { adminToken: "", token: "", jwt: {} })?.status, 403);

  const guarded = { adminToken: ADMIN, token: CLIENT_TOKEN };
  assert.equal(checkAdmin(at("192.0.2.7", { authorization: `Bearer ${ADMIN}` }), guarded), undefined);
  assert.equal(checkAdmin(at("192.0.2.7", { authorization: `bearer   ${ADMIN}` }), guarded), undefined);
  const missing = checkAdmin(at("127.0.0.1"), guarded);
  assert.deepEqual(missing, {
    status: 401,
    reason: "Missing admin token: send Authorization: Bearer <admin token>",
    label: "unauthorized",
    headers: { "www-authenticate": 'Bearer realm="hubbub-admin"' },
  });
  for (const wrong of [`Bearer ${CLIENT_TOKEN}`, `Bearer ${ADMIN}x`, `Bearer ${ADMIN.slice(1)}`, `Basic ${ADMIN}`]) {
    assert.equal(checkAdmin(at("127.0.0.1", { authorization: wrong }), guarded)?.status, 401, wrong);
  }
  assert.equal(
    checkAdmin(at("127.0.0.1", { authorization: "Bearer nope" }), guarded)?.headers?.["www-authenticate"],
    'Bearer realm="hubbub-admin", error="invalid_token"',
  );

  for (const yes of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "::ffff:127.0.0.1"]) {
    assert.ok(isLoopbackAddress(yes), yes);
  }
  for (const no of ["10.0.0.1", "::", "0.0.0.0", "::ffff:10.0.0.1", "127.0.0.1.evil", "fe80::1"]) {
    assert.ok(!isLoopbackAddress(no), no);
  }
  for (const yes of ["localhost", "LOCALHOST:80", "localhost.", "a.localhost", "127.0.0.1:1", "[::1]:2", "::1"]) {
    assert.ok(isLoopbackHost(yes), yes);
  }
  for (const no of ["0.0.0.0", "::", "example.com", "localhost.example", "127.0.0.1.nip.io"]) {
    assert.ok(!isLoopbackHost(no), no);
  }
});

Deno.test("adminToken must differ from token", () => {
  assert.throws(
    () => resolveOptions({ token: CLIENT_TOKEN, adminToken: CLIENT_TOKEN }),
    (error: Error) => error instanceof TypeError && !error.message.includes(CLIENT_TOKEN),
  );
  assert.equal(resolveOptions({ adminToken: ADMIN }).adminToken, ADMIN);
  assert.equal(resolveOptions({}).adminToken, "");
});

engineTest(
  "the dashboard's guard: 401 without the admin token, never from a URL; HTTP publish takes it",
  async (engine) => {
    const server = startServer(engine, { token: CLIENT_TOKEN, adminToken: ADMIN });
    const unset = startServer(engine, { token: CLIENT_TOKEN });
    const jwt = startServer(engine, {
      jwt: await createJwtVerifier({ secret: "a secret of at least thirty-two bytes" }),
    });
    let member: TestClient | undefined;
    try {
      // The page holds no data: it is served, and asks for the token itself.
      const page = await fetch(`${server.url}/dashboard`);
      assert.equal(page.status, 200);
      assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
      assert.match(page.headers.get("content-security-policy") ?? "", /frame-ancestors 'none'/);
      const html = await page.text();
      assert.ok(!html.includes(ADMIN) && !html.includes(CLIENT_TOKEN), "the page carries no secret");

      const json = (headers: Record<string, string> = {}, query = "") =>
        fetch(`${server.url}/dashboard.json${query}`, { headers });
      const refused = async (response: Response, reason: RegExp) => {
        assert.equal(response.status, 401);
        assert.match(response.headers.get("www-authenticate") ?? "", /^Bearer realm="hubbub-admin"/);
        assert.match(await response.text(), reason);
      };
      await refused(await json(), /^Missing admin token/);
      await refused(await json({}, `?token=${ADMIN}`), /^Missing admin token/);
      await refused(await json({ authorization: `Bearer ${CLIENT_TOKEN}` }), /^Invalid admin token/);
      const ok = await json({ authorization: `Bearer ${ADMIN}` });
      assert.equal(ok.status, 200);
      assert.equal((await ok.json()).server.access, "admin_token");

      // Without --admin-token a server that asks clients for a credential shows its dashboard to nobody.
      for (const other of [unset, jwt]) {
        for (const path of ["/dashboard", "/dashboard.json"]) {
          const response = await fetch(`${other.url}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } });
          assert.equal(response.status, 403, path);
          assert.match(await response.text(), /start it with --admin-token \(or HUBBUB_ADMIN_TOKEN\)/);
        }
      }

      // HTTP publish takes the admin token as well as the clients' credentials, and nothing else.
      member = new TestClient(`${server.wsUrl}/rooms/ops?token=${CLIENT_TOKEN}`);
      await member.opened();
      const publish = (authorization?: string) =>
        fetch(`${server.url}/rooms/ops`, {
          method: "POST",
          headers: { "content-type": "text/plain", ...(authorization ? { authorization } : {}) },
          body: "deploy done",
        });
      const wrong = await publish("Bearer not-it");
      assert.equal(wrong.status, 401);
      await wrong.body?.cancel();
      const byAdmin = await publish(`Bearer ${ADMIN}`);
      assert.equal(byAdmin.status, 202);
      assert.deepEqual(await byAdmin.json(), { room: "ops", bytes: 11, type: "text" });
      assert.deepEqual(await member.waitFor(1), ["deploy done"]);
      // The admin token opens no WebSocket.
      const socket = new TestClient(`${server.wsUrl}/rooms/ops?token=${ADMIN}`);
      await assert.rejects(socket.opened());
      await socket.closed;
    } finally {
      await member?.close();
      await Promise.all([server.shutdown(), unset.shutdown(), jwt.shutdown()]);
    }
  },
);

const OUTSIDE = Deno.networkInterfaces().find((i) => i.family === "IPv4" && !i.address.startsWith("127."))?.address;

Deno.test({
  name: "without any token, a client from another address gets 403 and the JSON says the server is exposed",
  ignore: OUTSIDE === undefined, // needs a non-loopback interface to come from
  sanitizeOps: true,
  sanitizeResources: true,
}, async () => {
  const server = serve({ port: 0, hostname: "0.0.0.0", logger: SILENT_LOGGER });
  try {
    const port = server.addr.port;
    for (const path of ["/dashboard", "/dashboard.json"]) {
      const response = await fetch(`http://${OUTSIDE}:${port}${path}`);
      assert.equal(response.status, 403, path);
      assert.match(
        await response.text(),
        new RegExp(`answers this machine only .* it came from ${OUTSIDE!.replaceAll(".", "\\.")}`),
      );
    }
    const local = await snapshot(`http://127.0.0.1:${port}`);
    assert.deepEqual([local.server.hostname, local.server.loopback, local.server.access], [
      "0.0.0.0",
      false,
      "loopback",
    ]);
  } finally {
    await server.shutdown();
  }
});

Deno.test({
  name: "CLI: --admin-token and HUBBUB_ADMIN_TOKEN guard the dashboard; the banner names it",
  sanitizeOps: true,
  sanitizeResources: true,
}, async () => {
  for (const [args, env] of [[["--admin-token", ADMIN], {}], [[], { HUBBUB_ADMIN_TOKEN: ADMIN }]] as const) {
    const server = await startMain(["--token", CLIENT_TOKEN, ...args], { env });
    try {
      const url = `http://127.0.0.1:${server.port}`;
      assert.match(server.banner, new RegExp(`dashboard +${url}/dashboard`));
      assert.ok(!server.banner.includes(ADMIN), "the banner never shows the admin token");
      const without = await fetch(`${url}/dashboard.json`);
      assert.equal(without.status, 401);
      await without.body?.cancel();
      const withIt = await fetch(`${url}/dashboard.json`, { headers: { authorization: `Bearer ${ADMIN}` } });
      assert.equal(withIt.status, 200);
      await withIt.body?.cancel();
    } finally {
      server.child.kill("SIGTERM");
      const { code, stderr } = await server.exited;
      assert.equal(code, 0);
      assert.ok(!stderr.includes(ADMIN), "nothing logs the admin token");
    }
  }
});

Deno.test({
  name: "cluster: /dashboard.json on either node lists both nodes, with cluster-wide counts",
  sanitizeOps: true,
  sanitizeResources: true,
}, async () => {
  const redis = await startRedis();
  const nodes: Node[] = [];
  const clients: TestClient[] = [];
  try {
    nodes.push(await startNode("deno", redis.url()), await startNode("raw", redis.url()));
    const [a, b] = nodes;
    clients.push(...await openClients(`${a.wsUrl}/rooms/lobby`, 2), ...await openClients(`${b.wsUrl}/rooms/lobby`, 1));
    clients.push(...await openClients(`${b.wsUrl}/rooms/other`, 2));
    const connections = new Map([[a.id, 2], [b.id, 3]]);
    await waitForMembers(a, "lobby", 3);
    clients[2].socket.send("across");
    await Promise.all(clients.slice(0, 3).map((client) => client.waitFor(1)));
    for (const node of nodes) {
      let body: Record<string, unknown> = {};
      // Heartbeats carry other nodes' counts every 2 s.
      await eventually(`the ${node.engine} node to see both nodes and 5 connections`, async () => {
        body = (await getJson(node, "/dashboard.json")).body;
        const cluster = body.cluster as DashboardSnapshot["cluster"];
        return cluster?.nodes.length === 2 && cluster.connections === 5 &&
          cluster.nodes.every((n) => n.connections === connections.get(n.id));
      }, 8000);
      const cluster = body.cluster as NonNullable<DashboardSnapshot["cluster"]>;
      assert.deepEqual(shape(cluster), shape((await readmeExamples())[1]), "the README's cluster has the real shape");
      assert.equal(cluster.broker, "ok");
      assert.equal(cluster.error, null);
      assert.equal(cluster.rooms, 2);
      const byId = new Map(cluster.nodes.map((n) => [n.id, n]));
      assert.deepEqual([...byId.keys()].sort(), [a.id, b.id].sort());
      for (const known of nodes) {
        const info = byId.get(known.id)!;
        assert.equal(info.address, known.url);
        assert.equal(info.broker, "ok");
        assert.ok(info.startedAt > 0 && info.startedAt <= info.heartbeatAt, JSON.stringify(info));
        assert.deepEqual(Object.keys(info), ["id", "address", "connections", "startedAt", "heartbeatAt", "broker"]);
      }
      // This node's own numbers stay its own; the room counted the message that came through Redis once.
      const rooms = body.rooms as DashboardSnapshot["rooms"];
      assert.deepEqual(rooms.list.find((room) => room.name === "lobby")?.messages, 1);
      assert.equal((body.totals as DashboardSnapshot["totals"]).connections, connections.get(node.id));
    }
  } finally {
    await closeAll(clients);
    for (const node of nodes) await stopNode(node);
    await redis.stop();
  }
});
