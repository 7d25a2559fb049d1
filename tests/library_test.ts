import assert from "node:assert/strict";
import { createHubbub, SILENT_LOGGER } from "../mod.ts";
import { TestClient } from "./_harness.ts";

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
