import assert from "node:assert/strict";
import {
  closeAll,
  engineTest,
  eventually,
  health,
  openClients,
  rawRequest,
  startServer,
  TestClient,
  upgradeHead,
} from "./_harness.ts";

engineTest("the tutorial's chat: two clients, each sees every message, the sender included", async (engine) => {
  const server = startServer(engine);
  const [alice, bob] = await openClients(server.wsUrl, 2);
  alice.socket.send("Hello World!");
  await alice.waitFor(1);
  await bob.waitFor(1);
  bob.socket.send("Hi Alice");
  await alice.waitFor(2);
  await bob.waitFor(2);
  assert.deepEqual(alice.received, ["Hello World!", "Hi Alice"]);
  assert.deepEqual(bob.received, ["Hello World!", "Hi Alice"]);
  await closeAll([alice, bob]);
  await server.shutdown();
});

engineTest("binary stays binary and text stays text, byte for byte", async (engine) => {
  const server = startServer(engine);
  const [sender, receiver] = await openClients(`${server.wsUrl}/rooms/exact`, 2);
  const bytes = new Uint8Array(70_000);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) & 0xff;
  const texts = ["", "ünïcödé ✓ 日本語 🎉👩‍👩‍👧", "\u0000nul and\r\nnewlines", "x".repeat(65_536)];
  sender.socket.send(bytes);
  for (const text of texts) sender.socket.send(text);
  sender.socket.send(new Uint8Array(0));
  const got = await receiver.waitFor(6);
  assert.equal(got.length, 6);
  assert.ok(got[0] instanceof ArrayBuffer);
  assert.deepEqual(new Uint8Array(got[0] as ArrayBuffer), bytes);
  assert.deepEqual(got.slice(1, 5), texts);
  assert.ok(got[5] instanceof ArrayBuffer && got[5].byteLength === 0, "an empty binary message stays binary");
  await closeAll([sender, receiver]);
  await server.shutdown();
});

engineTest("every member receives a burst of 1,000 messages in the order they were sent", async (engine) => {
  const server = startServer(engine);
  const clients = await openClients(`${server.wsUrl}/rooms/burst`, 3);
  for (let i = 0; i < 1000; i++) clients[0].socket.send(`m${i}`);
  const expected = Array.from({ length: 1000 }, (_, i) => `m${i}`);
  for (const client of clients) assert.deepEqual(await client.waitFor(1000), expected);
  await closeAll(clients);
  await server.shutdown();
});

engineTest("messages from several senders keep one order for every member", async (engine) => {
  const server = startServer(engine);
  const clients = await openClients(server.wsUrl, 4);
  for (let i = 0; i < 200; i++) clients[i % 4].socket.send(`${i % 4}:${i}`);
  const first = await clients[0].waitFor(200);
  for (const client of clients) assert.deepEqual(await client.waitFor(200), first);
  // Each sender's own messages stay in its sending order.
  for (let sender = 0; sender < 4; sender++) {
    const own = first.filter((m) => (m as string).startsWith(`${sender}:`)).map((m) => Number((m as string).slice(2)));
    assert.deepEqual(own, [...own].sort((a, b) => a - b));
  }
  await closeAll(clients);
  await server.shutdown();
});

engineTest("1,000 clients connected at once all receive one broadcast", async (engine) => {
  const server = startServer(engine, { maxConnectionsPerIp: 2000 });
  const clients = await openClients(server.wsUrl, 1000);
  assert.equal((await health(server)).connections, 1000);
  clients[0].socket.send("to everyone");
  await Promise.all(clients.map((client) => client.waitFor(1)));
  for (const client of clients) assert.deepEqual(client.received, ["to everyone"]);
  await closeAll(clients);
  await eventually("connections back to 0", async () => (await health(server)).connections === 0);
  await server.shutdown();
});

engineTest("a client that disconnects in the middle of a burst does not disturb the others", async (engine) => {
  const server = startServer(engine);
  const [sender, stayer, leaver] = await openClients(`${server.wsUrl}/rooms/burst`, 3);
  for (let i = 0; i < 500; i++) {
    sender.socket.send(`m${i}`);
    if (i === 250) leaver.socket.close();
  }
  const expected = Array.from({ length: 500 }, (_, i) => `m${i}`);
  assert.deepEqual(await stayer.waitFor(500), expected);
  assert.deepEqual(await sender.waitFor(500), expected);
  await leaver.closed;
  await eventually("the leaver to be gone", async () => (await health(server)).connections === 2);
  await closeAll([sender, stayer]);
  await server.shutdown();
});

engineTest("named rooms are isolated from each other and from /", async (engine) => {
  const server = startServer(engine);
  const main = new TestClient(server.wsUrl);
  const red = new TestClient(`${server.wsUrl}/rooms/red`);
  const blue = new TestClient(`${server.wsUrl}/rooms/blue`);
  const blueEncoded = new TestClient(`${server.wsUrl}/rooms/%62lue`); // percent-decoded: the same room
  const all = [main, red, blue, blueEncoded];
  await Promise.all(all.map((client) => client.opened()));
  assert.equal((await health(server)).rooms, 3);
  red.socket.send("red only");
  blue.socket.send("blue only");
  main.socket.send("main only");
  await Promise.all([main.waitFor(1), red.waitFor(1), blue.waitFor(1), blueEncoded.waitFor(1)]);
  // A marker round trip in each room proves nothing else is on its way.
  for (const client of [main, red, blue]) client.socket.send("end");
  await Promise.all([main.waitFor(2), red.waitFor(2), blue.waitFor(2), blueEncoded.waitFor(2)]);
  assert.deepEqual(main.received, ["main only", "end"]);
  assert.deepEqual(red.received, ["red only", "end"]);
  assert.deepEqual(blue.received, ["blue only", "end"]);
  assert.deepEqual(blueEncoded.received, ["blue only", "end"]);
  await closeAll(all);
  await server.shutdown();
});

engineTest("/echo answers the sender only, same type, same bytes", async (engine) => {
  const server = startServer(engine);
  const echo = new TestClient(`${server.wsUrl}/echo`);
  const other = new TestClient(`${server.wsUrl}/echo`);
  await Promise.all([echo.opened(), other.opened()]);
  echo.socket.send("Hello World!");
  echo.socket.send(new Uint8Array([1, 2, 3]));
  const got = await echo.waitFor(2);
  assert.equal(got[0], "Hello World!");
  assert.deepEqual(new Uint8Array(got[1] as ArrayBuffer), new Uint8Array([1, 2, 3]));
  other.socket.send("mine");
  assert.deepEqual(await other.waitFor(1), ["mine"]);
  assert.equal(echo.received.length, 2);
  await closeAll([echo, other]);
  await server.shutdown();
});

engineTest("mode echo makes / an echo endpoint", async (engine) => {
  const server = startServer(engine, { mode: "echo" });
  const [a, b] = await openClients(server.wsUrl, 2);
  a.socket.send("only me");
  assert.deepEqual(await a.waitFor(1), ["only me"]);
  b.socket.send("me too");
  assert.deepEqual(await b.waitFor(1), ["me too"]);
  assert.deepEqual(a.received, ["only me"]);
  assert.equal((await health(server)).rooms, 0);
  await closeAll([a, b]);
  await server.shutdown();
});

engineTest("/healthz counts connections and rooms, back to 0 after everyone leaves", async (engine) => {
  const server = startServer(engine);
  assert.deepEqual(await health(server), { status: "ok", connections: 0, rooms: 0 });
  const clients = [
    ...(await openClients(server.wsUrl, 2)),
    ...(await openClients(`${server.wsUrl}/rooms/a`, 2)),
    ...(await openClients(`${server.wsUrl}/echo`, 1)),
  ];
  assert.deepEqual(await health(server), { status: "ok", connections: 5, rooms: 2 });
  await closeAll(clients);
  await eventually("healthz back to 0", async () => (await health(server)).connections === 0);
  assert.deepEqual(await health(server), { status: "ok", connections: 0, rooms: 0 });
  await server.shutdown();
});

engineTest("plain HTTP: the page, /healthz, /stats, 404 and 405", async (engine) => {
  const server = startServer(engine);
  for (const path of ["/", "/echo", "/rooms/lobby"]) {
    const page = await fetch(`${server.url}${path}`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(await page.text(), /WebSocket/);
  }
  const healthz = await fetch(`${server.url}/healthz`);
  assert.match(healthz.headers.get("content-type") ?? "", /^application\/json/);
  assert.deepEqual(await healthz.json(), { status: "ok", connections: 0, rooms: 0 });
  const stats = await fetch(`${server.url}/stats?room=lobby`);
  assert.deepEqual(await stats.json(), { room: "lobby", members: 0 });
  const missing = await fetch(`${server.url}/nope`);
  assert.equal(missing.status, 404);
  assert.match(await missing.text(), /No such path: \/nope/);
  const badRoom = await fetch(`${server.url}/rooms/bad%20name`);
  assert.equal(badRoom.status, 400);
  assert.match(await badRoom.text(), /Room name must be/);
  const post = await fetch(`${server.url}/healthz`, { method: "POST", body: "x" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
  await post.body?.cancel();
  const head = await fetch(`${server.url}/healthz`, { method: "HEAD" });
  assert.equal(head.status, 200);
  await head.body?.cancel();
  await server.shutdown();
});

/** Each malformed handshake, the status it gets, and a fragment of the reason. */
const MALFORMED: [name: string, head: (path: string) => string, status: number, reason: RegExp][] = [
  ["a POST upgrade", (p) => upgradeHead(p).replace(/^GET/, "POST"), 405, /must use GET/],
  [
    "a missing Sec-WebSocket-Key",
    (p) => upgradeHead(p, "", { omit: ["Sec-WebSocket-Key"] }),
    400,
    /Missing Sec-WebSocket-Key/,
  ],
  [
    "a Sec-WebSocket-Key of the wrong length",
    (p) =>
      upgradeHead(p, "", { omit: ["Sec-WebSocket-Key"] }).replace(
        "\r\n\r\n",
        "\r\nSec-WebSocket-Key: c2hvcnQ=\r\n\r\n",
      ),
    400,
    /Invalid Sec-WebSocket-Key/,
  ],
  [
    "a missing Sec-WebSocket-Version",
    (p) => upgradeHead(p, "", { omit: ["Sec-WebSocket-Version"] }),
    400,
    /Missing Sec-WebSocket-Version/,
  ],
  [
    "a wrong Sec-WebSocket-Version",
    (p) =>
      upgradeHead(p, "", { omit: ["Sec-WebSocket-Version"] }).replace(
        "\r\n\r\n",
        "\r\nSec-WebSocket-Version: 8\r\n\r\n",
      ),
    400,
    /Unsupported Sec-WebSocket-Version: expected 13, got 8/,
  ],
  ["a missing Upgrade header", (p) => upgradeHead(p, "", { omit: ["Upgrade"] }), 400, /Upgrade: websocket/],
  [
    "a wrong Upgrade header",
    (p) => upgradeHead(p, "", { omit: ["Upgrade"] }).replace("\r\n\r\n", "\r\nUpgrade: h2c\r\n\r\n"),
    400,
    /Upgrade: websocket/,
  ],
  ["a missing Connection header", (p) => upgradeHead(p, "", { omit: ["Connection"] }), 400, /Connection: Upgrade/],
];

for (const [name, head, status, reason] of MALFORMED) {
  engineTest(`a handshake with ${name} gets ${status} and a reason, and others carry on`, async (engine) => {
    const server = startServer(engine);
    const [a, b] = await openClients(server.wsUrl, 2);
    const response = await rawRequest(server.addr.port, head("/"));
    assert.equal(response.status, status);
    assert.match(response.body, reason);
    if (name.includes("Version")) assert.equal(response.headers.get("sec-websocket-version"), "13");
    a.socket.send("still here");
    assert.deepEqual(await b.waitFor(1), ["still here"]);
    assert.deepEqual(await health(server), { status: "ok", connections: 2, rooms: 1 });
    await closeAll([a, b]);
    await server.shutdown();
  });
}

engineTest("an upgrade to an unknown path is 404 and to a bad room name 400, before the upgrade", async (engine) => {
  const server = startServer(engine);
  const cases: [string, number, RegExp][] = [
    ["/nope", 404, /No such path/],
    ["/healthz", 404, /No WebSocket endpoint at \/healthz/],
    ["/rooms/", 400, /Room name must be 1-64 characters/],
    ["/rooms/has%20space", 400, /Room name must be/],
    [`/rooms/${"x".repeat(65)}`, 400, /Room name must be/],
    ["/rooms/%E0%A4%A", 400, /not valid percent-encoding/],
  ];
  for (const [path, status, reason] of cases) {
    const response = await rawRequest(server.addr.port, upgradeHead(path));
    assert.equal(response.status, status, path);
    assert.match(response.body, reason, path);
  }
  assert.equal((await rawRequest(server.addr.port, upgradeHead(`/rooms/${"x".repeat(64)}`))).status, 101);
  assert.equal((await rawRequest(server.addr.port, upgradeHead("/rooms/A.z_0-9"))).status, 101);
  await eventually("raw sockets gone", async () => (await health(server)).connections === 0);
  await server.shutdown();
});

engineTest("a client offering subprotocols connects with either spelling of the list, its first selected", async (
  engine,
) => {
  const server = startServer(engine);
  for (const list of ["chat, superchat", "chat,superchat", "chat"]) {
    const response = await rawRequest(server.addr.port, upgradeHead("/", `Sec-WebSocket-Protocol: ${list}\r\n`));
    assert.equal(response.status, 101, list);
    assert.equal(response.headers.get("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert.equal(response.headers.get("sec-websocket-protocol"), "chat", "without --subprotocol, the first offer");
  }
  await eventually("raw sockets gone", async () => (await health(server)).connections === 0);
  await server.shutdown();
});

engineTest("shutdown sends 1001 'server shutting down' to every client", async (engine) => {
  const server = startServer(engine);
  const clients = await openClients(`${server.wsUrl}/rooms/x`, 5);
  await server.shutdown();
  for (const client of clients) assert.deepEqual(await client.closed, { code: 1001, reason: "server shutting down" });
});
