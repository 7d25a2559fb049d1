import assert from "node:assert/strict";
import { ENGINES, openClients } from "./_harness.ts";
import { runMain, startMain } from "./_process.ts";

Deno.test("hubbub --help prints the usage and exits 0", async () => {
  const { code, stdout } = await runMain(["--help"]);
  assert.equal(code, 0);
  assert.match(stdout, /Usage: hubbub \[flags\]/);
  for (const flag of ["--port", "--hostname", "--mode", "--max-message-bytes", "--token", "--cert"]) {
    assert.ok(stdout.includes(flag), flag);
  }
});

Deno.test("hubbub --version prints deno.json's version, the newest release in CHANGELOG.md", async () => {
  const { code, stdout } = await runMain(["--version"]);
  const { version } = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assert.equal(code, 0);
  assert.ok(stdout.startsWith(`hubbub ${version} `), stdout);
  // A release renames "Unreleased" to its version: the first two sections must be "Unreleased", then this version.
  const changelog = await Deno.readTextFile(new URL("../CHANGELOG.md", import.meta.url));
  const sections = [...changelog.matchAll(/^## (\S+)/gm)].map((match) => match[1]);
  assert.deepEqual(sections.slice(0, 2), ["Unreleased", version], `CHANGELOG.md sections: ${sections.join(", ")}`);
});

const BAD: [args: string[], env: Record<string, string>, reason: RegExp][] = [
  [["--port", "abc"], {}, /--port must be a whole number from 0 to 65535: abc/],
  [["--port", "70000"], {}, /--port must be a whole number from 0 to 65535: 70000/],
  [[], { PORT: "http" }, /--port \(env PORT\) must be a whole number/],
  [["--mode", "shout"], {}, /--mode must be one of broadcast, echo: shout/],
  [["--engine", "fast"], {}, /--engine must be one of deno, raw: fast/],
  [["--bogus"], {}, /Unknown option '--bogus'/],
  [["--max-message-bytes", "-5"], {}, /max-message-bytes/],
  [["--cert", "x.pem"], {}, /--cert and --key go together/],
  [["--cert", "/nonexistent.pem", "--key", "/nonexistent.key"], {}, /Cannot read the TLS certificate or key/],
  [["--log-level", "loud"], {}, /--log-level must be one of debug, info, warn, error: loud/],
  [["stray"], {}, /Unexpected argument 'stray'/],
];

for (const [args, env, reason] of BAD) {
  Deno.test(`hubbub ${args.join(" ") || JSON.stringify(env)} prints what is wrong and the usage, and exits 2`, async () => {
    const { code, stdout, stderr } = await runMain(args, { env });
    assert.equal(code, 2);
    assert.equal(stdout, "");
    assert.match(stderr, reason);
    assert.match(stderr, /Usage: hubbub/);
  });
}

Deno.test("hubbub prints the URLs to connect to on start", async () => {
  const server = await startMain();
  assert.match(server.banner, new RegExp(`chat room +ws://127\\.0\\.0\\.1:${server.port}/`));
  assert.match(server.banner, new RegExp(`echo +ws://127\\.0\\.0\\.1:${server.port}/echo`));
  assert.match(server.banner, /rooms +ws:\/\/127\.0\.0\.1:\d+\/rooms\/<name>/);
  server.child.kill("SIGTERM");
  assert.equal((await server.exited).code, 0);
});

for (const engine of ENGINES) {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.test(`[${engine}] ${signal}: every client receives 1001 'server shutting down', then the process exits 0 within 2 s`, async () => {
      const server = await startMain(["--engine", engine]);
      const clients = [
        ...(await openClients(`ws://127.0.0.1:${server.port}/`, 10)),
        ...(await openClients(`ws://127.0.0.1:${server.port}/rooms/x`, 10)),
        ...(await openClients(`ws://127.0.0.1:${server.port}/echo`, 5)),
      ];
      const started = performance.now();
      server.child.kill(signal);
      const closes = await Promise.all(clients.map((client) => client.closed));
      const { code } = await server.exited;
      const elapsed = performance.now() - started;
      assert.equal(code, 0);
      assert.ok(elapsed < 2000, `exited after ${elapsed.toFixed(0)} ms`);
      for (const close of closes) assert.deepEqual(close, { code: 1001, reason: "server shutting down" });
    });
  }

  Deno.test(`[${engine}] SIGTERM exits 0 within 2 s even when a client has stopped reading`, async () => {
    const server = await startMain(["--engine", engine, "--max-buffered-bytes", "100000000"]);
    const [publisher] = await openClients(`ws://127.0.0.1:${server.port}/rooms/flood`, 1);
    // A raw client that completes the handshake and then never reads.
    const stalled = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await stalled.write(
      new TextEncoder().encode(
        "GET /rooms/flood HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      ),
    );
    const chunk = "x".repeat(60_000);
    for (let i = 0; i < 300; i++) publisher.socket.send(chunk); // ~18 MB toward a reader that never reads
    await publisher.waitFor(300, 20_000);
    const started = performance.now();
    server.child.kill("SIGTERM");
    const { code } = await server.exited;
    const elapsed = performance.now() - started;
    stalled.close();
    await publisher.closed;
    assert.equal(code, 0);
    assert.ok(elapsed < 2000, `exited after ${elapsed.toFixed(0)} ms`);
  });
}

Deno.test("deno task start forwards SIGTERM to the server, which closes clients with 1001 and exits 0", async () => {
  const server = await startMain([], { viaTask: true });
  const clients = await openClients(`ws://127.0.0.1:${server.port}/`, 3);
  server.child.kill("SIGTERM");
  const closes = await Promise.all(clients.map((client) => client.closed));
  assert.equal((await server.exited).code, 0);
  for (const close of closes) assert.equal(close.code, 1001);
});
