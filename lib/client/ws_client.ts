/**
 * A WebSocket client on `Deno.connect` / `Deno.connectTls`, for `hubbub client`: the opening handshake over HTTP/1.1
 * (`lib/http1.ts`), the frames through the same sans-I/O state machine as the raw engine in its client role
 * (`lib/protocol.ts`), and the I/O here.
 *
 * Why not Deno's `WebSocket`: it cannot send a ping frame, and a refused handshake surfaces only as
 * `Invalid status code: 404`, without the server's one-line reason. This client does both, and can trust an extra CA
 * for `wss://` (`caCerts`), which `WebSocket` cannot be told in-process.
 *
 * `unsafelyIgnoreCertificateErrors` (the CLI's `-k`) goes through `node:tls` with `rejectUnauthorized: false`: Deno's
 * own `Deno.connectTls`/`Deno.startTls` can skip only the host name check, and the runtime flag
 * `--unsafely-ignore-certificate-errors` would have to be given to `deno` itself (a compiled binary has it baked in or
 * not at all). `node:tls` ships with Deno, needs only `--allow-net`, and works the same in a compiled binary.
 *
 * @example Echo one message
 * ```ts ignore
 * import { connectWebSocket } from "./ws_client.ts";
 * const socket = await connectWebSocket("ws://localhost:8765/echo");
 * socket.onmessage = (data) => console.log("↓", data);
 * console.log(`pong after ${await socket.ping()} ms`);
 * socket.send("hi");
 * socket.close();
 * await socket.closed;
 * ```
 *
 * @module
 */

import { isIP } from "node:net";
import { connect as connectNodeTls, type TLSSocket } from "node:tls";
import { concatBytes, GrowableBytes } from "../bytes.ts";
import { CLOSE_CODE, isSendableCloseCode, MAX_CLOSE_REASON_BYTES } from "../ws/close_code.ts";
import { encodeBinary, encodePing, encodeText, MAX_CONTROL_PAYLOAD_BYTES } from "../ws/frame.ts";
import { computeAcceptKey, findHeadEnd, parseResponseHead, type ResponseHead } from "../ws/http1.ts";
import type { Message } from "../hub/peer.ts";
import { ServerProtocol } from "../ws/protocol.ts";

/** Options for {@linkcode connectWebSocket}. */
export interface ConnectOptions {
  /**
   * Extra handshake headers, e.g. `Authorization`. `Host` may be overridden; the headers the handshake itself sets
   * (`Upgrade`, `Connection`, `Sec-WebSocket-*`) may not, and `Origin` may not be given here and as `origin` both.
   *
   * @default {none}
   */
  headers?: HeadersInit;
  /** Subprotocols to offer, in order of preference (`Sec-WebSocket-Protocol: a, b`). @default {[]} */
  protocols?: string[];
  /** The `Origin` header to send; CLIs send none unless asked. @default {none} */
  origin?: string;
  /**
   * PEM certificates to trust for `wss://` on top of Deno's default roots (Mozilla's, or the system's with
   * `DENO_TLS_CA_STORE=system`), e.g. a self-signed server certificate.
   *
   * @default {[]}
   */
  caCerts?: string[];
  /**
   * Skip checking the server's certificate for `wss://`, like curl's `--insecure`: any certificate for any name is
   * accepted, so anyone on the network path can read and change the connection. For trying out a server whose
   * certificate cannot be fixed; may not be combined with `caCerts`.
   *
   * @default {false}
   */
  unsafelyIgnoreCertificateErrors?: boolean;
  /** Aborts connecting and the opening handshake (not the open connection); rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Milliseconds allowed for connecting and the opening handshake; `Infinity` waits as long as the OS does.
   *
   * @default {10000}
   */
  timeoutMs?: number;
  /**
   * Largest message accepted from the server (1009 beyond).
   *
   * @default {67108864}
   */
  maxMessageBytes?: number;
}

/** How a connection ended, as {@linkcode WebSocketClient.closed} and `onclose` report it. */
export interface WebSocketClosed {
  /**
   * The code of the server's close frame (1005 if it had none); after a protocol failure, the code we failed with;
   * 1006 when the connection ended without a close frame.
   */
  code: number;
  /** The reason of that close frame, or of our failure; empty for 1006. */
  reason: string;
  /** Whether close frames went both ways before the connection ended. */
  wasClean: boolean;
  /** What went wrong, for a connection that failed (protocol error, network error); `undefined` otherwise. */
  error?: Error;
}

/** The state of a {@linkcode WebSocketClient}. */
export type WebSocketClientState = "open" | "closing" | "closed";

/** An open WebSocket connection made by {@linkcode connectWebSocket}. Set the handlers right after it resolves. */
export interface WebSocketClient {
  /** The URL connected to. */
  readonly url: string;
  /** The subprotocol the server selected, or `""`. */
  readonly protocol: string;
  /** `open` until a close frame is sent or received, `closing` during the closing handshake, then `closed`. */
  readonly readyState: WebSocketClientState;
  /** Bytes accepted by `send`/`ping`/`close` that have not reached the kernel yet. */
  readonly bufferedAmount: number;
  /** Called with each message: text as a `string`, binary as an `ArrayBuffer`. */
  onmessage: ((data: Message) => void) | null;
  /** Called once when the connection has ended, just before {@linkcode WebSocketClient.closed} resolves. */
  onclose: ((code: number, reason: string) => void) | null;
  /** Called when the connection fails: the server broke the protocol, or the network failed while open. */
  onerror: ((error: Error) => void) | null;
  /** Resolves once the connection has ended and every socket operation is done; never rejects. */
  readonly closed: Promise<WebSocketClosed>;
  /** Sends one message (masked); dropped silently unless the connection is open, as the WebSocket API does. */
  send(data: string | ArrayBuffer | ArrayBufferView): void;
  /**
   * Sends a ping and resolves with the round-trip time in milliseconds when the pong with the same payload arrives.
   * Without `payload` it sends a counter (`"1"`, `"2"`…). Rejects with a `RangeError` for a payload over 125 bytes,
   * and with an `Error` when the connection is not open or closes before the pong.
   */
  ping(payload?: string | Uint8Array): Promise<number>;
  /**
   * Starts the closing handshake with `code` and `reason`; the connection ends when the server has answered and
   * closed TCP, or after {@linkcode CLOSE_TIMEOUT_MS}. Does nothing unless open. Throws a `RangeError` for a code
   * that may not be sent or a reason over 123 UTF-8 bytes.
   */
  close(code?: number, reason?: string): void;
}

/**
 * The server answered the opening handshake with something other than a valid 101: `status` is its HTTP status
 * (101 when the 101 itself was invalid) and `detail` the first line of its body, if any.
 */
export class WebSocketHandshakeError extends Error {
  /** The HTTP status of the response, or 0 when it was not valid HTTP. */
  readonly status: number;
  /** The one-line reason: the first line of the response body, or what was wrong with the 101. */
  readonly detail: string;

  /** Creates the error; the message reads `HTTP <status>: <detail>`. */
  constructor(status: number, detail: string) {
    super(status === 0 ? detail : `HTTP ${status}${detail ? `: ${detail}` : ""}`);
    this.name = "WebSocketHandshakeError";
    this.status = status;
    this.detail = detail;
  }
}

const DEFAULTS = {
  // Enough for a slow DNS answer and a TLS handshake across the world; a dead host fails well before the OS gives up.
  timeoutMs: 10_000,
  // 64 MiB, Deno's own WebSocket limit: the server chosen by the user is trusted further than a server trusts clients.
  maxMessageBytes: 64 * 1024 * 1024,
} as const;

/** Time the server gets, once we closed or failed, to answer and end the TCP connection before we cut it. */
export const CLOSE_TIMEOUT_MS = 2_000;
/** Largest response head accepted; real servers answer a handshake in well under 1 KiB. */
const MAX_HEAD_BYTES = 16 * 1024;
/** Most bytes of a refusal's body read for its reason: one line is all the error shows. */
const MAX_ERROR_BODY_BYTES = 4 * 1024;
/** Longest reason line kept from a refusal body. */
const MAX_DETAIL_CHARS = 200;
/** Read buffer per connection, reused for every read. */
const READ_BUFFER_BYTES = 64 * 1024;
/** Small frames queued in one turn are joined into writes of up to this size. */
const COALESCE_MAX = 64 * 1024;
/** Every frame a client sends is masked with a fresh key (RFC 6455 §5.3). */
const MASKED = { mask: true } as const;
/** RFC 9110 token, for subprotocol names. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Headers the handshake writes itself. */
const HANDSHAKE_HEADERS = [
  "upgrade",
  "connection",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-protocol",
  "sec-websocket-extensions",
];

const encoder = new TextEncoder();

/**
 * Opens a WebSocket connection to a `ws://` or `wss://` URL and resolves once the server accepted the upgrade.
 *
 * Rejects with a `TypeError` for a bad URL or options, a {@linkcode WebSocketHandshakeError} when the server refused
 * (message `HTTP 404: No such path: /nope`) or answered an invalid 101, a `DOMException` named `TimeoutError` after
 * `timeoutMs`, the signal's reason when aborted, and Deno's own error when DNS, TCP or TLS fails.
 *
 * @example A refused handshake says why
 * ```ts ignore
 * import { connectWebSocket } from "./ws_client.ts";
 * await connectWebSocket("ws://localhost:8765/nope"); // WebSocketHandshakeError: HTTP 404: No such path: /nope …
 * ```
 */
export async function connectWebSocket(url: string | URL, options: ConnectOptions = {}): Promise<WebSocketClient> {
  const target = new URL(url);
  const secure = target.protocol === "wss:";
  if (!secure && target.protocol !== "ws:") throw new TypeError(`Not a ws:// or wss:// URL: ${url}`);
  const timeoutMs = options.timeoutMs ?? DEFAULTS.timeoutMs;
  if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be a positive number of milliseconds: ${timeoutMs}`);
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULTS.maxMessageBytes;
  if (!Number.isSafeInteger(maxMessageBytes) || maxMessageBytes < 0) {
    throw new RangeError(`maxMessageBytes must be a non-negative safe integer: ${maxMessageBytes}`);
  }
  const insecure = options.unsafelyIgnoreCertificateErrors ?? false;
  if (insecure && (options.caCerts?.length ?? 0) > 0) {
    throw new TypeError("caCerts conflicts with unsafelyIgnoreCertificateErrors: give one of them");
  }
  const protocols = options.protocols ?? [];
  for (const protocol of protocols) {
    if (!TOKEN.test(protocol)) throw new TypeError(`Invalid subprotocol name: ${JSON.stringify(protocol)}`);
  }
  if (new Set(protocols).size !== protocols.length) throw new TypeError(`Duplicate subprotocol: ${protocols}`);
  const headers = new Headers(options.headers);
  for (const name of HANDSHAKE_HEADERS) {
    if (headers.has(name)) throw new TypeError(`Header is set by the WebSocket handshake itself: ${name}`);
  }
  if (options.origin !== undefined) {
    if (headers.has("origin")) throw new TypeError("origin conflicts with an Origin header: give one of them");
    headers.set("origin", options.origin);
  }

  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  let head = `GET ${target.pathname}${target.search} HTTP/1.1\r\nhost: ${headers.get("host") ?? target.host}\r\n`;
  for (const [name, value] of headers) if (name !== "host") head += `${name}: ${value}\r\n`;
  head += `upgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: ${key}\r\nsec-websocket-version: 13\r\n`;
  if (protocols.length > 0) head += `sec-websocket-protocol: ${protocols.join(", ")}\r\n`;
  head += "\r\n";

  // One abort for everything: the timeout, the caller's signal. It cancels the TCP connect, and closing the
  // connection fails whichever read or write the handshake is waiting on.
  const abort = new AbortController();
  let conn: ByteConn | undefined;
  const stop = (reason: unknown) => {
    abort.abort(reason);
    closeQuietly(conn);
  };
  const timer = timeoutMs === Infinity ? undefined : setTimeout(
    () => stop(new DOMException(`WebSocket handshake timed out after ${timeoutMs} ms: ${target.href}`, "TimeoutError")),
    timeoutMs,
  );
  const onAbort = () => stop(options.signal!.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    options.signal?.throwIfAborted();
    const hostname = target.hostname.startsWith("[") ? target.hostname.slice(1, -1) : target.hostname;
    const port = target.port === "" ? (secure ? 443 : 80) : Number(target.port);
    if (secure && insecure) {
      conn = await connectInsecureTls(hostname, port, abort.signal);
    } else {
      conn = await Deno.connect({ hostname, port, signal: abort.signal });
      abort.signal.throwIfAborted();
      if (secure) {
        // startTls, not connectTls: the TLS handshake then runs under our first write, which the abort can cut.
        conn = await Deno.startTls(conn as Deno.TcpConn, { hostname, caCerts: options.caCerts });
        abort.signal.throwIfAborted();
      }
    }
    const request = latin1(head);
    // A write may take fewer bytes than given: go on from where it stopped.
    for (let offset = 0; offset < request.length;) offset += await conn.write(request.subarray(offset));
    const { response, rest } = await readResponseHead(conn);
    if (response.status !== 101) {
      throw new WebSocketHandshakeError(response.status, await refusalDetail(conn, response, rest));
    }
    const protocol = checkUpgrade(response, key, protocols);
    const socket = new Client(conn, target.href, protocol, rest.slice(), maxMessageBytes);
    conn = undefined; // the client owns it now
    return socket;
  } catch (error) {
    closeQuietly(conn);
    // A refusal stays a refusal even when the time ran out while its body trickled in.
    if (abort.signal.aborted && !(error instanceof WebSocketHandshakeError)) throw abort.signal.reason;
    throw error;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
}

/** Reads until a whole response head arrived; returns it and whatever bytes followed it in the same reads. */
async function readResponseHead(conn: ByteConn): Promise<{ response: ResponseHead; rest: Uint8Array }> {
  const head = new GrowableBytes(4096);
  const buffer = new Uint8Array(4096);
  for (let scanned = 0;;) {
    const n = await conn.read(buffer);
    if (n === null) {
      throw new WebSocketHandshakeError(
        0,
        `Server closed the connection during the handshake after ${head.length} bytes`,
      );
    }
    head.append(buffer.subarray(0, n));
    const bytes = head.view();
    // A server that trickles its head a byte at a time costs a scan of the new bytes, not a parse of them all.
    const complete = findHeadEnd(bytes, scanned - 3) >= 0 || bytes.length >= MAX_HEAD_BYTES;
    scanned = bytes.length;
    if (!complete) continue;
    const parsed = parseResponseHead(bytes, { maxHeadBytes: MAX_HEAD_BYTES });
    if (parsed.kind === "error") throw new WebSocketHandshakeError(0, `Invalid HTTP response: ${parsed.reason}`);
    if (parsed.kind === "response") return { response: parsed, rest: bytes.subarray(parsed.headLength) };
  }
}

/**
 * The first line of a refusal's body (bounded by Content-Length and {@linkcode MAX_ERROR_BODY_BYTES}), or the status
 * text when the body is empty, HTML, or does not arrive in time: the error must show the status whatever happens.
 */
async function refusalDetail(conn: ByteConn, response: ResponseHead, rest: Uint8Array): Promise<string> {
  const length = response.headers.get("content-length");
  const type = response.headers.get("content-type") ?? "";
  let body = rest;
  // Without Content-Length, the body runs to the end of the connection; chunked bodies are not decoded.
  const want = response.headers.has("transfer-encoding") || type.includes("html")
    ? 0
    : length !== null && /^\d+$/.test(length)
    ? Math.min(Number(length), MAX_ERROR_BODY_BYTES)
    : MAX_ERROR_BODY_BYTES;
  try {
    const buffer = new Uint8Array(MAX_ERROR_BODY_BYTES);
    while (body.length < want) {
      const n = await conn.read(buffer);
      if (n === null) break;
      body = concatBytes(body, buffer.subarray(0, n));
    }
  } catch {
    // Reset or timed out: show what arrived.
  }
  const text = new TextDecoder().decode(body.subarray(0, want));
  // deno-lint-ignore no-control-regex
  const line = text.split("\n").map((line) => line.replace(/[\x00-\x1f\x7f]/g, "").trim()).find((line) => line);
  if (line === undefined) return response.statusText;
  return line.length > MAX_DETAIL_CHARS ? `${line.slice(0, MAX_DETAIL_CHARS)}…` : line;
}

/** Checks a 101 against RFC 6455 §4.1 and returns the selected subprotocol; throws what is wrong with it. */
function checkUpgrade(response: ResponseHead, key: string, offered: string[]): string {
  const { headers } = response;
  const invalid = (detail: string) => new WebSocketHandshakeError(101, `Invalid upgrade response: ${detail}`);
  if (headers.get("upgrade")?.trim().toLowerCase() !== "websocket") {
    throw invalid(`expected Upgrade: websocket, got ${headers.get("upgrade")}`);
  }
  if (!(headers.get("connection") ?? "").split(",").some((token) => token.trim().toLowerCase() === "upgrade")) {
    throw invalid(`expected Connection: Upgrade, got ${headers.get("connection")}`);
  }
  const accept = headers.get("sec-websocket-accept");
  if (accept !== computeAcceptKey(key)) throw invalid(`wrong Sec-WebSocket-Accept: ${accept}`);
  const extensions = headers.get("sec-websocket-extensions");
  if (extensions !== null) throw invalid(`extension not offered: ${extensions}`);
  const protocol = headers.get("sec-websocket-protocol");
  if (protocol !== null && !offered.includes(protocol)) throw invalid(`subprotocol not offered: ${protocol}`);
  return protocol ?? "";
}

interface PendingPing {
  payload: Uint8Array;
  sentAt: number;
  resolve: (ms: number) => void;
  reject: (error: Error) => void;
}

/** The open connection: a read loop feeding the protocol, and an output queue with at most one write in flight. */
class Client implements WebSocketClient {
  readonly url: string;
  readonly protocol: string;
  onmessage: ((data: Message) => void) | null = null;
  onclose: ((code: number, reason: string) => void) | null = null;
  onerror: ((error: Error) => void) | null = null;
  readonly closed: Promise<WebSocketClosed>;

  readonly #conn: ByteConn;
  readonly #protocol: ServerProtocol;
  #state: WebSocketClientState = "open";
  #resolveClosed!: (closed: WebSocketClosed) => void;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  /** The server's close frame, once it arrived. */
  #serverClose: { code: number; reason: string } | undefined;
  /** Our protocol failure, if the server broke the protocol. */
  #failure: { code: number; reason: string } | undefined;
  #error: Error | undefined;

  #queue: Uint8Array[] = [];
  #queued = 0;
  #inFlight = 0;
  #writing: Promise<void> | undefined;

  #pings: PendingPing[] = [];
  #pingCount = 0;

  constructor(conn: ByteConn, url: string, protocol: string, early: Uint8Array, maxMessageBytes: number) {
    this.#conn = conn;
    this.url = url;
    this.protocol = protocol;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.#protocol = new ServerProtocol({
      role: "client",
      maxMessageBytes,
      onMessage: (data) => this.#dispatch(() => this.onmessage?.(data)),
      onPong: (payload) => this.#pong(payload),
      write: (bytes) => {
        if (this.#state !== "closed") this.#enqueue(bytes);
      },
      onClose: (code, reason) => {
        this.#serverClose = { code, reason };
        this.#closing();
      },
      onError: (code, reason) => {
        this.#failure = { code, reason };
        this.#fail(new Error(`The server broke the WebSocket protocol: ${reason} (closing with ${code})`));
        this.#closing();
      },
    });
    // Start on a later task: the caller sets its handlers right after `await connectWebSocket()`, and messages that
    // came with the 101 must not be delivered before that.
    setTimeout(() => void this.#run(early), 0);
  }

  get readyState(): WebSocketClientState {
    return this.#state;
  }

  get bufferedAmount(): number {
    return this.#queued + this.#inFlight;
  }

  send(data: string | ArrayBuffer | ArrayBufferView): void {
    if (this.#state !== "open") return;
    if (typeof data === "string") this.#enqueue(encodeText(data, MASKED));
    else if (data instanceof ArrayBuffer) this.#enqueue(encodeBinary(data, MASKED));
    else this.#enqueue(encodeBinary(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), MASKED));
  }

  ping(payload?: string | Uint8Array): Promise<number> {
    const bytes = payload === undefined
      ? encoder.encode(String(++this.#pingCount))
      : typeof payload === "string"
      ? encoder.encode(payload)
      : payload.slice();
    if (bytes.length > MAX_CONTROL_PAYLOAD_BYTES) {
      return Promise.reject(new RangeError(`Ping payload must be at most 125 bytes: ${bytes.length}`));
    }
    if (this.#state !== "open") return Promise.reject(new Error(`Cannot ping: the connection is ${this.#state}`));
    return new Promise((resolve, reject) => {
      this.#pings.push({ payload: bytes, sentAt: performance.now(), resolve, reject });
      this.#enqueue(encodePing(bytes, MASKED));
    });
  }

  close(code: number = CLOSE_CODE.Normal, reason = ""): void {
    if (!isSendableCloseCode(code)) throw new RangeError(`Close code may not be sent: ${code}`);
    const bytes = encoder.encode(reason).length;
    if (bytes > MAX_CLOSE_REASON_BYTES) throw new RangeError(`Close reason must be at most 123 UTF-8 bytes: ${bytes}`);
    if (this.#state !== "open") return;
    this.#protocol.close(code, reason);
    this.#closing();
  }

  /** Enters the closing state (once): from here the server has {@linkcode CLOSE_TIMEOUT_MS} to end the connection. */
  #closing(): void {
    if (this.#state !== "open") return;
    this.#state = "closing";
    this.#closeTimer = setTimeout(() => closeQuietly(this.#conn), CLOSE_TIMEOUT_MS);
  }

  async #run(early: Uint8Array): Promise<void> {
    try {
      if (early.length > 0) this.#protocol.receive(early);
      const buffer = new Uint8Array(READ_BUFFER_BYTES);
      for (;;) {
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        // After a close frame either way, input is read only to be dropped, until the server ends the connection.
        if (!this.#protocol.closed) this.#protocol.receive(buffer.subarray(0, n));
      }
    } catch (error) {
      // Reset by the server, or cut by our close timer (then the connection was closing anyway).
      if (this.#state === "open") this.#fail(error as Error);
    }
    await this.#finish();
  }

  /** Ends the connection (once) and reports how, after every pending write has settled. */
  async #finish(): Promise<void> {
    this.#state = "closed";
    clearTimeout(this.#closeTimer);
    closeQuietly(this.#conn);
    this.#queue = [];
    this.#queued = 0;
    await this.#writing;
    const pings = this.#pings;
    this.#pings = [];
    for (const ping of pings) ping.reject(new Error("The connection closed before the pong arrived"));
    const closed: WebSocketClosed = this.#serverClose !== undefined
      ? { ...this.#serverClose, wasClean: true }
      : this.#failure !== undefined
      ? { ...this.#failure, wasClean: false }
      : { code: CLOSE_CODE.Abnormal, reason: "", wasClean: false };
    if (this.#error !== undefined) closed.error = this.#error;
    this.#dispatch(() => this.onclose?.(closed.code, closed.reason));
    this.#resolveClosed(closed);
  }

  #fail(error: Error): void {
    if (this.#error !== undefined) return;
    this.#error = error;
    this.#dispatch(() => this.onerror?.(error));
  }

  /** Runs a user callback; what it throws is reported like an exception in an event listener, not swallowed. */
  #dispatch(callback: () => void): void {
    try {
      callback();
    } catch (error) {
      reportError(error);
    }
  }

  #pong(payload: Uint8Array): void {
    const index = this.#pings.findIndex((ping) => equalBytes(ping.payload, payload));
    if (index < 0) return; // unsolicited (a heartbeat), or an answer to a ping already answered
    const [ping] = this.#pings.splice(index, 1);
    ping.resolve(performance.now() - ping.sentAt);
  }

  #enqueue(bytes: Uint8Array): void {
    this.#queue.push(bytes);
    this.#queued += bytes.length;
    // One microtask later, so that the frames queued in this turn go out in one write.
    this.#writing ??= Promise.resolve().then(() => this.#drain());
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queued > 0) {
        const chunks = this.#queue;
        this.#inFlight = this.#queued;
        this.#queue = [];
        this.#queued = 0;
        for (const buffer of coalesce(chunks)) {
          let offset = 0;
          // A write may take fewer bytes than given: go on from where it stopped.
          while (offset < buffer.length) {
            const written = await this.#conn.write(offset === 0 ? buffer : buffer.subarray(offset));
            offset += written;
            this.#inFlight -= written;
          }
        }
        this.#inFlight = 0;
      }
    } catch (error) {
      // The connection broke under a write: end it; the read loop then finishes.
      this.#inFlight = 0;
      if (this.#state === "open") this.#fail(error as Error);
      closeQuietly(this.#conn);
    } finally {
      this.#writing = undefined;
    }
  }
}

/** Joins small frames into writes of up to {@linkcode COALESCE_MAX}; large frames go as they are, uncopied. */
function coalesce(chunks: Uint8Array[]): Uint8Array[] {
  if (chunks.length === 1) return chunks;
  const out: Uint8Array[] = [];
  let run: Uint8Array[] = [];
  let runBytes = 0;
  const endRun = () => {
    if (run.length === 1) out.push(run[0]);
    else if (run.length > 1) {
      const joined = new Uint8Array(runBytes);
      let offset = 0;
      for (const chunk of run) {
        joined.set(chunk, offset);
        offset += chunk.length;
      }
      out.push(joined);
    }
    run = [];
    runBytes = 0;
  };
  for (const chunk of chunks) {
    if (chunk.length > COALESCE_MAX) {
      endRun();
      out.push(chunk);
      continue;
    }
    if (runBytes + chunk.length > COALESCE_MAX) endRun();
    run.push(chunk);
    runBytes += chunk.length;
  }
  endRun();
  return out;
}

/** Header values are ByteStrings (`Headers` refuses anything above U+00FF): one byte per character. */
function latin1(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function closeQuietly(conn: ByteConn | undefined): void {
  try {
    conn?.close();
  } catch {
    // Already closed.
  }
}

// ---------------------------------------------------------------------------------------------------------------
// TLS without checking the certificate (`unsafelyIgnoreCertificateErrors`)

/** The part of `Deno.Conn` the client uses; a `node:tls` socket is adapted to it. */
interface ByteConn {
  read(buffer: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  close(): void;
}

/** Opens TLS to `hostname:port` accepting any certificate; rejects with the signal's reason when it aborts. */
function connectInsecureTls(hostname: string, port: number, signal: AbortSignal): Promise<ByteConn> {
  signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    // SNI carries host names only (RFC 6066 §3); Node warns when given an IP address.
    const servername = isIP(hostname) === 0 ? hostname : undefined;
    const socket = connectNodeTls({ host: hostname, port, servername, rejectUnauthorized: false });
    const settle = (error?: unknown) => {
      signal.removeEventListener("abort", onAbort);
      socket.off("error", settle);
      socket.off("secureConnect", onConnect);
      if (error === undefined) return resolve(new NodeTlsConn(socket));
      socket.destroy();
      reject(error);
    };
    const onAbort = () => settle(signal.reason);
    const onConnect = () => settle();
    signal.addEventListener("abort", onAbort, { once: true });
    socket.once("error", settle);
    socket.once("secureConnect", onConnect);
  });
}

/**
 * A `node:tls` socket behind the {@linkcode ByteConn} methods. Reading drives the flow as with `Deno.Conn`: the
 * socket is paused after each chunk and resumed only when a read finds nothing buffered, so at most one chunk waits.
 */
class NodeTlsConn implements ByteConn {
  readonly #socket: TLSSocket;
  #chunks: Uint8Array[] = [];
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  /** Writes in flight, failed when the socket closes under them (a destroyed socket may never call back). */
  #writes = new Set<(error: Error) => void>();

  constructor(socket: TLSSocket) {
    this.#socket = socket;
    socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      socket.pause();
      this.#notify();
    });
    socket.on("end", () => this.#end());
    socket.on("close", () => this.#end());
    socket.on("error", (error: Error) => {
      this.#error ??= error;
      this.#end();
    });
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#error !== undefined) throw this.#error;
      if (this.#ended) return null;
      this.#socket.resume();
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    const chunk = this.#chunks[0];
    const n = Math.min(chunk.length, buffer.length);
    buffer.set(chunk.subarray(0, n));
    if (n === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(n);
    return n;
  }

  write(bytes: Uint8Array): Promise<number> {
    if (this.#ended) return Promise.reject(this.#error ?? new Error("The connection is closed"));
    return new Promise((resolve, reject) => {
      this.#writes.add(reject);
      this.#socket.write(bytes, (error) => {
        this.#writes.delete(reject);
        if (error) reject(error);
        else resolve(bytes.length);
      });
    });
  }

  close(): void {
    this.#socket.destroy();
    this.#end();
  }

  #end(): void {
    this.#ended = true;
    const writes = [...this.#writes];
    this.#writes.clear();
    for (const reject of writes) reject(this.#error ?? new Error("The connection closed during a write"));
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
