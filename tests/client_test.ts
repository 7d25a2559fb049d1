/**
 * Tests for `hubbub client` (lib/client.ts): pipe and interactive mode in-process against a live server, exit codes,
 * and the real process through `main.ts` and `deno task client`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { CLIENT_USAGE, EXIT_CODE, runClient } from "../lib/client.ts";
import type { HubbubServer } from "../lib/server.ts";
import { eventually, startServer, TestClient } from "./_harness.ts";
import { runMain } from "./_process.ts";

const encoder = new TextEncoder();

/** A WritableStream that collects what is written as text. */
class Capture {
  text = "";
  readonly #decoder = new TextDecoder();
  readonly stream: WritableStream<Uint8Array> = new WritableStream({
    write: (chunk) => {
      this.text += this.#decoder.decode(chunk, { stream: true });
    },
  });
}

/** A stdin the test feeds line by line and ends when it wants. */
class Input {
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  readonly stream: ReadableStream<Uint8Array> = new ReadableStream({ start: (c) => this.#controller = c });
  write(text: string): void {
    this.#controller.enqueue(encoder.encode(text));
  }
  /** Ends the input, unless the client already cancelled it. */
  end(): void {
    try {
      this.#controller.close();
    } catch {
      // Cancelled by the client: it stopped reading when the socket closed.
    }
  }
}

interface Run {
  code: Promise<number>;
  stdout: Capture;
  stderr: Capture;
}

/** Starts `runClient` in-process with `stdin` (text is fed at once and ended) and captured stdout/stderr. */
function start(args: string[], stdin: string | Input = "", isTerminal = false): Run {
  const stdout = new Capture();
  const stderr = new Capture();
  const input = typeof stdin === "string" ? ReadableStream.from([encoder.encode(stdin)]) : stdin.stream;
  const code = runClient(args, { stdin: input, stdout: stdout.stream, stderr: stderr.stream, isTerminal });
  return { code, stdout, stderr };
}

/** Runs `runClient` to completion; returns the exit code and the captured output. */
async function run(args: string[], stdin: string | Input = "", isTerminal = false) {
  const { code, stdout, stderr } = start(args, stdin, isTerminal);
  return { code: await code, stdout: stdout.text, stderr: stderr.text };
}

/** Runs `body` with a live Hubbub server (deno engine, silent) and always shuts it down. */
async function withServer(body: (server: HubbubServer, ws: string) => Promise<void>): Promise<void> {
  const server = startServer("deno");
  try {
    await server.ready;
    await body(server, server.wsUrl);
  } finally {
    await server.shutdown();
  }
}

Deno.test("runClient() pipe mode: echo prints every line back once, in order, unicode intact", async () => {
  await withServer(async (_server, ws) => {
    const lines = ["hello", "ünïcödé ✓ 😀 日本語", "", "  spaced  ", "/not a command in pipe mode", "last"];
    // \r\n is stripped like \n, and a last line without a newline is still sent.
    const stdin = lines.slice(0, -1).map((line, i) => line + (i === 1 ? "\r\n" : "\n")).join("") + lines.at(-1);
    const result = await run(["--wait", "0.3", `${ws}/echo`], stdin);
    assert.equal(result.code, EXIT_CODE.Ok, result.stderr);
    assert.equal(result.stdout, lines.map((line) => line + "\n").join(""));
    assert.equal(result.stderr, "");
  });
});

Deno.test("runClient() pipe mode: in a room, the other member gets the client's lines and the client prints theirs", async () => {
  await withServer(async (_server, ws) => {
    const member = new TestClient(`${ws}/rooms/lobby`);
    await member.opened();
    const input = new Input();
    const client = start(["-w", "0.1", `${ws}/rooms/lobby`], input);
    try {
      input.write("from the client\n");
      await member.waitFor(1);
      assert.deepEqual(member.received, ["from the client"]);
      member.socket.send("from the member");
      member.socket.send(new Uint8Array([0x00, 0x01, 0xab, 0xff]));
      await eventually("the client to print the member's messages", () => client.stdout.text.includes("0001abff"));
    } finally {
      input.end();
      await client.code;
      await member.close();
    }
    assert.equal(await client.code, EXIT_CODE.Ok, client.stderr.text);
    // The room includes the sender, so the client's own line comes back too; nothing but messages on stdout.
    assert.deepEqual(client.stdout.text.split("\n").filter((line) => line !== "from the client"), [
      "from the member",
      "[binary 4 bytes] 0001abff",
      "",
    ]);
  });
});

Deno.test("runClient() pipe mode: exits 0 when the server shuts down with 1001", async () => {
  await withServer(async (server, ws) => {
    const input = new Input();
    const client = start([`${ws}/echo`], input);
    try {
      input.write("ping\n");
      await eventually("the echo", () => client.stdout.text === "ping\n");
      await server.shutdown();
      assert.equal(await client.code, EXIT_CODE.Ok, client.stderr.text);
      assert.equal(client.stderr.text, "");
    } finally {
      input.end();
      await client.code;
    }
  });
});

Deno.test("runClient() refuses a URL that is not ws:// or wss:// with exit 2, the reason and the usage", async () => {
  for (
    const [url, reason] of [["http://x", "Not a ws:// or wss:// URL: http://x"], ["garbage", "Invalid URL: garbage"]]
  ) {
    const result = await run([url!]);
    assert.equal(result.code, EXIT_CODE.Usage);
    assert.equal(result.stdout, "");
    assert.match(result.stderr, new RegExp(`^hubbub client: ${reason}\n\nUsage: hubbub client`));
  }
});

Deno.test("runClient() exits 2 on a bad flag, a missing URL, a bad --wait or --header, or two Origins", async () => {
  const cases: [string[], string][] = [
    [["--bogus", "ws://x"], "Unknown option '--bogus'"],
    [[], "Missing the URL to connect to"],
    [["-w", "-1", "ws://x"], "Option '-w' argument is ambiguous"],
    [["ws://a", "ws://b"], "Expected one URL, got 2: ws://a ws://b"],
    [["--wait", "soon", "ws://x"], '--wait must be a number of seconds, 0 or more, or "inf": soon'],
    [["--wait=-1", "ws://x"], '--wait must be a number of seconds, 0 or more, or "inf": -1'],
    [["-H", "no colon", "ws://x"], 'Invalid --header, expected "Name: value": no colon'],
    [["-H", "Origin: a", "-o", "b", "ws://x"], "--origin conflicts with an Origin --header: give one of them"],
  ];
  for (const [args, reason] of cases) {
    const result = await run(args);
    assert.equal(result.code, EXIT_CODE.Usage, args.join(" "));
    assert.equal(result.stderr.split("\n")[0], `hubbub client: ${reason}`);
  }
});

Deno.test("runClient() --help prints the usage with the exit codes and exits 0", async () => {
  for (const flag of ["--help", "-h"]) {
    const result = await run([flag]);
    assert.equal(result.code, EXIT_CODE.Ok);
    assert.equal(result.stdout, CLIENT_USAGE);
    assert.match(result.stdout, /^Usage: hubbub client \[options\] <ws:\/\/host:port\/path \| wss:\/\/\.\.\.>/);
    assert.ok(result.stdout.includes("Exit codes:\n  0  closed normally"));
    assert.equal(result.stderr, "");
  }
});

Deno.test("runClient() exits 1 with the HTTP status when the server refuses the handshake", async () => {
  await withServer(async (_server, ws) => {
    const notFound = await run([`${ws}/no/such/route`]);
    assert.equal(notFound.code, EXIT_CODE.ConnectFailed);
    assert.equal(notFound.stdout, "");
    assert.equal(
      notFound.stderr,
      `hubbub client: Server refused the WebSocket handshake: HTTP 404 (${ws}/no/such/route)\n`,
    );
    const badRoom = await run([`${ws}/rooms/${"x".repeat(300)}`]);
    assert.equal(badRoom.code, EXIT_CODE.ConnectFailed);
    assert.match(badRoom.stderr, /HTTP 400/);
  });
});

Deno.test("runClient() exits 1 with a reason when nothing listens", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  const result = await run([`ws://127.0.0.1:${port}/`]);
  assert.equal(result.code, EXIT_CODE.ConnectFailed);
  assert.match(result.stderr, new RegExp(`^hubbub client: Could not connect to ws://127.0.0.1:${port}/: .+\n$`));
});

Deno.test("runClient() sends the headers, Origin and subprotocols it was given", async () => {
  let seen: Headers | undefined;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    seen = new Headers(request.headers);
    const { socket, response } = Deno.upgradeWebSocket(request, { protocol: "chat.v2" });
    socket.onopen = () => socket.close(1000, "done");
    return response;
  });
  try {
    const result = await run([
      ...["-H", "Authorization: Bearer s3cret", "--header", "X-Trace:  42 "],
      ...["-o", "https://example.test", "-s", "chat.v2", "--subprotocol", "chat.v1"],
      `ws://127.0.0.1:${server.addr.port}/`,
    ]);
    assert.equal(result.code, EXIT_CODE.Ok, result.stderr);
    assert.equal(seen?.get("authorization"), "Bearer s3cret");
    assert.equal(seen?.get("x-trace"), "42");
    assert.equal(seen?.get("origin"), "https://example.test");
    assert.equal(seen?.get("sec-websocket-protocol"), "chat.v2, chat.v1");
  } finally {
    await server.shutdown();
  }
});

Deno.test("runClient() exits 3 when the server closes with a code other than 1000 or 1001", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => socket.close(4001, "kicked");
    return response;
  });
  try {
    const result = await run([`ws://127.0.0.1:${server.addr.port}/`], new Input());
    assert.equal(result.code, EXIT_CODE.AbnormalClose);
    assert.equal(result.stderr, "hubbub client: Server closed the connection with code 4001: kicked\n");
  } finally {
    await server.shutdown();
  }
});

Deno.test("runClient() exits 3 when the connection drops without a close frame (1006)", async () => {
  // A server that completes the handshake by hand, then hangs up.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(4096);
    let head = "";
    while (!head.includes("\r\n\r\n")) head += new TextDecoder().decode(buffer.subarray(0, (await conn.read(buffer))!));
    const key = /sec-websocket-key: *(\S+)/i.exec(head)![1];
    const digest = await crypto.subtle.digest("SHA-1", encoder.encode(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`));
    const accept = btoa(String.fromCharCode(...new Uint8Array(digest)));
    await conn.write(encoder.encode(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    ));
    conn.close();
  })();
  try {
    const result = await run([`ws://127.0.0.1:${listener.addr.port}/`], new Input());
    assert.equal(result.code, EXIT_CODE.AbnormalClose);
    assert.match(result.stderr, /^hubbub client: Connection closed abnormally without a close frame: 1006/);
  } finally {
    await serving;
    listener.close();
  }
});

Deno.test("runClient() interactive mode: prompt, ↑/↓ lines, /binary, /ping, //, errors, /close", async () => {
  await withServer(async (_server, ws) => {
    const stdin = [
      "hello",
      "/binary 0a ff",
      "/binary zz",
      "/binary abc",
      "/ping",
      "//slash",
      "/nope",
      "/close 999",
      "/help",
      "/close 4000 see you",
      "typed after close",
    ].join("\n") + "\n";
    const result = await run([`${ws}/echo`], stdin, true);
    assert.equal(result.code, EXIT_CODE.Ok, result.stderr);
    // Drop the terminal redraws: keep what each line finally says.
    const screen = result.stdout.split("\r\n").map((line) => line.split("\r\x1b[K").at(-1)!);
    const lines = (text: string) => screen.filter((line) => line.startsWith(text));
    assert.deepEqual(screen[0], `connected to ${ws}/echo; /help lists commands`);
    assert.deepEqual(lines("↑"), ["↑ hello", "↑ [binary 2 bytes] 0aff", "↑ /slash"]);
    assert.deepEqual(lines("↓"), ["↓ hello", "↓ [binary 2 bytes] 0aff", "↓ /slash"]);
    assert.deepEqual(lines("Invalid hex"), [
      "Invalid hex, only 0-9 and a-f are allowed: zz",
      "Invalid hex, the number of digits must be even: abc",
    ]);
    assert.equal(lines("/ping is not available: Deno's WebSocket API cannot send ping frames").length, 1);
    assert.deepEqual(lines("Unknown command"), ["Unknown command (see /help; //nope sends it as text): /nope"]);
    assert.equal(lines("Close code must be 1000 or 3000-4999").length, 1);
    assert.equal(lines("  /binary <hex>").length, 1);
    assert.deepEqual(lines("clos"), ["closing 4000 see you", "closed 4000 see you"]);
    assert.deepEqual(screen.slice(-2), ["closed 4000 see you", ""]);
    assert.ok(result.stdout.includes("\r\x1b[K> "), "shows the prompt");
    assert.equal(result.stderr, "");
  });
});

Deno.test("runClient() interactive mode: end of input closes with 1000", async () => {
  await withServer(async (_server, ws) => {
    const result = await run([`${ws}/echo`], "", true);
    assert.equal(result.code, EXIT_CODE.Ok);
    assert.ok(result.stdout.endsWith("\r\x1b[Kclosing 1000\r\n\r\x1b[Kclosed 1000\r\n"), JSON.stringify(result.stdout));
  });
});

Deno.test("hubbub client (spawned): echo hi | main.ts client ws://…/echo prints exactly hi", async () => {
  await withServer(async (_server, ws) => {
    const result = await runMain(["client", `${ws}/echo`], { stdin: "hi\n" });
    assert.equal(result.stdout, "hi\n");
    assert.equal(result.stderr, "");
    assert.equal(result.code, 0);
  });
});

Deno.test("hubbub client (spawned): deno task client forwards its arguments; a 404 exits 1 with the status", async () => {
  await withServer(async (_server, ws) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["task", "client", `${ws}/nope`],
      cwd: new URL("..", import.meta.url).pathname,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    });
    const { code, stdout, stderr } = await child.output();
    assert.equal(code, EXIT_CODE.ConnectFailed);
    assert.equal(new TextDecoder().decode(stdout), "");
    assert.match(new TextDecoder().decode(stderr), /Server refused the WebSocket handshake: HTTP 404/);
  });
});
