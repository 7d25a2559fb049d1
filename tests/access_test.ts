/**
 * Who may connect, over real sockets: `allowedOrigins` and `requireOrigin` (403), the bearer token (401 with
 * `WWW-Authenticate: Bearer`, from `Authorization` or `?token=`), `maxConnections` (503 with `Retry-After`) and
 * `maxConnectionsPerIp` (429), slots freed on close, and no token ever written to the log.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { HubbubServer } from "../lib/server.ts";
import {
  captureLog,
  closeAll,
  ENGINES,
  engineTest,
  eventually,
  health,
  openClients,
  rawRequest,
  type RawResponse,
  startServer,
  TestClient,
  upgradeHead,
} from "./_harness.ts";
import { startMain } from "./_process.ts";

/** Sends an otherwise valid upgrade for `path` with `extra` header lines; returns the raw response. */
function attempt(server: HubbubServer, path: string, extra = ""): Promise<RawResponse> {
  return rawRequest(server.addr.port, upgradeHead(path, extra));
}

/** Opens a client with `headers` and proves it works: its own message comes back from its room. */
async function connect(url: string, headers?: HeadersInit): Promise<TestClient> {
  const client = new TestClient(url, undefined, headers);
  await client.opened();
  client.socket.send("ping?");
  assert.deepEqual(await client.waitFor(1), ["ping?"]);
  return client;
}

async function assertEmpty(server: HubbubServer): Promise<void> {
  await eventually("healthz to show 0 connections and 0 rooms", async () => {
    const state = await health(server);
    return state.connections === 0 && state.rooms === 0;
  });
}

/** Asserts a refusal: `status`, a one-line plain-text reason, and nothing upgraded. */
function assertRefused(response: RawResponse, status: number, reason: RegExp): void {
  assert.equal(response.status, status, `expected ${status}, got ${response.status}: ${response.body}`);
  assert.match(response.body, reason);
  assert.equal(response.headers.get("upgrade"), undefined);
  assert.equal(response.headers.get("sec-websocket-accept"), undefined);
}

const ORIGIN = "https://chat.example.com";

engineTest("allowedOrigins: a listed Origin connects; any other gets 403", async (engine) => {
  const server = startServer(engine, { allowedOrigins: [ORIGIN, "http://localhost:8000"] });
  try {
    const client = await connect(`${server.wsUrl}/rooms/origin`, { origin: ORIGIN });
    await client.close();
    // Exact match only: another scheme, port or subdomain, a trailing slash, or "null" are all refused.
    for (
      const origin of [
        "https://evil.example.com",
        "http://chat.example.com",
        "https://chat.example.com:8443",
        "https://chat.example.com.evil.net",
        `${ORIGIN}/`,
        "http://localhost:8001",
        "null",
      ]
    ) {
      assertRefused(await attempt(server, "/rooms/origin", `Origin: ${origin}\r\n`), 403, /^Origin not allowed/);
    }
    assert.equal(server.hub.stats.refused.get("origin"), 7);
    assert.equal(server.hub.stats.upgrades, 1);
  } finally {
    await assertEmpty(server);
    await server.shutdown();
  }
});

engineTest("allowedOrigins: a request without Origin is allowed unless requireOrigin is set", async (engine) => {
  const open = startServer(engine, { allowedOrigins: [ORIGIN] });
  const strict = startServer(engine, { allowedOrigins: [ORIGIN], requireOrigin: true });
  try {
    // Non-browser clients (CLI tools, servers) send no Origin; Deno's WebSocket client does not either.
    assert.equal((await attempt(open, "/echo")).status, 101);
    const client = await connect(`${open.wsUrl}/rooms/no-origin`);
    await client.close();

    assertRefused(await attempt(strict, "/echo"), 403, /^Missing Origin header/);
    await assert.rejects(new TestClient(`${strict.wsUrl}/echo`).opened());
    const allowed = await connect(`${strict.wsUrl}/rooms/no-origin`, { origin: ORIGIN });
    await allowed.close();
    assert.equal(strict.hub.stats.refused.get("origin"), 2);
  } finally {
    await assertEmpty(open);
    await assertEmpty(strict);
    await open.shutdown();
    await strict.shutdown();
  }
});

engineTest('allowedOrigins: "*" allows every Origin', async (engine) => {
  const server = startServer(engine, { allowedOrigins: ["*"], requireOrigin: true });
  try {
    for (const origin of ["https://anything.example", "http://127.0.0.1:9", "null"]) {
      assert.equal((await attempt(server, "/echo", `Origin: ${origin}\r\n`)).status, 101, origin);
    }
    assertRefused(await attempt(server, "/echo"), 403, /^Missing Origin header/);
  } finally {
    await assertEmpty(server);
    await server.shutdown();
  }
});

const TOKEN = "s3cret-Token_42";

engineTest("token: a missing or wrong token gets 401 with WWW-Authenticate: Bearer", async (engine) => {
  const server = startServer(engine, { token: TOKEN });
  try {
    const cases: [string, string, RegExp][] = [
      ["/echo", "", /^Missing token/],
      ["/echo?token=", "", /^Invalid token/],
      ["/echo?token=wrong", "", /^Invalid token/],
      [`/echo?token=${TOKEN}x`, "", /^Invalid token/],
      [`/echo?token=${TOKEN.slice(0, -1)}`, "", /^Invalid token/],
      ["/echo", "Authorization: Bearer wrong\r\n", /^Invalid token/],
      ["/echo", `Authorization: Basic ${btoa(`user:${TOKEN}`)}\r\n`, /^Missing token/],
      // A wrong header is not rescued by a right query: the header, when present, is the credential.
      [`/echo?token=${TOKEN}`, "Authorization: Bearer wrong\r\n", /^Invalid token/],
    ];
    for (const [path, extra, reason] of cases) {
      const response = await attempt(server, path, extra);
      assertRefused(response, 401, reason);
      assert.match(response.headers.get("www-authenticate") ?? "", /^Bearer\b/, `${path} ${extra}`);
    }
    assert.equal(server.hub.stats.refused.get("unauthorized"), cases.length);
    assert.equal(server.hub.stats.upgrades, 0);
  } finally {
    await server.shutdown();
  }
});

engineTest("token: ?token= and Authorization: Bearer (any case) both connect", async (engine) => {
  const server = startServer(engine, { token: TOKEN });
  const url = `${server.wsUrl}/rooms/vip`;
  const clients: TestClient[] = [];
  try {
    clients.push(await connect(`${url}?token=${encodeURIComponent(TOKEN)}`));
    clients.push(await connect(url, { authorization: `Bearer ${TOKEN}` }));
    clients.push(await connect(url, { authorization: `bearer   ${TOKEN}` }));
    assert.equal(server.hub.members("vip"), 3);
    assert.equal((await attempt(server, "/echo", `Authorization: BEARER ${TOKEN}\r\n`)).status, 101);
  } finally {
    await closeAll(clients);
  }
  await assertEmpty(server);
  await server.shutdown();
});

engineTest("token: never written to the log, whether right, wrong, or on a refused path", async (engine) => {
  const log = captureLog("debug");
  const server = startServer(engine, { token: TOKEN, logger: log.logger });
  const wrong = "Wr0ng-guess-7f3a";
  try {
    const a = await connect(`${server.wsUrl}/rooms/quiet?token=${TOKEN}`);
    const b = await connect(`${server.wsUrl}/rooms/quiet`, { authorization: `Bearer ${TOKEN}` });
    assert.equal((await attempt(server, `/rooms/quiet?token=${wrong}`)).status, 401);
    assert.equal((await attempt(server, "/rooms/quiet", `Authorization: Bearer ${wrong}\r\n`)).status, 401);
    assert.equal((await attempt(server, `/nowhere?token=${TOKEN}`)).status, 404);
    assert.equal((await attempt(server, `/rooms/bad%20name?token=${TOKEN}`)).status, 400);
    const healthz = `GET /healthz?token=${TOKEN} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
    assert.equal((await rawRequest(server.addr.port, healthz)).status, 200);
    await closeAll([a, b]);
    await assertEmpty(server);
  } finally {
    await server.shutdown();
  }
  assert.ok(log.lines.length >= 6, `something was logged: ${log.lines.length} lines`);
  assert.ok(log.lines.some((line) => line.includes("handshake refused")));
  for (const line of log.lines) {
    assert.ok(!line.includes(TOKEN) && !line.includes(wrong), `a token leaked into the log: ${line}`);
    assert.ok(!line.includes("token="), `a query string leaked into the log: ${line}`);
  }
});

engineTest("maxConnections: one over the cap gets 503 with Retry-After; a freed slot is reusable", async (engine) => {
  const server = startServer(engine, { maxConnections: 3 });
  const clients = await openClients(`${server.wsUrl}/rooms/full`, 3);
  try {
    const response = await attempt(server, "/rooms/full");
    assertRefused(response, 503, /^Server full/);
    assert.match(response.headers.get("retry-after") ?? "", /^[1-9]\d*$/, "Retry-After in whole seconds");
    await assert.rejects(new TestClient(`${server.wsUrl}/echo`).opened());
    assert.equal(server.hub.stats.refused.get("max_connections"), 2);
    // Plain HTTP takes no connection slot: /healthz answers while the server is full.
    assert.deepEqual(await health(server), { status: "ok", connections: 3, rooms: 1 });

    await clients.pop()!.close();
    clients.push(await connect(`${server.wsUrl}/rooms/full`));
    assert.equal(server.hub.members("full"), 3);
  } finally {
    await closeAll(clients);
  }
  await assertEmpty(server);
  // Every slot came back: the cap's worth of clients connects again.
  const again = await openClients(`${server.wsUrl}/rooms/full`, 3);
  await closeAll(again);
  await assertEmpty(server);
  await server.shutdown();
});

engineTest("maxConnectionsPerIp: one over the per-address cap gets 429 with Retry-After", async (engine) => {
  const server = startServer(engine, { maxConnectionsPerIp: 2, maxConnections: 10 });
  const clients = await openClients(`${server.wsUrl}/rooms/ip`, 2);
  try {
    const response = await attempt(server, "/rooms/ip");
    assertRefused(response, 429, /^Too many connections from your address/);
    assert.match(response.headers.get("retry-after") ?? "", /^[1-9]\d*$/);
    assert.equal(server.hub.stats.refused.get("max_connections_per_ip"), 1);

    await clients.pop()!.close();
    clients.push(await connect(`${server.wsUrl}/rooms/ip`));
  } finally {
    await closeAll(clients);
  }
  await assertEmpty(server);
  const again = await openClients(`${server.wsUrl}/rooms/ip`, 2);
  await closeAll(again);
  await assertEmpty(server);
  await server.shutdown();
});

engineTest("refused handshakes never take a connection slot", async (engine) => {
  const server = startServer(engine, { maxConnections: 1, maxConnectionsPerIp: 1, token: TOKEN });
  try {
    for (let i = 0; i < 20; i++) assert.equal((await attempt(server, "/echo?token=nope")).status, 401);
    for (let i = 0; i < 5; i++) {
      assert.equal((await attempt(server, "/echo", "Sec-WebSocket-Version: 8\r\n")).status, 400);
    }
    const client = await connect(`${server.wsUrl}/rooms/slot?token=${TOKEN}`);
    // Now full: a client with the right token is turned away by the cap.
    assert.equal((await attempt(server, `/echo?token=${TOKEN}`)).status, 503);
    await client.close();
    const next = await connect(`${server.wsUrl}/rooms/slot?token=${TOKEN}`);
    await next.close();
  } finally {
    await assertEmpty(server);
    await server.shutdown();
  }
});

engineTest("connection slots return after abrupt disconnects too", async (engine) => {
  const server = startServer(engine, { maxConnections: 5, maxConnectionsPerIp: 5 });
  try {
    for (let round = 0; round < 3; round++) {
      // Upgrade and then drop the TCP connection without any close frame.
      const responses = await Promise.all(Array.from({ length: 5 }, () => attempt(server, "/rooms/drop")));
      assert.deepEqual(responses.map((response) => response.status), [101, 101, 101, 101, 101]);
      await assertEmpty(server);
    }
    const clients = await openClients(`${server.wsUrl}/rooms/drop`, 5);
    await closeAll(clients);
  } finally {
    await assertEmpty(server);
    await server.shutdown();
  }
});

for (const engine of ENGINES) {
  Deno.test({
    name: `[${engine}] token: the real server's stdout and stderr never show it, even at --log-level debug`,
    sanitizeOps: true,
    sanitizeResources: true,
  }, async () => {
    const wrong = "Wr0ng-guess-7f3a";
    const server = await startMain(["--engine", engine, "--token", TOKEN, "--log-level", "debug"]);
    const url = `ws://127.0.0.1:${server.port}/rooms/cli`;
    const a = await connect(`${url}?token=${TOKEN}`);
    const b = await connect(url, { authorization: `Bearer ${TOKEN}` });
    const refused = await rawRequest(server.port, upgradeHead(`/rooms/cli?token=${wrong}`));
    assert.equal(refused.status, 401);
    await closeAll([a, b]);
    server.child.kill("SIGTERM");
    const { code, stdout, stderr } = await server.exited;
    assert.equal(code, 0);
    const output = server.banner + stdout + stderr;
    assert.match(output, /a token is required/);
    assert.match(stderr, /handshake refused/, "debug logging was on");
    assert.ok(!output.includes(TOKEN), `the token leaked:\n${output}`);
    assert.ok(!output.includes(wrong), `a wrong token leaked:\n${output}`);
  });
}
