/**
 * Interoperability with a client nobody here wrote: Python's `websockets` (Debian's python3-websockets), the
 * library the chat-room tutorial is written for. Runs against both engines.
 *
 * @module
 */

import assert from "node:assert/strict";
import { closeAll, engineTest, eventually, health, openClients, startServer } from "./_harness.ts";

const PYTHON = Deno.env.get("HUBBUB_PYTHON") ?? "/usr/bin/python3";

/** Runs `script` with Python; fails clearly when Python's websockets is not installed. */
async function python(script: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const check = await new Deno.Command(PYTHON, { args: ["-c", "import websockets"], stderr: "null", stdout: "null" })
    .output().catch(() => ({ code: 127 }));
  assert.equal(
    check.code,
    0,
    `${PYTHON} cannot import websockets: run \`apt-get install -y python3-websockets\` (.ci/run does)`,
  );
  const { code, stdout, stderr } = await new Deno.Command(PYTHON, { args: ["-c", script, ...args] }).output();
  return { code, stdout: new TextDecoder().decode(stdout), stderr: new TextDecoder().decode(stderr) };
}

const CHAT = `
import asyncio, json, sys, time
import websockets

async def main(url):
    out = {}
    async with websockets.connect(url) as ws:
        await ws.send("Hello World!")
        out["text"] = await ws.recv()
        await ws.send(bytes([0, 1, 2, 254, 255]))
        got = await ws.recv()
        out["binary_type"] = type(got).__name__
        out["binary"] = list(got)
        for i in range(200):
            await ws.send(f"m{i}")
        out["burst"] = [await ws.recv() for _ in range(200)]
        started = time.monotonic()
        await (await ws.ping(b"py"))
        out["pong_ms"] = (time.monotonic() - started) * 1000
        await ws.send("bye")
        out["last"] = await ws.recv()
        await ws.close(4000, "bye")
    out["close_code"] = ws.close_code
    out["close_reason"] = ws.close_reason
    print(json.dumps(out))

asyncio.run(main(sys.argv[1]))
`;

engineTest("Python's websockets: chat room round trip, binary, order, ping and a clean close", async (engine) => {
  const server = startServer(engine);
  const [listener] = await openClients(`${server.wsUrl}/rooms/py`, 1);
  const { code, stdout, stderr } = await python(CHAT, [`${server.wsUrl}/rooms/py`]);
  assert.equal(code, 0, stderr);
  const result = JSON.parse(stdout);
  assert.equal(result.text, "Hello World!");
  assert.equal(result.binary_type, "bytes");
  assert.deepEqual(result.binary, [0, 1, 2, 254, 255]);
  assert.deepEqual(result.burst, Array.from({ length: 200 }, (_, i) => `m${i}`));
  assert.ok(result.pong_ms >= 0);
  assert.equal(result.last, "bye");
  // Both engines answer a client's close with its own code and reason (issue 15: one behaviour from outside).
  assert.equal(result.close_code, 4000);
  assert.equal(result.close_reason, "bye");
  // A Deno client in the same room saw the Python client's messages, in order, binary as binary.
  const seen = await listener.waitFor(203);
  assert.equal(seen[0], "Hello World!");
  assert.deepEqual(new Uint8Array(seen[1] as ArrayBuffer), new Uint8Array([0, 1, 2, 254, 255]));
  assert.equal(seen.at(-1), "bye");
  await closeAll([listener]);
  await eventually("everyone gone", async () => (await health(server)).connections === 0);
  await server.shutdown();
});

const REFUSED = `
import asyncio, sys
import websockets

async def main(url):
    try:
        async with websockets.connect(url):
            print("connected")
    except websockets.exceptions.InvalidStatusCode as error:
        print(error.status_code)

asyncio.run(main(sys.argv[1]))
`;

engineTest("Python's websockets: a refused handshake surfaces as the HTTP status", async (engine) => {
  const server = startServer(engine);
  for (const [path, status] of [["/nope", "404"], ["/rooms/bad%20name", "400"]]) {
    const { code, stdout, stderr } = await python(REFUSED, [`${server.wsUrl}${path}`]);
    assert.equal(code, 0, stderr);
    assert.equal(stdout.trim(), status);
  }
  await server.shutdown();
});

const SHUTDOWN = `
import asyncio, sys
import websockets

async def main(url):
    async with websockets.connect(url) as ws:
        print("open", flush=True)
        try:
            await ws.recv()
        except websockets.exceptions.ConnectionClosed as closed:
            print(closed.rcvd.code, closed.rcvd.reason)

asyncio.run(main(sys.argv[1]))
`;

engineTest("Python's websockets: server shutdown arrives as 1001 'server shutting down'", async (engine) => {
  const server = startServer(engine);
  const check = await python("import websockets", []);
  assert.equal(check.code, 0);
  const child = new Deno.Command(PYTHON, { args: ["-c", SHUTDOWN, server.wsUrl], stdout: "piped", stderr: "piped" })
    .spawn();
  await eventually("the Python client to connect", async () => (await health(server)).connections === 1, 10_000);
  await server.shutdown();
  const { code, stdout, stderr } = await child.output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  assert.deepEqual(new TextDecoder().decode(stdout).trim().split("\n"), ["open", "1001 server shutting down"]);
});
