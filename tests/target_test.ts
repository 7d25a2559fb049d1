import assert from "node:assert/strict";
import { isValidHost, splitTarget } from "../lib/target.ts";
import {
  captureLog,
  clientFrame,
  engineTest,
  eventually,
  health,
  rawRequest,
  readServerFrames,
  startServer,
  upgradeHead,
} from "./_harness.ts";
import { trickHead, TRICKS } from "./_tricks.ts";

Deno.test("isValidHost() takes names, IPv4, bracketed IPv6 and ports up to 65535, nothing else", () => {
  for (const host of ["localhost", "localhost:8765", "127.0.0.1:80", "[::1]", "[::1]:8765", "a-b.example", "", "x:0"]) {
    assert.equal(isValidHost(host), true, host);
  }
  for (
    const host of ["a b", "x/rooms/secret?", "x/echo#", "x:99999", "x:65536", "x:", "@evil", "x?y", "[::1", "x\\y"]
  ) {
    assert.equal(isValidHost(host), false, host);
  }
});

Deno.test("splitTarget() keeps the path as sent and refuses what is not origin- or absolute-form", () => {
  assert.deepEqual(splitTarget("/a/../b?x=1"), { path: "/a/../b", query: "x=1" });
  assert.deepEqual(splitTarget("/rooms/..\\metrics"), { path: "/rooms/..\\metrics", query: "" });
  assert.deepEqual(splitTarget("https://h:1/rooms/x?token=t"), { path: "/rooms/x", query: "token=t" });
  assert.deepEqual(splitTarget("http://h"), { path: "/", query: "" });
  assert.deepEqual(splitTarget("http://h?q"), { path: "/", query: "q" });
  for (const bad of ["healthz", "@evil/healthz", "*", "h:1", "/x#frag", "http://h/x#f"]) {
    assert.equal("error" in splitTarget(bad), true, bad);
  }
});

engineTest("Host and target tricks get the documented answer and log no error", async (engine) => {
  const log = captureLog("info");
  const server = startServer(engine, { logger: log.logger });
  try {
    for (const trick of TRICKS) {
      const response = await rawRequest(server.addr.port, trickHead(trick, server.addr.port));
      assert.equal(response.status, trick.status, `${trick.name}: ${response.statusLine}`);
      if (trick.body) assert.match(response.body, trick.body, trick.name);
      if (trick.statusLine) assert.match(response.statusLine, trick.statusLine, trick.name);
    }
    assert.equal(server.hub.stats.upgrades, 0, "no trick upgraded");
    assert.deepEqual(log.lines.filter((line) => JSON.parse(line).level === "error"), []);
  } finally {
    await server.shutdown();
  }
});

engineTest("an upgrade with an empty Host goes where its target says (/echo echoes)", async (engine) => {
  const server = startServer(engine);
  const raw = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  try {
    const head = upgradeHead("/echo").replace("Host: 127.0.0.1", "Host: ");
    await raw.write(new TextEncoder().encode(head));
    // Read the 101 head alone (a 1-byte buffer stops right at its end), then the frames.
    let text = "";
    const one = new Uint8Array(1);
    while (!text.endsWith("\r\n\r\n") && (await raw.read(one)) === 1) text += String.fromCharCode(one[0]);
    assert.match(text, /^HTTP\/1\.1 101 /);
    await raw.write(clientFrame(0x1, "echo me"));
    const { frames } = await readServerFrames(raw, { untilClose: false, timeoutMs: 500 });
    const texts = frames.filter((frame) => frame.opcode === 0x1).map((frame) =>
      new TextDecoder().decode(frame.payload)
    );
    assert.deepEqual(texts, ["echo me"]);
    assert.equal((await health(server)).rooms, 0, "it joined no room");
  } finally {
    raw.close();
  }
  await eventually("the echo client to leave", async () => (await health(server)).connections === 0);
  await server.shutdown();
});

engineTest("HEAD answers with GET's headers and Content-Length, and no body", async (engine) => {
  const server = startServer(engine);
  try {
    for (const path of ["/", "/healthz", "/metrics"]) {
      const get = await rawRequest(server.addr.port, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
      // Deno keeps the connection open after a HEAD answer: wait a little for a body that must not come.
      const head = await rawRequest(server.addr.port, `HEAD ${path} HTTP/1.1\r\nHost: x\r\n\r\n`, 300);
      assert.equal(head.status, 200);
      assert.equal(head.body, "", `${path}: no body`);
      assert.equal(head.headers.get("content-type"), get.headers.get("content-type"));
      // /metrics changes between the two requests (its own counters); the page and /healthz do not.
      if (path !== "/metrics") assert.equal(head.headers.get("content-length"), get.headers.get("content-length"));
      assert.ok(Number(head.headers.get("content-length")) > 0, `${path}: a real length`);
    }
  } finally {
    await server.shutdown();
  }
});

engineTest("401 and the other refusals carry their reason phrase", async (engine) => {
  const server = startServer(engine, { token: "s3cret" });
  try {
    const response = await rawRequest(server.addr.port, upgradeHead("/echo"));
    assert.equal(response.statusLine, "HTTP/1.1 401 Unauthorized");
  } finally {
    await server.shutdown();
  }
});
