/**
 * `hubbub client`: a small wscat for talking to Hubbub (or any WebSocket server) from a terminal or a pipe.
 *
 * - **Interactive mode** (stdin is a terminal): a `> ` prompt; received messages print as `↓ text` (binary as
 *   `↓ [binary N bytes] hex`), sent ones as `↑ text`, plus connection events. Slash commands: `/close`, `/binary`,
 *   `/ping` (prints the round-trip time when the pong arrives), `/quit`, `/help`; `//text` sends `/text`.
 * - **Pipe mode** (stdin is not a terminal): each input line is sent as one text message once the socket is open;
 *   each received message is printed on stdout as one line (binary as `[binary N bytes] hex`), and nothing else is.
 *   When stdin ends the client waits `--wait` seconds for replies, then closes with 1000.
 * - **History** (a Hubbub server started with `--history N`): `--replay N` prints the room's last N messages first.
 *   `--reconnect` reconnects after an unexpected close (1001, 1006, 1011–1014) with a backoff from 250 ms doubling to
 *   10 s, with jitter, and recovers what it missed through the `hubbub.v1` envelope (`lib/client/reconnect.ts`),
 *   saying "recovered N missed messages" or "some messages were lost" (on stderr in pipe mode, so stdout stays the
 *   messages alone).
 *
 * Exit codes ({@linkcode EXIT_CODE}):
 *
 * | code | meaning                                                                                        |
 * | ---- | ---------------------------------------------------------------------------------------------- |
 * | 0    | closed normally: 1000 or 1001 (server shutdown) from either side, or a clean close we started  |
 * | 1    | could not connect: DNS, TCP or TLS failure, or the server refused the handshake (HTTP status)  |
 * | 2    | usage error: bad flag, missing URL, URL that is not ws:// or wss://                            |
 * | 3    | closed abnormally: no close frame (1006), a protocol failure (1002…), any other server code    |
 *
 * The transport is Hubbub's own client (`lib/client/ws_client.ts`), not Deno's `WebSocket`: that one cannot send a
 * ping frame, reports a refused handshake only as `Invalid status code: 404` (no body), and cannot trust an extra CA,
 * so `/ping`, the server's one-line refusal reason and `--ca` would be impossible.
 *
 * Certificates: `--ca FILE` trusts more certificates on top of Deno's roots. Deno (rustls) checks a server's
 * certificate more strictly than OpenSSL does and refuses one marked `CA:TRUE`, which is what OpenSSL 3's usual
 * self-signed one-liner makes; the client then says so in one line and prints {@linkcode CERTIFICATE_COMMAND}.
 * `-k`/`--insecure` skips the check altogether, with {@linkcode INSECURE_WARNING} on stderr every time.
 *
 * @example Pipe mode
 * ```sh
 * echo hi | deno task client ws://localhost:8765/echo   # prints: hi
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { CLOSE_CODE, MAX_CLOSE_REASON_BYTES } from "../ws/close_code.ts";
import { MAX_CONTROL_PAYLOAD_BYTES } from "../ws/frame.ts";
import type { Message } from "../hub/peer.ts";
import { HUBBUB_PROTOCOL } from "../ws/subprotocol.ts";
import { describeRecovery, type ReconnectClosed, type ReconnectEvent, ReconnectingClient } from "./reconnect.ts";
import { connectWebSocket, type WebSocketClient, WebSocketHandshakeError } from "./ws_client.ts";

/** The process exit codes of `hubbub client`. */
export const EXIT_CODE = {
  /** Closed normally: 1000 or 1001 from either side, or a clean close the client started (e.g. `/close 4000`). */
  Ok: 0,
  /** Could not connect: DNS, TCP or TLS failure, or the server refused the handshake with an HTTP status. */
  ConnectFailed: 1,
  /** Bad usage: unknown flag, missing URL, a URL that is not ws:// or wss://, or a bad flag value. */
  Usage: 2,
  /**
   * Closed abnormally: dropped without a close frame (1006), failed because the server broke the protocol (1002,
   * 1007, 1009), or closed by the server with another code.
   */
  AbnormalClose: 3,
} as const;

/** One of the codes in {@linkcode EXIT_CODE}. */
export type ExitCode = typeof EXIT_CODE[keyof typeof EXIT_CODE];

/**
 * The openssl one-liner that makes a self-signed certificate every client accepts, Deno included: the two `-addext`
 * flags after the names mark it as a server's own certificate (`CA:FALSE`, `serverAuth`), where OpenSSL 3 would
 * otherwise mark it `CA:TRUE`. The README gives the same line.
 */
export const CERTIFICATE_COMMAND = "openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=localhost " +
  "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE " +
  "-addext extendedKeyUsage=serverAuth -keyout key.pem -out cert.pem";

/** What `-k`/`--insecure` prints on stderr, every time, before it connects. */
export const INSECURE_WARNING = "WARNING: --insecure: the server's certificate is not checked, so anyone on the " +
  "network path can read and change this connection";

/** The `hubbub client --help` text. */
export const CLIENT_USAGE = `Usage: hubbub client [options] <ws://host:port/path | wss://...>

Connects to a WebSocket server. On a terminal you get a prompt (type /help there for commands).
With stdin piped, each line is sent as one text message and each received message is printed as
one line (binary as "[binary N bytes] hex"); when stdin ends the client waits, then closes with 1000.

Options:
  -H, --header "Name: value"  add a handshake header (repeatable)
  -s, --subprotocol NAME      offer a subprotocol (repeatable, in order of preference)
  -o, --origin ORIGIN         send this Origin header
  -w, --wait SECONDS          after stdin ends, wait this long for replies before closing;
                              "inf" waits until the server closes (default 1)
      --replay N              first print the room's last N messages (a server with --history)
      --reconnect             after an unexpected close, reconnect (250 ms doubling to 10 s) and
                              recover the messages missed meanwhile (needs --history to recover)
      --ca FILE               also trust the PEM certificate(s) in FILE for wss:// (e.g. self-signed)
  -k, --insecure              wss:// without checking the server's certificate (trying things out
                              only: anyone on the path can read and change the connection)
  -h, --help                  show this help

Interactive commands: /ping [text] (prints the round-trip time), /close [code] [reason],
/binary <hex>, /quit, /help, //text sends "/text".

Exit codes:
  0  closed normally: 1000 or 1001 (server shutdown), or a clean close the client started
  1  could not connect: DNS, TCP or TLS error, or handshake refused (e.g. HTTP 404 and the reason)
  2  usage error: bad flag, missing URL, or a URL that is not ws:// or wss://
  3  closed abnormally: dropped without a close frame (1006), a protocol error from the server
     (1002), or any other close code from the server

Examples:
  echo hi | hubbub client ws://localhost:8765/echo
  hubbub client -H "Authorization: Bearer secret" ws://localhost:8765/rooms/lobby
  hubbub client --wait inf ws://localhost:8765/rooms/lobby < /dev/null > lobby.log
  hubbub client --replay 20 --reconnect ws://localhost:8765/rooms/lobby
  hubbub client --ca cert.pem wss://localhost:8765/echo
  hubbub client -k wss://localhost:8765/echo

A self-signed certificate every client accepts, Deno included (for --cert/--key and --ca):
  ${CERTIFICATE_COMMAND}
`;

/** The streams and terminal flag {@linkcode runClient} uses; tests inject their own. */
export interface ClientIO {
  /** Where input lines (pipe mode) or keystrokes (interactive mode) come from. @default {Deno.stdin.readable} */
  stdin?: ReadableStream<Uint8Array>;
  /** Received messages, and in interactive mode the whole UI. @default {Deno.stdout.writable} */
  stdout?: WritableStream<Uint8Array>;
  /** Usage text and one-line failure reasons. @default {Deno.stderr.writable} */
  stderr?: WritableStream<Uint8Array>;
  /**
   * Whether to run interactive mode. When it is the real stdin, the terminal is put in raw mode for the session.
   * @default {Deno.stdin.isTerminal()} when `stdin` is not given, else `false`
   */
  isTerminal?: boolean;
}

/**
 * Runs `hubbub client` with `args` (the arguments after `client`) and resolves to the exit code.
 *
 * @example Send one line to the echo route and read it back
 * ```ts ignore
 * import { runClient } from "./cli.ts";
 * const code = await runClient(["ws://localhost:8765/echo"], {
 *   stdin: ReadableStream.from([new TextEncoder().encode("hi\n")]),
 * });
 * ```
 */
export async function runClient(args: string[], options: ClientIO = {}): Promise<number> {
  const stdout = new Sink(options.stdout ?? Deno.stdout.writable);
  const stderr = new Sink(options.stderr ?? Deno.stderr.writable);
  try {
    const parsed = parseClientArgs(args);
    if (parsed === "help") {
      stdout.write(CLIENT_USAGE);
      return EXIT_CODE.Ok;
    }
    if (typeof parsed === "string") {
      stderr.write(`hubbub client: ${parsed}\n\n${CLIENT_USAGE}`);
      return EXIT_CODE.Usage;
    }
    let caCerts: string[] | undefined;
    if (parsed.caFile !== undefined) {
      const ca = await readCaFile(parsed.caFile);
      if (!Array.isArray(ca)) {
        stderr.write(`hubbub client: ${ca}\n\n${CLIENT_USAGE}`);
        return EXIT_CODE.Usage;
      }
      caCerts = ca;
    }
    if (parsed.insecure) stderr.write(`hubbub client: ${INSECURE_WARNING}\n`);
    const realStdin = options.stdin === undefined;
    const interactive = options.isTerminal ?? (realStdin && Deno.stdin.isTerminal());
    const connection = await connect(parsed, caCerts);
    if ("failure" in connection) {
      stderr.write(`hubbub client: ${connection.failure}\n`);
      return EXIT_CODE.ConnectFailed;
    }
    const stdin = options.stdin ?? Deno.stdin.readable;
    const { closed, closedByUs } = interactive
      ? await runInteractive(connection, stdin, stdout, realStdin)
      : await runPipe(connection, stdin, stdout, stderr, parsed.waitMs);
    if (closed.refused !== undefined) {
      stderr.write(`hubbub client: ${describeConnectError(parsed.url, closed.refused)}\n`);
      return EXIT_CODE.ConnectFailed;
    }
    const problem = describeClose(closed, closedByUs);
    if (problem !== undefined) {
      stderr.write(`hubbub client: ${problem}\n`);
      return EXIT_CODE.AbnormalClose;
    }
    return EXIT_CODE.Ok;
  } finally {
    await stdout.release();
    await stderr.release();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Flags

interface ClientArgs {
  url: string;
  headers: [string, string][];
  protocols: string[];
  /** Milliseconds to wait for replies after stdin ends; `Infinity` waits for the server to close. */
  waitMs: number;
  /** `--ca`: a PEM file of certificates to trust for wss://. */
  caFile?: string;
  /** `-k`/`--insecure`: skip checking the server's certificate. */
  insecure: boolean;
  /** `--reconnect`: reconnect after an unexpected close and recover what was missed. */
  reconnect: boolean;
}

/** Default for `--wait`: long enough for a local echo or room fan-out to come back, short enough not to annoy. */
const DEFAULT_WAIT_SECONDS = 1;
/** setTimeout cannot wait longer than 2^31-1 ms (about 24.8 days); anything longer is treated as "forever". */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** An HTTP header name (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Parses the flags; returns the settings, `"help"`, or a one-line reason for a usage error. */
function parseClientArgs(args: string[]): ClientArgs | "help" | string {
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        header: { type: "string", short: "H", multiple: true },
        subprotocol: { type: "string", short: "s", multiple: true },
        origin: { type: "string", short: "o" },
        wait: { type: "string", short: "w" },
        ca: { type: "string" },
        insecure: { type: "boolean", short: "k" },
        replay: { type: "string" },
        reconnect: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    // node:util adds hints after the first sentence (about "--", or "--wait=-1"); the first sentence is the reason.
    return (error as Error).message.split("\n")[0]!.split(". To specify")[0]!.replace(/\.$/, "");
  }
  if (values.help) return "help";
  if (positionals.length === 0) return "Missing the URL to connect to";
  if (positionals.length > 1) return `Expected one URL, got ${positionals.length}: ${positionals.join(" ")}`;
  const [raw] = positionals as [string];
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return `Invalid URL: ${raw}`;
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") return `Not a ws:// or wss:// URL: ${raw}`;
  if (values.ca !== undefined && url.protocol !== "wss:") return `--ca only applies to wss:// URLs: ${raw}`;
  if (values.insecure && url.protocol !== "wss:") return `--insecure only applies to wss:// URLs: ${raw}`;
  // Trusting a certificate and trusting any certificate contradict each other: say so rather than pick one.
  if (values.insecure && values.ca !== undefined) return "--ca conflicts with --insecure: give one of them";
  if (values.replay !== undefined) {
    if (!/^\d{1,7}$/.test(values.replay)) return `--replay must be a whole number of messages: ${values.replay}`;
    // The server does the rest (`?replay=N`), and says so when it keeps no history.
    url.searchParams.set("replay", String(Number(values.replay)));
  }

  const headers: [string, string][] = [];
  for (const header of values.header ?? []) {
    const colon = header.indexOf(":");
    const name = header.slice(0, colon).trim();
    if (colon === -1 || !HEADER_NAME.test(name)) return `Invalid --header, expected "Name: value": ${header}`;
    headers.push([name, header.slice(colon + 1).trim()]);
  }
  for (const protocol of values.subprotocol ?? []) {
    if (!HEADER_NAME.test(protocol)) return `Invalid --subprotocol, expected a token like chat.v1: ${protocol}`;
  }
  if (values.origin !== undefined) {
    if (headers.some(([name]) => name.toLowerCase() === "origin")) {
      return `--origin conflicts with an Origin --header: give one of them`;
    }
    headers.push(["Origin", values.origin]);
  }

  let waitMs = DEFAULT_WAIT_SECONDS * 1000;
  if (values.wait !== undefined) {
    const text = values.wait.trim().toLowerCase();
    const seconds = text === "inf" || text === "infinity" ? Infinity : text === "" ? NaN : Number(text);
    if (!(seconds >= 0)) return `--wait must be a number of seconds, 0 or more, or "inf": ${values.wait}`;
    waitMs = seconds * 1000 > MAX_TIMER_MS ? Infinity : seconds * 1000;
  }
  return {
    url: url.href,
    headers,
    protocols: values.subprotocol ?? [],
    waitMs,
    caFile: values.ca,
    insecure: values.insecure ?? false,
    reconnect: values.reconnect ?? false,
  };
}

/** Reads the `--ca` file: its PEM certificates, or a one-line reason it cannot be used. */
async function readCaFile(path: string): Promise<string[] | string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    return `Cannot read the --ca file: ${path}: ${(error as Error).message}`;
  }
  const certificates = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  if (certificates === null) return `No PEM certificate (-----BEGIN CERTIFICATE-----) in the --ca file: ${path}`;
  return certificates;
}

// ---------------------------------------------------------------------------------------------------------------
// The connection

/** What the modes use of a connection: one socket, or a {@linkcode ReconnectingClient} that outlives several. */
interface Link {
  readonly protocol: string;
  readonly readyState: "open" | "reconnecting" | "closing" | "closed";
  readonly bufferedAmount: number;
  onmessage: ((data: Message) => void) | null;
  send(data: string | Uint8Array): void;
  ping(payload?: string): Promise<number>;
  close(code?: number, reason?: string): void;
}

/** An open link, the URL it went to, and a promise of how it ended. */
interface Connection {
  socket: Link;
  url: string;
  closed: Promise<ReconnectClosed>;
  /** Set when the link reconnects: where its reports go. */
  reconnecting?: ReconnectingClient;
}

/** Opens the socket; resolves once it is open, or with a one-line reason why it could not be. */
async function connect(args: ClientArgs, caCerts: string[] | undefined): Promise<Connection | { failure: string }> {
  // Reconnecting needs offsets, which the envelope carries; the user's own offers follow it.
  const protocols = args.reconnect
    ? [HUBBUB_PROTOCOL, ...args.protocols.filter((protocol) => protocol !== HUBBUB_PROTOCOL)]
    : args.protocols;
  const open = (url: string, signal?: AbortSignal) =>
    connectWebSocket(url, {
      protocols,
      headers: args.headers,
      caCerts,
      unsafelyIgnoreCertificateErrors: args.insecure,
      signal,
    });
  let socket: WebSocketClient;
  try {
    socket = await open(args.url);
  } catch (error) {
    return { failure: describeConnectError(args.url, error as Error) };
  }
  if (!args.reconnect) return { socket, url: args.url, closed: socket.closed };
  const reconnecting = new ReconnectingClient(socket, { open });
  return { socket: reconnecting, url: args.url, closed: reconnecting.closed, reconnecting };
}

/** One line for a reconnect event; never the query string, which may hold a token. */
function describeReconnect(event: ReconnectEvent): string {
  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  switch (event.type) {
    case "dropped": {
      const { code, reason } = event.closed;
      return `connection lost (${code}${reason ? ` ${printable(reason)}` : ""}); reconnecting in ${
        seconds(event.delayMs)
      }`;
    }
    case "retrying":
      return `reconnect failed: ${printable(event.error.message)}; next attempt in ${seconds(event.delayMs)}`;
    case "reconnected": {
      const url = new URL(event.url);
      return `reconnected to ${url.protocol}//${url.host}${url.pathname}`;
    }
    case "recovery":
      return describeRecovery(event.recovery);
  }
}

/** Turns a failed connection into a one-line reason: the HTTP status and the server's reason when it refused. */
function describeConnectError(url: string, error: Error): string {
  if (error instanceof WebSocketHandshakeError && error.status >= 200) {
    return `Server refused the WebSocket handshake to ${url}: ${printable(error.message)}`;
  }
  if (error instanceof WebSocketHandshakeError && error.status === 101) {
    return `Server sent an invalid WebSocket handshake (${url}): ${printable(error.detail)}`;
  }
  if (error instanceof TypeError || error instanceof RangeError) {
    // A bad header value, mostly; the URL and flags were checked already.
    return `Cannot open a WebSocket to ${url}: ${error.message}`;
  }
  const message = error.message || String(error);
  if (message.includes("CaUsedAsEndEntity")) {
    return `Could not connect to ${url}: the server's certificate is a CA certificate (CA:TRUE, OpenSSL 3's ` +
      "default), which Deno refuses as a server's own (CaUsedAsEndEntity); make one for a server with: " +
      `${CERTIFICATE_COMMAND} and trust it with --ca cert.pem (or skip the check with -k)`;
  }
  const hint = /certificate|UnknownIssuer/i.test(message)
    ? " (--ca FILE trusts a self-signed certificate; -k skips the check)"
    : "";
  return `Could not connect to ${url}: ${message}${hint}`;
}

/** A one-line reason when the close warrants a non-zero exit, else `undefined`. */
function describeClose(closed: ReconnectClosed, closedByUs: boolean): string | undefined {
  const { code, reason, wasClean, error } = closed;
  if (code === CLOSE_CODE.Normal || code === CLOSE_CODE.GoingAway) return undefined;
  if (closedByUs && wasClean) return undefined;
  if (code === CLOSE_CODE.Abnormal) {
    return `Connection closed abnormally without a close frame: ${code}${error ? ` (${error.message})` : ""}`;
  }
  if (!wasClean && error !== undefined) return `Connection failed with code ${code}: ${error.message}`;
  return `Server closed the connection with code ${code}${reason ? `: ${reason}` : ""}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Pipe mode

/** Pause sending while this many bytes are queued on the socket, so `cat big-file | hubbub client` stays bounded. */
const SEND_HIGH_WATER_BYTES = 1024 * 1024;

/** Sends stdin line by line, prints every message as one line; returns how the socket closed. */
async function runPipe(
  connection: Connection,
  stdin: ReadableStream<Uint8Array>,
  stdout: Sink,
  stderr: Sink,
  waitMs: number,
): Promise<{ closed: ReconnectClosed; closedByUs: boolean }> {
  const { socket, closed } = connection;
  socket.onmessage = (data) => stdout.write(`${formatMessage(data)}\n`);
  // Reports go to stderr: stdout stays the messages alone.
  if (connection.reconnecting) {
    connection.reconnecting.onevent = (event) => stderr.write(`hubbub client: ${describeReconnect(event)}\n`);
  }
  let done = false;
  closed.then(() => done = true);
  const reader = stdin.getReader();
  const sending = (async () => {
    for await (const line of readLines(reader)) {
      // While reconnecting, input waits (unread, so the pipe pushes back) and goes out on the next connection.
      while (!done && (socket.readyState === "reconnecting" || socket.bufferedAmount > SEND_HIGH_WATER_BYTES)) {
        await delay(5);
      }
      if (done) return;
      socket.send(line);
    }
  })();
  const first = await Promise.race([sending.then(() => "eof" as const), closed.then(() => "closed" as const)]);
  let closedByUs = false;
  if (first === "eof") {
    if (!done) await waitOrClosed(waitMs, closed);
    if (socket.readyState === "open" || socket.readyState === "reconnecting") {
      closedByUs = true;
      socket.close(CLOSE_CODE.Normal);
    }
  } else {
    await reader.cancel().catch(() => {});
  }
  const result = await closed;
  await sending.catch(() => {});
  reader.releaseLock();
  return { closed: result, closedByUs };
}

/** Waits `ms` (forever for `Infinity`) or until the socket closes, whichever is first; leaves no timer behind. */
async function waitOrClosed(ms: number, closed: Promise<ReconnectClosed>): Promise<void> {
  if (ms === Infinity) {
    await closed;
    return;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([closed, new Promise<void>((resolve) => timer = setTimeout(resolve, ms))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Yields each line of `reader` without its `\n` or `\r\n`; a last line without a newline is yielded too. */
async function* readLines(reader: ReadableStreamDefaultReader<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = "";
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    pending += decoder.decode(value, { stream: true });
    let start = 0;
    for (let end = pending.indexOf("\n"); end !== -1; end = pending.indexOf("\n", start)) {
      yield stripCr(pending.slice(start, end));
      start = end + 1;
    }
    pending = pending.slice(start);
  }
  pending += decoder.decode();
  if (pending !== "") yield stripCr(pending);
}

function stripCr(line: string): string {
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}

// ---------------------------------------------------------------------------------------------------------------
// Interactive mode

const PROMPT = "> ";
/** Erase the current terminal line and go to its start. */
const CLEAR_LINE = "\r\x1b[K";

const INTERACTIVE_HELP = [
  "Commands:",
  "  /close [code] [reason]  close with code 1000 (default) or 3000-4999, and a reason",
  "  /binary <hex>           send bytes as one binary message, e.g. /binary 48 69 0a",
  "  /ping [text]            send a ping (with text as its payload) and print the round-trip time",
  "  /quit                   close with 1000 and exit (also Ctrl-C, or Ctrl-D on an empty line)",
  "  /help                   show this help",
  '  //text                  send "/text" as a text message',
  "Anything else is sent as one text message.",
];

/**
 * The prompt line: keeps what the user is typing at the bottom while messages print above it. Made for raw mode:
 * we echo keystrokes ourselves, and end lines with \r\n, which is right whether or not the tty translates \n.
 */
class Screen {
  buffer = "";
  #prompting = false;
  #out: Sink;

  constructor(out: Sink) {
    this.#out = out;
  }

  /** Prints `line` above the prompt, then redraws the prompt and the half-typed input. */
  print(line: string): void {
    this.#out.write(`${CLEAR_LINE}${line.replace(/\n/g, "\r\n  ")}\r\n${this.#prompting ? PROMPT + this.buffer : ""}`);
  }

  /** Shows the prompt (or hides it for good with `false`). */
  prompt(on: boolean): void {
    this.#prompting = on;
    this.#out.write(on ? CLEAR_LINE + PROMPT + this.buffer : CLEAR_LINE);
  }

  /** Echoes typed text at the end of the prompt line. */
  echo(text: string): void {
    this.#out.write(text);
  }
}

/** Runs the prompt until the socket closes; returns how it closed. */
async function runInteractive(
  connection: Connection,
  stdin: ReadableStream<Uint8Array>,
  stdout: Sink,
  realStdin: boolean,
): Promise<{ closed: ReconnectClosed; closedByUs: boolean }> {
  const { socket, closed, url } = connection;
  const screen = new Screen(stdout);
  let closedByUs = false;
  let raw = false;

  socket.onmessage = (data) => screen.print(`↓ ${formatMessage(data, true)}`);
  if (connection.reconnecting) connection.reconnecting.onevent = (event) => screen.print(describeReconnect(event));
  const protocol = socket.protocol ? ` (subprotocol ${socket.protocol})` : "";
  screen.print(`connected to ${url}${protocol}; /help lists commands`);
  /** Why nothing can be sent now, or `undefined` when it can. */
  const unavailable = () =>
    socket.readyState === "open"
      ? undefined
      : socket.readyState === "reconnecting"
      ? "not sent: reconnecting"
      : "not sent: the connection is closing";

  const close = (code: number, reason: string) => {
    if (socket.readyState !== "open" && socket.readyState !== "reconnecting") return;
    closedByUs = true;
    screen.prompt(false);
    screen.print(`closing ${code}${reason ? ` ${reason}` : ""}`);
    socket.close(code, reason);
  };
  const sendText = (text: string) => {
    const why = unavailable();
    if (why !== undefined) return screen.print(why);
    socket.send(text);
    screen.print(`↑ ${printable(text)}`);
  };
  const ping = (text: string) => {
    const bytes = new TextEncoder().encode(text).length;
    if (bytes > MAX_CONTROL_PAYLOAD_BYTES) {
      return screen.print(`Ping text must be at most ${MAX_CONTROL_PAYLOAD_BYTES} UTF-8 bytes: ${bytes}`);
    }
    const why = unavailable();
    if (why !== undefined) return screen.print(why);
    const shown = text === "" ? "" : ` ${printable(text)}`;
    socket.ping(text === "" ? undefined : text).then(
      (ms) => screen.print(`↓ pong${shown} ${ms < 10 ? ms.toFixed(2) : ms.toFixed(0)} ms`),
      // Only a close can stop the pong, and the close is reported on its own.
      () => {},
    );
    screen.print(`↑ ping${shown}`);
  };

  const runLine = (line: string) => {
    if (line === "") return;
    if (line.startsWith("//")) return sendText(line.slice(1));
    if (!line.startsWith("/")) return sendText(line);
    const [command = "", ...rest] = line.slice(1).split(" ");
    const argument = rest.join(" ").trim();
    switch (command) {
      case "help":
        return INTERACTIVE_HELP.forEach((help) => screen.print(help));
      case "quit":
      case "exit":
        return close(CLOSE_CODE.Normal, "");
      case "ping":
        return ping(argument);
      case "close": {
        const [codeText = "", ...words] = argument.split(/\s+/);
        const code = codeText === "" ? CLOSE_CODE.Normal : Number(codeText);
        const reason = words.join(" ");
        if (!Number.isInteger(code) || !(code === CLOSE_CODE.Normal || (code >= 3000 && code <= 4999))) {
          return screen.print(`Close code must be 1000 or 3000-4999 (browsers and Deno allow no other): ${codeText}`);
        }
        const bytes = new TextEncoder().encode(reason).length;
        if (bytes > MAX_CLOSE_REASON_BYTES) {
          return screen.print(`Close reason must be at most ${MAX_CLOSE_REASON_BYTES} UTF-8 bytes: ${bytes}`);
        }
        return close(code, reason);
      }
      case "binary": {
        const bytes = parseHex(argument);
        if (typeof bytes === "string") return screen.print(bytes);
        const why = unavailable();
        if (why !== undefined) return screen.print(why);
        socket.send(bytes);
        return screen.print(`↑ ${formatBinary(bytes)}`);
      }
      default:
        return screen.print(`Unknown command (see /help; //${command} sends it as text): /${command}`);
    }
  };

  const reader = stdin.getReader();
  const typing = (async () => {
    const decoder = new TextDecoder();
    const keys = new KeyParser();
    if (realStdin && Deno.stdin.isTerminal()) {
      Deno.stdin.setRaw(true);
      raw = true;
    }
    screen.prompt(true);
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      for (const key of keys.feed(decoder.decode(value, { stream: true }))) {
        // Once closing, the prompt is gone and keystrokes are dropped; while reconnecting, typing goes on.
        if (socket.readyState === "closing" || socket.readyState === "closed") break;
        if (key === "enter") {
          const line = screen.buffer;
          screen.buffer = "";
          screen.prompt(true);
          runLine(line);
        } else if (key === "backspace") {
          screen.buffer = Array.from(screen.buffer).slice(0, -1).join("");
          screen.prompt(true);
        } else if (key === "kill-line") {
          screen.buffer = "";
          screen.prompt(true);
        } else if (key === "interrupt" || (key === "eof" && screen.buffer === "")) {
          close(CLOSE_CODE.Normal, "");
        } else if (key !== "eof") {
          screen.buffer += key.text;
          screen.echo(key.text);
        }
      }
    }
    // End of input (Ctrl-D in cooked mode, or the end of an injected stream) ends the session like /quit.
    close(CLOSE_CODE.Normal, "");
  })();

  const result = await closed;
  if (!closedByUs) screen.prompt(false);
  screen.print(`closed ${result.code}${result.reason ? ` ${result.reason}` : ""}`);
  // Leave raw mode before cancelling: cancelling the real stdin's stream closes its resource.
  if (raw) Deno.stdin.setRaw(false);
  await reader.cancel().catch(() => {});
  await typing.catch(() => {});
  reader.releaseLock();
  return { closed: result, closedByUs };
}

type Key = "enter" | "backspace" | "kill-line" | "interrupt" | "eof" | { text: string };

/**
 * Turns raw-mode terminal input into keys: printable text, Enter (`\r`, `\n`, or `\r\n` as one), Backspace, Ctrl-U,
 * Ctrl-C, Ctrl-D; escape sequences (arrows, function keys) are swallowed. State carries across chunks.
 */
class KeyParser {
  #escape: "none" | "esc" | "csi" | "ss3" = "none";
  #afterCr = false;

  *feed(text: string): Generator<Key> {
    let run = "";
    for (const char of text) {
      const afterCr = this.#afterCr;
      this.#afterCr = false;
      if (this.#escape === "esc") {
        this.#escape = char === "[" ? "csi" : char === "O" ? "ss3" : "none";
        continue;
      }
      if (this.#escape === "csi") {
        if (char >= "@" && char <= "~") this.#escape = "none";
        continue;
      }
      if (this.#escape === "ss3") {
        this.#escape = "none";
        continue;
      }
      const code = char.codePointAt(0)!;
      if (code >= 0x20 && code !== 0x7f) {
        run += char;
        continue;
      }
      if (run !== "") yield { text: run };
      run = "";
      if (char === "\r") {
        this.#afterCr = true;
        yield "enter";
      } else if (char === "\n") {
        if (!afterCr) yield "enter";
      } else if (char === "\x7f" || char === "\b") yield "backspace";
      else if (char === "\x15") yield "kill-line";
      else if (char === "\x03") yield "interrupt";
      else if (char === "\x04") yield "eof";
      else if (char === "\x1b") this.#escape = "esc";
      else if (char === "\t") yield { text: " " };
    }
    if (run !== "") yield { text: run };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Formatting

/** One received message as one line: text as-is (control characters escaped when `forTerminal`), binary as hex. */
function formatMessage(data: unknown, forTerminal = false): string {
  if (typeof data === "string") return forTerminal ? printable(data) : data;
  if (data instanceof ArrayBuffer) return formatBinary(new Uint8Array(data));
  return String(data);
}

function formatBinary(bytes: Uint8Array): string {
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `[binary ${bytes.length} byte${bytes.length === 1 ? "" : "s"}]${hex ? ` ${hex}` : ""}`;
}

/** Escapes control characters (except newline and tab) so a message cannot drive the terminal. */
function printable(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (char) => `\\x${char.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** Parses hex digits (whitespace allowed between bytes) into bytes, or returns a one-line reason. */
function parseHex(text: string): Uint8Array | string {
  const digits = text.replace(/\s+/g, "");
  if (digits === "") return "Nothing to send: /binary needs hex digits, e.g. /binary 48690a";
  if (!/^[0-9a-fA-F]*$/.test(digits)) return `Invalid hex, only 0-9 and a-f are allowed: ${text}`;
  if (digits.length % 2 !== 0) return `Invalid hex, the number of digits must be even: ${text}`;
  const bytes = new Uint8Array(digits.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

// ---------------------------------------------------------------------------------------------------------------
// Output

/** Ordered, fire-and-forget text writes to a stream; write errors (a closed pipe) are ignored. */
class Sink {
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #last: Promise<void> = Promise.resolve();
  #encoder = new TextEncoder();

  constructor(stream: WritableStream<Uint8Array>) {
    this.#writer = stream.getWriter();
  }

  write(text: string): void {
    // The stream queues writes in order, so awaiting the last one awaits them all.
    this.#last = this.#writer.write(this.#encoder.encode(text)).catch(() => {});
  }

  /** Waits for every write, then unlocks the stream without closing it (it may be the process's stdout). */
  async release(): Promise<void> {
    await this.#last;
    this.#writer.releaseLock();
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
