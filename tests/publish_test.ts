import assert from "node:assert/strict";
import { createJwtVerifier, signJwt } from "../lib/auth/jwt.ts";
import { isTextContentType } from "../lib/publish.ts";
import { closeAll, engineTest, openClients, rawRequest, startServer } from "./_harness.ts";

Deno.test("isTextContentType() takes text, JSON and form bodies as text, everything else as binary", () => {
  for (const type of ["text/plain", "TEXT/CSV; charset=utf-8", "application/json", "application/ld+json"]) {
    assert.equal(isTextContentType(type), true, type);
  }
  assert.equal(isTextContentType("application/x-www-form-urlencoded"), true, "curl -d's default");
  for (const type of ["application/octet-stream", "image/png", "application/jsonp", "", null]) {
    assert.equal(isTextContentType(type), false, String(type));
  }
});

engineTest(
  "POST /rooms/<name> publishes its body: text stays text, binary stays binary, to every member",
  async (engine) => {
    const server = startServer(engine);
    const [alice, bob] = await openClients(`${server.wsUrl}/rooms/ops`, 2);
    try {
      const post = (body: BodyInit, type?: string) =>
        fetch(`${server.url}/rooms/ops`, { method: "POST", body, headers: type ? { "content-type": type } : {} });
      let response = await post("deploy done", "text/plain");
      assert.equal(response.status, 202);
      assert.deepEqual(await response.json(), { room: "ops", bytes: 11, type: "text" });
      response = await post('{"build":42}', "application/json");
      assert.deepEqual(await response.json(), { room: "ops", bytes: 12, type: "text" });
      response = await post(new Uint8Array([0, 1, 255]), "application/octet-stream");
      assert.deepEqual(await response.json(), { room: "ops", bytes: 3, type: "binary" });
      response = await post("héllo ✓", "text/plain; charset=utf-8");
      assert.equal(response.status, 202);
      await response.body?.cancel();
      for (const client of [alice, bob]) {
        const got = await client.waitFor(4);
        assert.deepEqual(got.slice(0, 2), ["deploy done", '{"build":42}']);
        assert.deepEqual(new Uint8Array(got[2] as ArrayBuffer), new Uint8Array([0, 1, 255]));
        assert.equal(got[3], "héllo ✓");
      }
      assert.equal(server.hub.stats.messagesReceived, 4);
    } finally {
      await closeAll([alice, bob]);
      await server.shutdown();
    }
  },
);

engineTest("curl -d into the main room arrives as text (curl's own form type)", async (engine) => {
  const server = startServer(engine);
  const [listener] = await openClients(server.wsUrl, 1);
  try {
    const curl = await new Deno.Command("curl", {
      args: ["-sS", "-d", "deploy done", `${server.url}/`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(curl.code, 0, new TextDecoder().decode(curl.stderr));
    assert.deepEqual(JSON.parse(new TextDecoder().decode(curl.stdout)), { room: "/", bytes: 11, type: "text" });
    assert.deepEqual(await listener.waitFor(1), ["deploy done"]);
  } finally {
    await closeAll([listener]);
    await server.shutdown();
  }
});

engineTest(
  "HTTP publish refusals: 413 over the limit, 401 without the token, 405 where there is no room",
  async (engine) => {
    const server = startServer(engine, { maxMessageBytes: 100, token: "s3cret", mode: "echo" });
    const [listener] = await openClients(`${server.wsUrl}/rooms/guarded?token=s3cret`, 1);
    try {
      const post = (path: string, body: BodyInit, headers: Record<string, string> = {}) =>
        fetch(`${server.url}${path}`, {
          method: "POST",
          body,
          headers: { authorization: "Bearer s3cret", ...headers },
        });
      let response = await post("/rooms/guarded", "x".repeat(101), { "content-type": "text/plain" });
      assert.equal(response.status, 413);
      assert.match(await response.text(), /^Message too large: at most 100 bytes/);
      response = await post("/rooms/guarded", "hi", { authorization: "Bearer nope" });
      assert.equal(response.status, 401);
      assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="hubbub", error="invalid_token"');
      await response.body?.cancel();
      response = await post("/rooms/guarded?token=s3cret", "via query", {
        authorization: "",
        "content-type": "text/plain",
      });
      assert.equal(response.status, 202);
      await response.body?.cancel();
      // `/` is the echo endpoint in echo mode, and /echo is never a room: no room to publish to.
      for (const path of ["/", "/echo", "/healthz"]) {
        response = await post(path, "hi");
        assert.equal(response.status, 405, path);
        await response.body?.cancel();
      }
      response = await post("/rooms/guarded", new Uint8Array([0xc3, 0x28]), { "content-type": "text/plain" });
      assert.equal(response.status, 400);
      assert.match(await response.text(), /not valid UTF-8/);
      assert.deepEqual(await listener.waitFor(1), ["via query"]);
      assert.equal(listener.received.length, 1, "nothing refused reached the room");
    } finally {
      await closeAll([listener]);
      await server.shutdown();
    }
  },
);

engineTest("a POST whose Content-Length says too much is refused before its body is read", async (engine) => {
  const server = startServer(engine, { maxMessageBytes: 1024 });
  try {
    // Announce 10 MB and send none of it: the answer must not wait for the body.
    const response = await rawRequest(
      server.addr.port,
      "POST /rooms/big HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 10000000\r\n\r\n",
      2000,
    );
    assert.equal(response.status, 413);
  } finally {
    await server.shutdown();
  }
});

engineTest("HTTP publish takes a JWT and checks its publish rooms", async (engine) => {
  const secret = "a secret of at least thirty-two bytes!";
  const server = startServer(engine, { jwt: await createJwtVerifier({ secret }) });
  const reader = await signJwt({ secret, claims: { sub: "ticker", hubbub: { subscribe: ["*"], publish: ["news"] } } });
  const [listener] = await openClients(`${server.wsUrl}/rooms/news?token=${reader}`, 1);
  try {
    const post = (room: string, token: string) =>
      fetch(`${server.url}/rooms/${room}`, {
        method: "POST",
        body: "headline",
        headers: { authorization: `Bearer ${token}`, "content-type": "text/plain" },
      });
    let response = await post("news", reader);
    assert.equal(response.status, 202);
    await response.body?.cancel();
    response = await post("sports", reader);
    assert.equal(response.status, 403);
    assert.match(await response.text(), /does not allow publishing in room: sports/);
    response = await post("news", reader.slice(0, -2) + "xx");
    assert.equal(response.status, 401);
    await response.body?.cancel();
    assert.deepEqual(await listener.waitFor(1), ["headline"]);
  } finally {
    await closeAll([listener]);
    await server.shutdown();
  }
});
