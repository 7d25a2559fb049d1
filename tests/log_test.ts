import assert from "node:assert/strict";
import { createLogger } from "../lib/log.ts";
import {
  captureLog,
  closeAll,
  engineTest,
  eventually,
  health,
  rawRequest,
  startServer,
  TestClient,
  upgradeHead,
} from "./_harness.ts";

Deno.test("createLogger() writes one JSON object per line with time, level and fields", () => {
  const lines: string[] = [];
  const log = createLogger({ format: "json", level: "warn", write: (line) => lines.push(line) });
  log.log("info", "hidden");
  log.log("warn", "shown", { peer: 7, code: 1009 });
  assert.equal(lines.length, 1);
  const entry = JSON.parse(lines[0]);
  assert.equal(entry.level, "warn");
  assert.equal(entry.msg, "shown");
  assert.equal(entry.peer, 7);
  assert.ok(!Number.isNaN(Date.parse(entry.time)));
  assert.equal(log.enabled("info"), false);
  assert.equal(log.enabled("error"), true);
});

Deno.test("createLogger() text format puts the level and key=value fields on one line", () => {
  const lines: string[] = [];
  createLogger({ write: (line) => lines.push(line) }).log("info", "client connected", { peer: 1, path: "/x" });
  assert.match(lines[0], /^\S+Z INFO {2}client connected peer=1 path="\/x"$/);
});

engineTest(
  "logs: connects and disconnects with the close code; no payload, token or query string ever",
  async (engine) => {
    const { lines, logger } = captureLog("debug");
    const token = "sup3r-s3cret-t0ken";
    const server = startServer(engine, { logger, token, maxMessageBytes: 100 });
    const clients = [
      new TestClient(`${server.wsUrl}/rooms/logs?token=${token}`),
      new TestClient(`${server.wsUrl}/rooms/logs`, undefined, { authorization: `Bearer ${token}` }),
    ];
    await Promise.all(clients.map((client) => client.opened()));
    clients[0].socket.send("secret payload text");
    await clients[1].waitFor(1);
    clients[1].socket.send("p".repeat(200)); // over the limit: a warn line
    assert.equal((await clients[1].closed).code, 1009);
    await rawRequest(server.addr.port, upgradeHead(`/rooms/logs?token=wrong-${token}`));
    await closeAll(clients);
    await eventually("everyone gone", async () => (await health(server)).connections === 0);
    await server.shutdown();
    const entries = lines.map((line) => JSON.parse(line));
    const text = lines.join("\n");
    assert.ok(!text.includes(token), "no token in any log line");
    assert.ok(!text.includes("secret payload"), "no payload in any log line");
    assert.ok(!text.includes("?"), "no query string in any log line");
    assert.equal(entries.filter((e) => e.msg === "client connected").length, 2);
    assert.deepEqual(
      entries.filter((e) => e.msg === "client disconnected").map((e) => e.code).sort(),
      [1000, 1009],
    );
    const refused = entries.find((e) => e.msg === "handshake refused");
    assert.equal(refused?.status, 401);
    assert.equal(refused?.path, "/rooms/logs");
    const tooBig = entries.filter((e) => e.level === "warn" && /message too big/i.test(e.msg));
    assert.equal(tooBig.length, 1, "the limit is logged once, at warn");
  },
);
