/**
 * Tests for `hubbub client` (lib/client.ts): pipe and interactive mode in-process against a live server, exit codes,
 * and the real process through `main.ts` and `deno task client`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { CERTIFICATE_COMMAND, CLIENT_USAGE, EXIT_CODE, INSECURE_WARNING, runClient } from "../lib/client/cli.ts";
import type { Engine, ServerOptions } from "../lib/config.ts";
import { connectWebSocket } from "../lib/client/ws_client.ts";
import { computeAcceptKey } from "../lib/ws/http1.ts";
import type { HubbubServer } from "../lib/server.ts";
import { engineTest, eventually, startServer, TestClient } from "./_harness.ts";
import { runMain, type ServerProcess, startMain } from "./_process.ts";
import { TcpProxy } from "./_proxy.ts";
import {
  basicConstraints,
  caTrueCertificate,
  certificateFromCommand,
  selfSignedCertificate,
  writeCertificate,
} from "./_tls.ts";

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

/** Runs `body` with a live Hubbub server (silent) on `engine` and always shuts it down. */
async function withServer(
  engine: Engine,
  body: (server: HubbubServer, ws: string) => Promise<void>,
  options: ServerOptions = {},
): Promise<void> {
  const server = startServer(engine, options);
  try {
    await server.ready;
    await body(server, server.wsUrl);
  } finally {
    await server.shutdown();
  }
}

engineTest("runClient() pipe mode: echo prints every line back once, in order, unicode intact", async (engine) => {
  await withServer(engine, async (_server, ws) => {
    const lines = ["hello", "ünïcödé ✓ 😀 日本語", "", "  spaced  ", "/not a command in pipe mode", "last"];
    // \r\n is stripped like \n, and a last line without a newline is still sent.
    const stdin = lines.slice(0, -1).map((line, i) => line + (i === 1 ? "\r\n" : "\n")).join("") + lines.at(-1);
    const result = await run(["--wait", "0.3", `${ws}/echo`], stdin);
    assert.equal(result.code, EXIT_CODE.Ok, result.stderr);
    assert.equal(result.stdout, lines.map((line) => line + "\n").join(""));
    assert.equal(result.stderr, "");
  });
});

engineTest(
  "runClient() pipe mode: in a room, the other member gets the client's lines and the client prints theirs",
  async (engine) => {
    await withServer(engine, async (_server, ws) => {
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
  },
);

engineTest("runClient() pipe mode: exits 0 when the server shuts down with 1001", async (engine) => {
  await withServer(engine, async (server, ws) => {
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
    [["-k", "ws://x"], "--insecure only applies to wss:// URLs: ws://x"],
    [["--insecure", "--ca", "cert.pem", "wss://x"], "--ca conflicts with --insecure: give one of them"],
    [["--replay", "ten", "ws://x"], "--replay must be a whole number of messages: ten"],
    [["--replay=-1", "ws://x"], "--replay must be a whole number of messages: -1"],
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

engineTest(
  "runClient() exits 1 with the HTTP status and the server's reason when it refuses the handshake",
  async (engine) => {
    await withServer(engine, async (_server, ws) => {
      const notFound = await run([`${ws}/no/such/route`]);
      assert.equal(notFound.code, EXIT_CODE.ConnectFailed);
      assert.equal(notFound.stdout, "");
      assert.equal(
        notFound.stderr,
        `hubbub client: Server refused the WebSocket handshake to ${ws}/no/such/route: ` +
          "HTTP 404: No such path: /no/such/route (try /, /echo or /rooms/<name>)\n",
      );
      const badRoom = await run([`${ws}/rooms/${"x".repeat(300)}`]);
      assert.equal(badRoom.code, EXIT_CODE.ConnectFailed);
      assert.match(badRoom.stderr, /: HTTP 400: Room name must be 1-64 characters/);
    });
  },
);

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

engineTest("runClient() interactive mode: prompt, ↑/↓ lines, /binary, /ping, //, errors, /close", async (engine) => {
  await withServer(engine, async (_server, ws) => {
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
    assert.deepEqual(lines("↑"), ["↑ hello", "↑ [binary 2 bytes] 0aff", "↑ ping", "↑ /slash"]);
    // The pong races the close typed in the same chunk; the dedicated /ping test waits for it.
    const received = lines("↓").filter((line) => !line.startsWith("↓ pong"));
    assert.deepEqual(received, ["↓ hello", "↓ [binary 2 bytes] 0aff", "↓ /slash"]);
    assert.deepEqual(lines("Invalid hex"), [
      "Invalid hex, only 0-9 and a-f are allowed: zz",
      "Invalid hex, the number of digits must be even: abc",
    ]);
    assert.deepEqual(lines("Unknown command"), ["Unknown command (see /help; //nope sends it as text): /nope"]);
    assert.equal(lines("Close code must be 1000 or 3000-4999").length, 1);
    assert.equal(lines("  /binary <hex>").length, 1);
    // Both engines echo the close code and reason; the client prints what the server answered.
    const closed = "closed 4000 see you";
    assert.deepEqual(lines("clos"), ["closing 4000 see you", closed]);
    assert.deepEqual(screen.slice(-2), [closed, ""]);
    assert.ok(result.stdout.includes("\r\x1b[K> "), "shows the prompt");
    assert.equal(result.stderr, "");
  });
});

engineTest(
  "runClient() interactive mode: /ping sends a ping and prints the round-trip time of its pong",
  async (engine) => {
    await withServer(engine, async (_server, ws) => {
      const input = new Input();
      const client = start([`${ws}/echo`], input, true);
      const screen = () => client.stdout.text.split("\r\n").map((line) => line.split("\r\x1b[K").at(-1)!);
      try {
        input.write("/ping\n/ping hello there\n");
        await eventually("two pongs", () => screen().filter((line) => line.startsWith("↓ pong")).length === 2);
        input.write(`/ping ${"x".repeat(126)}\n/help\n`);
        await eventually("the help", () => screen().some((line) => line.startsWith("  /ping [text]")));
      } finally {
        input.end();
      }
      assert.equal(await client.code, EXIT_CODE.Ok, client.stderr.text);
      const lines = screen();
      assert.deepEqual(lines.filter((line) => line.startsWith("↑")), ["↑ ping", "↑ ping hello there"]);
      const pongs = lines.filter((line) => line.startsWith("↓"));
      assert.equal(pongs.length, 2, pongs.join("\n"));
      assert.match(pongs.find((line) => !line.includes("hello"))!, /^↓ pong \d+(\.\d+)? ms$/);
      assert.match(pongs.find((line) => line.includes("hello"))!, /^↓ pong hello there \d+(\.\d+)? ms$/);
      assert.deepEqual(lines.filter((line) => line.startsWith("Ping text")), [
        "Ping text must be at most 125 UTF-8 bytes: 126",
      ]);
      assert.deepEqual(lines.filter((line) => line.startsWith("  /ping")), [
        "  /ping [text]            send a ping (with text as its payload) and print the round-trip time",
      ]);
      assert.equal(client.stderr.text, "");
    });
  },
);

engineTest("runClient() interactive mode: end of input closes with 1000", async (engine) => {
  await withServer(engine, async (_server, ws) => {
    const result = await run([`${ws}/echo`], "", true);
    assert.equal(result.code, EXIT_CODE.Ok);
    assert.ok(result.stdout.endsWith("\r\x1b[Kclosing 1000\r\n\r\x1b[Kclosed 1000\r\n"), JSON.stringify(result.stdout));
  });
});

engineTest("hubbub client (spawned): echo hi | main.ts client ws://…/echo prints exactly hi", async (engine) => {
  await withServer(engine, async (_server, ws) => {
    const result = await runMain(["client", `${ws}/echo`], { stdin: "hi\n" });
    assert.equal(result.stdout, "hi\n");
    assert.equal(result.stderr, "");
    assert.equal(result.code, 0);
  });
});

engineTest(
  "hubbub client (spawned): deno task client forwards its arguments; a 404 exits 1 with the status",
  async (engine) => {
    await withServer(engine, async (_server, ws) => {
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
      assert.match(
        new TextDecoder().decode(stderr),
        /hubbub client: Server refused the WebSocket handshake to ws:\/\/.+\/nope: HTTP 404: No such path: \/nope/,
      );
    });
  },
);

engineTest(
  "runClient() --ca trusts a self-signed wss:// server; without it, exit 1 names the certificate",
  async (engine) => {
    const certificate = await selfSignedCertificate();
    const files = await writeCertificate(certificate);
    try {
      await withServer(engine, async (_server, wss) => {
        assert.match(wss, /^wss:/);
        const trusted = await run(["--ca", files.certFile, "--wait", "0.2", `${wss}/echo`], "over TLS\n");
        assert.equal(trusted.code, EXIT_CODE.Ok, trusted.stderr);
        assert.equal(trusted.stdout, "over TLS\n");
        const untrusted = await run([`${wss}/echo`], "over TLS\n");
        assert.equal(untrusted.code, EXIT_CODE.ConnectFailed);
        assert.match(
          untrusted.stderr,
          /^hubbub client: Could not connect to wss:\/\/.+: .*(certificate|UnknownIssuer)/i,
        );
        assert.match(untrusted.stderr, /\(--ca FILE trusts a self-signed certificate; -k skips the check\)\n$/);
      }, { cert: certificate.cert, key: certificate.key });
    } finally {
      await files.remove();
    }
  },
);

Deno.test("runClient() exits 2 on a --ca that cannot be used, or a subprotocol that is not a token", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hubbub-client-" });
  try {
    await Deno.writeTextFile(`${dir}/empty.pem`, "not a certificate\n");
    const cases: [string[], RegExp][] = [
      [["--ca", `${dir}/empty.pem`, "ws://x"], /^--ca only applies to wss:\/\/ URLs: ws:\/\/x$/],
      [["--ca", `${dir}/missing.pem`, "wss://x"], /^Cannot read the --ca file: .*missing\.pem: /],
      [
        ["--ca", `${dir}/empty.pem`, "wss://x"],
        /^No PEM certificate \(-----BEGIN CERTIFICATE-----\) in the --ca file: /,
      ],
      [["-s", "chat v1", "ws://x"], /^Invalid --subprotocol, expected a token like chat\.v1: chat v1$/],
    ];
    for (const [args, reason] of cases) {
      const result = await run(args);
      assert.equal(result.code, EXIT_CODE.Usage, args.join(" "));
      assert.match(result.stderr.split("\n")[0].replace(/^hubbub client: /, ""), reason);
      assert.ok(result.stderr.includes("Usage: hubbub client"), "prints the usage");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runClient() exits 3 naming the failure when the server breaks the protocol (1002)", async () => {
  // A server that completes the handshake by hand, then sends a masked frame, which servers must never do.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    try {
      const buffer = new Uint8Array(4096);
      let head = "";
      while (!head.includes("\r\n\r\n")) {
        head += new TextDecoder().decode(buffer.subarray(0, (await conn.read(buffer))!));
      }
      const accept = await computeAcceptKey(/sec-websocket-key: *(\S+)/i.exec(head)![1]);
      await conn.write(encoder.encode(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
      ));
      await conn.write(new Uint8Array([0x81, 0x82, 1, 2, 3, 4, 0x68 ^ 1, 0x69 ^ 2]));
      await conn.read(buffer); // the client's close frame; then the server ends the connection (RFC 6455 §7.1.1)
    } finally {
      conn.close();
    }
  })();
  try {
    const result = await run([`ws://127.0.0.1:${listener.addr.port}/`], new Input());
    assert.equal(result.code, EXIT_CODE.AbnormalClose);
    assert.equal(
      result.stderr,
      "hubbub client: Connection failed with code 1002: The server broke the WebSocket protocol: Frame masked " +
        "(closing with 1002)\n",
    );
  } finally {
    await serving;
    listener.close();
  }
});

/** Runs `body` with the certificate written to files and a server (on `engine`) serving it, then cleans up both. */
async function withTlsServer(
  engine: Engine,
  certificate: { cert: string; key: string },
  body: (wss: string, certFile: string) => Promise<void>,
): Promise<void> {
  const files = await writeCertificate(certificate);
  try {
    await withServer(engine, (_server, wss) => body(wss, files.certFile), certificate);
  } finally {
    await files.remove();
  }
}

engineTest(
  "runClient() --ca with a CA:TRUE certificate exits 1 with one line saying why and the openssl command that works",
  async (engine) => {
    const certificate = await caTrueCertificate();
    assert.equal(await basicConstraints(certificate), "CA:TRUE", "the usual one-liner makes a CA certificate");
    await withTlsServer(engine, certificate, async (wss, certFile) => {
      const result = await run(["--ca", certFile, `${wss}/echo`], "over TLS\n");
      assert.equal(result.code, EXIT_CODE.ConnectFailed);
      assert.equal(result.stdout, "");
      assert.equal(result.stderr.split("\n").length, 2, `one line: ${result.stderr}`);
      assert.equal(
        result.stderr,
        `hubbub client: Could not connect to ${wss}/echo: the server's certificate is a CA certificate (CA:TRUE, ` +
          "OpenSSL 3's default), which Deno refuses as a server's own (CaUsedAsEndEntity); make one for a server " +
          `with: ${CERTIFICATE_COMMAND} and trust it with --ca cert.pem (or skip the check with -k)\n`,
      );
    });
  },
);

Deno.test({
  name: "The README's certificate one-liner is the CLI's, and --ca, curl --cacert and Python's ssl all accept it",
  sanitizeOps: true,
  sanitizeResources: true,
}, async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const commands = readme.split("\n").filter((line) => line.startsWith("openssl req -x509"));
  assert.deepEqual(commands, [CERTIFICATE_COMMAND], "the README gives the one-liner the CLI prints");
  assert.match(CERTIFICATE_COMMAND, / -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth /);
  const certificate = await certificateFromCommand(CERTIFICATE_COMMAND);
  assert.equal(await basicConstraints(certificate), "CA:FALSE");
  await withTlsServer("deno", certificate, async (wss, certFile) => {
    const port = new URL(wss).port;
    const ours = await run(["--ca", certFile, "--wait", "0.2", `wss://localhost:${port}/echo`], "over TLS\n");
    assert.equal(ours.code, EXIT_CODE.Ok, ours.stderr);
    assert.equal(ours.stdout, "over TLS\n");

    const curl = await new Deno.Command("curl", {
      args: ["--silent", "--show-error", "--cacert", certFile, `https://localhost:${port}/healthz`],
    }).output();
    assert.equal(curl.code, 0, new TextDecoder().decode(curl.stderr));
    assert.match(new TextDecoder().decode(curl.stdout), /"status":"ok"/);

    const python = await new Deno.Command(Deno.env.get("HUBBUB_PYTHON") ?? "/usr/bin/python3", {
      args: [
        "-c",
        "import socket, ssl, sys\n" +
        "context = ssl.create_default_context(cafile=sys.argv[1])\n" +
        "with context.wrap_socket(socket.create_connection(('localhost', int(sys.argv[2]))), " +
        "server_hostname='localhost') as tls: print(tls.version())",
        certFile,
        port,
      ],
    }).output();
    assert.equal(python.code, 0, new TextDecoder().decode(python.stderr));
    assert.match(new TextDecoder().decode(python.stdout), /^TLSv1\.[23]\n$/);
  });
});

engineTest("runClient() -k connects to a CA:TRUE certificate and warns on stderr every time", async (engine) => {
  await withTlsServer(engine, await caTrueCertificate(), async (wss) => {
    for (const flag of ["-k", "--insecure"]) {
      const result = await run([flag, "--wait", "0.2", `${wss}/echo`], "not verified\n");
      assert.equal(result.code, EXIT_CODE.Ok, result.stderr);
      assert.equal(result.stdout, "not verified\n");
      assert.equal(result.stderr, `hubbub client: ${INSECURE_WARNING}\n`);
    }
  });
});

engineTest("runClient() without -k refuses a certificate that --ca does not vouch for", async (engine) => {
  // Two runs of the one-liner: both good server certificates for localhost, but --ca names the other one.
  const [served, other] = await Promise.all([
    certificateFromCommand(CERTIFICATE_COMMAND),
    certificateFromCommand(CERTIFICATE_COMMAND),
  ]);
  const otherFiles = await writeCertificate(other);
  try {
    await withTlsServer(engine, served, async (wss) => {
      for (const args of [["--ca", otherFiles.certFile], []]) {
        const result = await run([...args, `${wss}/echo`], "over TLS\n");
        assert.equal(result.code, EXIT_CODE.ConnectFailed, args.join(" "));
        assert.equal(result.stdout, "");
        assert.match(
          result.stderr,
          /^hubbub client: Could not connect to wss:.*: invalid peer certificate: .* \(--ca FILE trusts a self-signed certificate; -k skips the check\)\n$/,
        );
      }
    });
  } finally {
    await otherFiles.remove();
  }
});

Deno.test({
  name: "hubbub client (spawned): deno task client -k works with the task's permissions and prints the warning",
  sanitizeOps: true,
  sanitizeResources: true,
}, async () => {
  await withTlsServer("deno", await caTrueCertificate(), async (wss) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["task", "client", "-k", "--wait", "0.2", `${wss}/echo`],
      cwd: new URL("..", import.meta.url).pathname,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(encoder.encode("hi\n"));
    await writer.close();
    const { code, stdout, stderr } = await child.output();
    const errors = new TextDecoder().decode(stderr);
    assert.equal(code, EXIT_CODE.Ok, errors);
    assert.equal(new TextDecoder().decode(stdout), "hi\n");
    assert.match(errors, new RegExp(`^hubbub client: ${INSECURE_WARNING.replace(/[.()]/g, "\\$&")}\n`, "m"));
  });
});

Deno.test({
  name: "connectWebSocket() without certificate checks still times out, and leaks nothing, when TLS never answers",
  sanitizeOps: true,
  sanitizeResources: true,
}, async () => {
  // A listener that accepts and never speaks: the TLS handshake hangs until the handshake timeout cuts it.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  try {
    await assert.rejects(
      connectWebSocket(`wss://127.0.0.1:${listener.addr.port}/`, {
        unsafelyIgnoreCertificateErrors: true,
        timeoutMs: 200,
      }),
      (error: Error) => error.name === "TimeoutError",
    );
    const abort = new AbortController();
    const connecting = connectWebSocket(`wss://127.0.0.1:${listener.addr.port}/`, {
      unsafelyIgnoreCertificateErrors: true,
      signal: abort.signal,
    });
    abort.abort(new Error("stop"));
    await assert.rejects(connecting, /^Error: stop$/);
    await assert.rejects(
      connectWebSocket("wss://x/", { unsafelyIgnoreCertificateErrors: true, caCerts: ["pem"] }),
      /caCerts conflicts with unsafelyIgnoreCertificateErrors/,
    );
  } finally {
    (await accepted).close();
    listener.close();
  }
});

// ---------------------------------------------------------------------------------------------------------------
// History: --replay and --reconnect

/** The lines of a pipe-mode client's stdout, without the empty one after the last newline. */
function lines(capture: Capture): string[] {
  return capture.text.split("\n").slice(0, -1);
}

/** `n0` … `n<count - 1>`. */
function numbered(prefix: string, count: number, from = 0): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${from + i}`);
}

engineTest("runClient() --replay N prints the room's last N messages, then live ones", async (engine) => {
  await withServer(engine, async (_server, ws) => {
    const publisher = new TestClient(`${ws}/rooms/replayed`);
    await publisher.opened();
    const input = new Input();
    let client: Run | undefined;
    try {
      for (const message of numbered("m", 7, 1)) publisher.socket.send(message);
      await publisher.waitFor(7);
      client = start(["--replay", "3", "-w", "0.2", `${ws}/rooms/replayed`], input);
      await eventually("the replay", () => lines(client!.stdout).length === 3);
      publisher.socket.send("live");
      await eventually("the live message", () => lines(client!.stdout).length === 4);
    } finally {
      input.end();
      await client?.code;
      await publisher.close();
    }
    assert.equal(await client.code, EXIT_CODE.Ok, client.stderr.text);
    assert.deepEqual(lines(client.stdout), ["m5", "m6", "m7", "live"]);
    assert.equal(client.stderr.text, "");
  }, { historySize: 10 });
});

engineTest("runClient() --replay on a server without --history exits 1 with the server's reason", async (engine) => {
  await withServer(engine, async (_server, ws) => {
    const result = await run(["--replay", "3", `${ws}/rooms/none`]);
    assert.equal(result.code, EXIT_CODE.ConnectFailed);
    assert.match(result.stderr, /HTTP 400: This server keeps no history: start it with --history N/);
  });
});

/**
 * A publisher that sends `count` numbered messages into `room`, 20 every 10 ms, so that messages keep flowing while
 * a client is cut off and reconnects; resolves once it has its own copy of the last one.
 */
async function publish(ws: string, room: string, count: number): Promise<void> {
  const publisher = new TestClient(`${ws}/rooms/${room}`);
  try {
    await publisher.opened();
    for (let i = 0; i < count; i++) {
      publisher.socket.send(`n${i}`);
      if (i % 20 === 19) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await publisher.waitFor(count);
  } finally {
    await publisher.close();
  }
}

engineTest(
  "runClient() --reconnect in pipe mode: cut off mid-stream, it recovers every message once, in order",
  async (engine) => {
    await withServer(engine, async (server) => {
      const proxy = new TcpProxy({ port: server.addr.port });
      const input = new Input();
      const client = start(["--reconnect", "-w", "0.2", `ws://127.0.0.1:${proxy.port}/rooms/cut`], input);
      const total = 2000;
      try {
        await eventually("the client to join", () => server.hub.members("cut") === 1);
        const publishing = publish(server.wsUrl, "cut", total);
        await eventually("the client to be in the middle", () => lines(client.stdout).length >= 300);
        assert.equal(proxy.cut(), 1, "the client's connection is cut");
        await publishing;
        await eventually("every message", () => lines(client.stdout).length >= total, 20_000);
      } finally {
        input.end();
        await client.code;
        await proxy.close();
      }
      assert.equal(await client.code, EXIT_CODE.Ok, client.stderr.text);
      assert.deepEqual(lines(client.stdout), numbered("n", total), "no gap, no duplicate");
      const reports = client.stderr.text.split("\n");
      assert.match(reports[0], /^hubbub client: connection lost \(1006\); reconnecting in 0\.[1-3] s$/);
      assert.equal(reports[1], `hubbub client: reconnected to ws://127.0.0.1:${proxy.port}/rooms/cut`);
      const recovered = /^hubbub client: recovered (\d+) missed messages?$/.exec(reports[2]);
      assert.ok(recovered, client.stderr.text);
      assert.ok(Number(recovered[1]) > 0, "messages went on while it was away");
      assert.equal(reports.length, 4, client.stderr.text);
      assert.equal(server.hub.stats.recoveries.recovered, 1);
    }, { historySize: 5000 });
  },
);

engineTest(
  "runClient() --reconnect in interactive mode: the reports are status lines, the messages ↓ lines",
  async (engine) => {
    await withServer(engine, async (server) => {
      const proxy = new TcpProxy({ port: server.addr.port });
      const input = new Input();
      const client = start(["--reconnect", `ws://127.0.0.1:${proxy.port}/rooms/typed`], input, true);
      const screen = () => client.stdout.text.split("\r\n").map((line) => line.split("\r\x1b[K").at(-1)!);
      const total = 600;
      try {
        await eventually("the client to join", () => server.hub.members("typed") === 1);
        const publishing = publish(server.wsUrl, "typed", total);
        await eventually("the client to be in the middle", () => screen().length >= 100);
        proxy.cut();
        // Typed while the connection is down: said to be unsent, and the prompt stays.
        await eventually("the drop", () => screen().some((line) => line.startsWith("connection lost")));
        input.write("too early\n");
        await publishing;
        await eventually("every message", () => screen().filter((line) => line.startsWith("↓")).length >= total);
        input.write("after\n");
        await eventually("its own message back", () => screen().includes("↓ after"));
      } finally {
        input.end();
        await client.code;
        await proxy.close();
      }
      assert.equal(await client.code, EXIT_CODE.Ok, client.stderr.text);
      const shown = screen();
      const received = shown.filter((line) => line.startsWith("↓ ")).map((line) => line.slice(2));
      assert.deepEqual(received, [...numbered("n", total), "after"]);
      assert.ok(shown.includes(`reconnected to ws://127.0.0.1:${proxy.port}/rooms/typed`), shown.join("\n"));
      assert.ok(shown.some((line) => /^recovered \d+ missed messages?$/.test(line)), shown.join("\n"));
      // The line typed while reconnecting was either refused or, if the connection was back already, sent.
      const early = shown.filter((line) => line === "not sent: reconnecting" || line === "↑ too early");
      assert.equal(early.length, 1, shown.join("\n"));
      assert.equal(client.stderr.text, "");
    }, { historySize: 1000 });
  },
);

/** Starts a server process on `engine` (on `port` when given) with `args`. */
function startProcess(engine: Engine, args: string[], port?: number): Promise<ServerProcess> {
  return startMain(["--engine", engine, "--log-level", "error", ...args, ...(port ? ["--port", String(port)] : [])]);
}

/** Kills a server process at once (no close frames: its clients see 1006) and waits for it to be gone. */
async function kill(server: ServerProcess): Promise<void> {
  server.child.kill("SIGKILL");
  await server.exited;
}

/** Sends `messages` into `room` on `port` and waits for the publisher's own copies. */
async function say(port: number, room: string, messages: string[]): Promise<void> {
  const publisher = new TestClient(`ws://127.0.0.1:${port}/rooms/${room}`);
  try {
    await publisher.opened();
    for (const message of messages) publisher.socket.send(message);
    await publisher.waitFor(messages.length);
  } finally {
    await publisher.close();
  }
}

engineTest(
  "runClient() --reconnect across server restarts: loss is reported (new epoch, then no history), a 401 ends it",
  async (engine) => {
    let server = await startProcess(engine, ["--history", "100"]);
    const port = server.port;
    const input = new Input();
    const client = start(["--reconnect", "-w", "0.2", `ws://127.0.0.1:${port}/rooms/restart`], input);
    const reports = () => client.stderr.text.split("\n").filter((line) => line !== "");
    try {
      await say(port, "restart", ["a1", "a2"]);
      await eventually("the first messages", () => lines(client.stdout).length === 2);

      // A single node keeps its history in memory: restarted, it has a new epoch, and the client is told.
      await kill(server);
      server = await startProcess(engine, ["--history", "100"], port);
      await eventually("the report of the loss", () => reports().includes("hubbub client: some messages were lost"));
      await say(port, "restart", ["b1"]);
      await eventually("the message after the restart", () => lines(client.stdout).length === 3);

      // Restarted without history: its 400 to ?since= makes the client join without it, and report the loss.
      await kill(server);
      server = await startProcess(engine, [], port);
      await eventually(
        "the second report",
        () => reports().filter((line) => line === "hubbub client: some messages were lost").length === 2,
        10_000,
      );
      await say(port, "restart", ["c1"]);
      await eventually("the message after the second restart", () => lines(client.stdout).length === 4);

      // Restarted with a token the client does not have: a refusal, not a blip, so it stops.
      await kill(server);
      server = await startProcess(engine, ["--token", "s3cret"], port);
      assert.equal(await client.code, EXIT_CODE.ConnectFailed, client.stderr.text);
    } finally {
      input.end();
      await client.code;
      server.child.kill("SIGTERM");
      await server.exited;
    }
    assert.deepEqual(lines(client.stdout), ["a1", "a2", "b1", "c1"]);
    const all = reports();
    assert.ok(all.some((line) => /^hubbub client: reconnect failed: .+; next attempt in \d+\.\d s$/.test(line)));
    assert.match(
      all.at(-1)!,
      /^hubbub client: Server refused the WebSocket handshake to ws:\/\/127\.0\.0\.1:\d+\/rooms\/restart: HTTP 401/,
    );
  },
);
