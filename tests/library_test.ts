import assert from "node:assert/strict";
import { createHubbub, serve, SILENT_LOGGER } from "../mod.ts";
import { eventually, TestClient } from "./_harness.ts";

Deno.test({
  name: "createHubbub() mounts under another app's paths; hub.publish() reaches the room from the server side",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    const hubbub = createHubbub({ logger: SILENT_LOGGER, maxMessageBytes: 64 * 1024 });
    const app = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (request, info) => {
      const url = new URL(request.url);
      if (url.pathname.startsWith("/ws/")) {
        return hubbub.handler(request, info, { path: `/rooms/${url.pathname.slice(4)}` });
      }
      return new Response("my app");
    });
    const base = `127.0.0.1:${app.addr.port}`;
    assert.equal(await (await fetch(`http://${base}/`)).text(), "my app");
    const [a, b] = [new TestClient(`ws://${base}/ws/lobby`), new TestClient(`ws://${base}/ws/lobby`)];
    await Promise.all([a.opened(), b.opened()]);
    assert.equal(hubbub.hub.members("lobby"), 2);
    a.socket.send("from a client");
    await Promise.all([a.waitFor(1), b.waitFor(1)]);
    assert.equal(hubbub.hub.publish("lobby", JSON.stringify({ tick: 1 })), 2);
    for (const client of [a, b]) assert.deepEqual(await client.waitFor(2), ["from a client", '{"tick":1}']);
    const refused = await fetch(`http://${base}/ws/bad%20name`, {
      headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "13" },
    });
    assert.equal(refused.status, 400);
    await refused.body?.cancel();
    await hubbub.closeAll();
    assert.deepEqual(await a.closed, { code: 1001, reason: "server shutting down" });
    await b.closed;
    await app.shutdown();
  },
});

for (const engine of ["deno", "raw"] as const) {
  Deno.test({
    name: `[${engine}] hub.publish() of the same ArrayBuffer with new bytes delivers the new bytes`,
    sanitizeOps: true,
    sanitizeResources: true,
    async fn() {
      const server = serve({ port: 0, hostname: "127.0.0.1", engine, logger: SILENT_LOGGER });
      const client = new TestClient(`${server.wsUrl}/rooms/ticker`);
      try {
        await client.opened();
        await eventually("the client to join", () => server.hub.members("ticker") === 1);
        const buffer = new Uint8Array([1, 2, 3]).buffer;
        server.hub.publish("ticker", buffer);
        new Uint8Array(buffer).set([7, 8, 9]);
        server.hub.publish("ticker", buffer);
        const received = await client.waitFor(2);
        assert.deepEqual(received.map((data) => [...new Uint8Array(data as ArrayBuffer)]), [[1, 2, 3], [7, 8, 9]]);
      } finally {
        await client.close();
        await server.shutdown();
      }
    },
  });
}
