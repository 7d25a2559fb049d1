/**
 * Shared helpers for server tests: every server test runs once per engine, over real sockets on 127.0.0.1.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Engine, ServerOptions } from "../lib/config.ts";
import { createLogger, type Logger } from "../lib/log.ts";
import { type HubbubServer, serve } from "../lib/server.ts";

/** The engines every server test runs against. */
export const ENGINES: readonly Engine[] = ["deno", "raw"];

/** Registers `fn` once per engine, named `[engine] name`, with Deno's leak sanitizers on. */
export function engineTest(
  name: string,
  fn: (engine: Engine) => Promise<void>,
  options: { engines?: readonly Engine[]; ignore?: boolean } = {},
): void {
  for (const engine of options.engines ?? ENGINES) {
    Deno.test({
      name: `[${engine}] ${name}`,
      ignore: options.ignore,
      sanitizeOps: true,
      sanitizeResources: true,
      fn: () => fn(engine),
    });
  }
}

/** Log lines captured from a test server. */
export interface CapturedLog {
  /** Every line written, in order. */
  readonly lines: string[];
  /** The logger writing into `lines`. */
  readonly logger: Logger;
}

/** A logger that keeps its lines (json format) for assertions, at `level`. */
export function captureLog(level: "debug" | "info" | "warn" = "info"): CapturedLog {
  const lines: string[] = [];
  return { lines, logger: createLogger({ level, format: "json", write: (line) => lines.push(line) }) };
}

/** Starts a server on a free port of 127.0.0.1 with a silent (or given) logger. */
export function startServer(engine: Engine, options: ServerOptions = {}): HubbubServer {
  return serve({
    port: 0,
    hostname: "127.0.0.1",
    engine,
    logger: options.logger ?? createLogger({ level: "error", write: () => {} }),
    ...options,
  });
}

/** A WebSocket client that queues what it receives, for tests. */
export class TestClient {
  /** The underlying socket. */
  readonly socket: WebSocket;
  /** Every message received so far. */
  readonly received: (string | ArrayBuffer)[] = [];
  /** Resolves with the close event's code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: (() => void)[] = [];

  constructor(url: string, protocols?: string | string[], headers?: HeadersInit) {
    this.socket = headers
      ? new WebSocket(url, { protocols, headers } as unknown as string[])
      : new WebSocket(url, protocols);
    this.socket.binaryType = "arraybuffer";
    this.socket.onmessage = (event) => {
      this.received.push(event.data);
      this.#wake();
    };
    this.closed = new Promise((resolve) => {
      this.socket.onclose = (event) => {
        resolve({ code: event.code, reason: event.reason });
        this.#wake();
      };
    });
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Resolves once open; rejects if the socket closes first. */
  opened(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.socket.readyState === WebSocket.OPEN) return resolve();
      this.socket.addEventListener("open", () => resolve(), { once: true });
      this.socket.addEventListener("error", () => reject(new Error("WebSocket failed to open")), { once: true });
    });
  }

  /** Waits until at least `count` messages arrived (or the socket closed, or `timeoutMs` passed). */
  async waitFor(count: number, timeoutMs = 10_000): Promise<(string | ArrayBuffer)[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < count && this.socket.readyState !== WebSocket.CLOSED) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    return this.received;
  }

  /** Closes (if still open) and waits for the close event. */
  async close(code = 1000, reason = ""): Promise<{ code: number; reason: string }> {
    if (this.socket.readyState <= WebSocket.OPEN) this.socket.close(code, reason);
    return await this.closed;
  }
}

/** Opens `count` clients on `url` and waits until all are open. */
export async function openClients(url: string, count: number): Promise<TestClient[]> {
  const clients = Array.from({ length: count }, () => new TestClient(url));
  await Promise.all(clients.map((client) => client.opened()));
  return clients;
}

/** Closes every client and waits for each close event. */
export async function closeAll(clients: TestClient[]): Promise<void> {
  await Promise.all(clients.map((client) => client.close()));
}

/** Polls `check` every 10 ms until it returns true, or throws after `timeoutMs` with `what`. */
export async function eventually(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Waits until `/healthz` reports no connection and no room. */
export async function assertEmpty(server: HubbubServer): Promise<void> {
  await eventually("healthz to show 0 connections and 0 rooms", async () => {
    const state = await health(server);
    return state.connections === 0 && state.rooms === 0;
  });
}

/**
 * `a` says `text`; then `b` and `a` (its own copy) both receive it, after whatever was still on its way to them
 * (the hub queued it first), and nothing after it.
 */
export async function assertTalking(a: TestClient, b: TestClient, text: string): Promise<void> {
  a.socket.send(text);
  for (const client of [b, a]) {
    const deadline = Date.now() + 10_000;
    while (!client.received.includes(text) && client.socket.readyState === WebSocket.OPEN && Date.now() < deadline) {
      await client.waitFor(client.received.length + 1, deadline - Date.now());
    }
    assert.equal(client.received.at(-1), text);
  }
}

/** Fetches `/healthz` and returns its JSON. */
export async function health(server: HubbubServer): Promise<{ status: string; connections: number; rooms: number }> {
  const response = await fetch(`${server.url}/healthz`);
  return await response.json();
}

/** A raw HTTP response: status line parsed, headers lower-cased, body as text. */
export interface RawResponse {
  /** The status line as sent, e.g. `HTTP/1.1 404 Not Found`. */
  statusLine: string;
  /** HTTP status. */
  status: number;
  /** Header map, names lower-cased. */
  headers: Map<string, string>;
  /** Body (what arrived before the server closed or `timeoutMs`). */
  body: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * One `conn.read(buffer)` that gives up at `deadline` (a `Date.now()` value): the byte count, or `null` on EOF, a
 * reset, or time out. Leaves no timer behind.
 */
export async function readBefore(conn: Deno.Conn, buffer: Uint8Array, deadline: number): Promise<number | null> {
  const left = deadline - Date.now();
  if (left <= 0) return null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const n = await Promise.race([
    conn.read(buffer).catch(() => null),
    new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), left)),
  ]);
  clearTimeout(timer);
  return n;
}

/** Sends `head` (a full request head, CRLFs included) over a raw TCP connection and reads the response. */
export async function rawRequest(port: number, head: string | Uint8Array, timeoutMs = 3000): Promise<RawResponse> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(typeof head === "string" ? encoder.encode(head) : head).catch(() => 0);
    let text = "";
    const buffer = new Uint8Array(65536);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const n = await readBefore(conn, buffer, deadline);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n));
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, end))?.[1];
        if (length !== undefined && encoder.encode(text.slice(end + 4)).length >= Number(length)) break;
        if (text.startsWith("HTTP/1.1 101")) break;
      }
    }
    const [headText, ...rest] = text.split("\r\n\r\n");
    const [statusLine, ...headerLines] = headText.split("\r\n");
    const headers = new Map<string, string>();
    for (const line of headerLines) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    return { statusLine, status: Number(statusLine.split(" ")[1] ?? 0), headers, body: rest.join("\r\n\r\n") };
  } finally {
    conn.close();
  }
}

/** A well-formed upgrade request head for `path`, with `extra` header lines (each ending in CRLF). */
export function upgradeHead(path: string, extra = "", options: { omit?: string[]; version?: string } = {}): string {
  const lines: [string, string][] = [
    ["Host", "127.0.0.1"],
    ["Upgrade", "websocket"],
    ["Connection", "Upgrade"],
    ["Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="],
    ["Sec-WebSocket-Version", "13"],
  ];
  const kept = lines.filter(([name]) => !options.omit?.includes(name));
  return `GET ${path} HTTP/${options.version ?? "1.1"}\r\n${
    kept.map(([k, v]) => `${k}: ${v}\r\n`).join("")
  }${extra}\r\n`;
}

/** Builds a masked client frame (RFC 6455 §5.2), as a browser would send it. */
export function clientFrame(
  opcode: number,
  payload: Uint8Array | string,
  options: { fin?: boolean; rsv?: number; mask?: boolean } = {},
): Uint8Array {
  const data = typeof payload === "string" ? encoder.encode(payload) : payload;
  const mask = options.mask ?? true;
  const length = data.length;
  const extended = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const frame = new Uint8Array(2 + extended + (mask ? 4 : 0) + length);
  frame[0] = ((options.fin ?? true) ? 0x80 : 0) | ((options.rsv ?? 0) << 4) | opcode;
  frame[1] = (mask ? 0x80 : 0) | (extended === 0 ? length : extended === 2 ? 126 : 127);
  const view = new DataView(frame.buffer);
  if (extended === 2) view.setUint16(2, length);
  if (extended === 8) view.setBigUint64(2, BigInt(length));
  let offset = 2 + extended;
  const key = [0x12, 0x34, 0x56, 0x78];
  if (mask) {
    frame.set(key, offset);
    offset += 4;
  }
  for (let i = 0; i < length; i++) frame[offset + i] = mask ? data[i] ^ key[i & 3] : data[i];
  return frame;
}

/** Opens a raw TCP connection, completes the upgrade on `path`, and returns the connection for frame-level abuse. */
export async function rawSocket(port: number, path = "/"): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode(upgradeHead(path)));
  let text = "";
  const buffer = new Uint8Array(4096);
  while (!text.includes("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error(`Server closed during the handshake: ${text}`);
    text += decoder.decode(buffer.subarray(0, n));
  }
  if (!text.startsWith("HTTP/1.1 101")) {
    conn.close();
    throw new Error(`Upgrade refused: ${text.split("\r\n")[0]}`);
  }
  return conn;
}

/** One unmasked frame as a server sent it. */
export interface ServerFrame {
  /** The opcode (0x1 text, 0x2 binary, 0x8 close, 0x9 ping, 0xa pong). */
  opcode: number;
  /** The payload (a view into the reader's bytes; copy it to keep it past the next chunk). */
  payload: Uint8Array;
  /** For a close frame: its code, or 1005 when it carried none. */
  code?: number;
}

/** Splits a server's byte stream into frames, keeping a frame split across chunks for the next one. */
export class ServerFrameReader {
  #pending = new Uint8Array(0);

  /** Adds `chunk` and returns the frames it completed, in order. */
  push(chunk: Uint8Array): ServerFrame[] {
    const bytes = new Uint8Array(this.#pending.length + chunk.length);
    bytes.set(this.#pending);
    bytes.set(chunk, this.#pending.length);
    const frames: ServerFrame[] = [];
    let offset = 0;
    while (offset + 2 <= bytes.length) {
      let length = bytes[offset + 1] & 0x7f;
      let header = 2;
      if (length === 126 || length === 127) {
        header = length === 126 ? 4 : 10;
        if (offset + header > bytes.length) break;
        const view = new DataView(bytes.buffer, bytes.byteOffset + offset + 2);
        length = length === 126 ? view.getUint16(0) : Number(view.getBigUint64(0));
      }
      if (offset + header + length > bytes.length) break;
      const opcode = bytes[offset] & 0x0f;
      const payload = bytes.subarray(offset + header, offset + header + length);
      frames.push(
        opcode === 0x8 ? { opcode, payload, code: length >= 2 ? (payload[0] << 8) | payload[1] : 1005 } : {
          opcode,
          payload,
        },
      );
      offset += header + length;
    }
    this.#pending = bytes.slice(offset);
    return frames;
  }
}

/**
 * Reads server frames from a raw connection until a close frame (with `untilClose: false`, until EOF), or until
 * `timeoutMs`. `onFrame` sees each frame as it arrives; with `keep: false` frames are not collected (long streams).
 * `eof` tells whether the server ended the connection (rather than the time running out or a close frame).
 */
export async function readServerFrames(
  conn: Deno.Conn,
  options: { timeoutMs?: number; untilClose?: boolean; keep?: boolean; onFrame?: (frame: ServerFrame) => void } = {},
): Promise<{ frames: ServerFrame[]; eof: boolean }> {
  const { timeoutMs = 5000, untilClose = true, keep = true, onFrame } = options;
  const reader = new ServerFrameReader();
  const frames: ServerFrame[] = [];
  const buffer = new Uint8Array(256 * 1024);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (Date.now() >= deadline) return { frames, eof: false };
    const n = await readBefore(conn, buffer, deadline);
    if (n === null) return { frames, eof: Date.now() < deadline };
    for (const frame of reader.push(buffer.subarray(0, n))) {
      onFrame?.(frame);
      if (keep) frames.push({ ...frame, payload: frame.payload.slice() });
      if (untilClose && frame.opcode === 0x8) return { frames, eof: false };
    }
  }
}

/** Reads server frames from a raw connection until a close frame (or EOF); returns the close code, if any. */
export async function readUntilClose(conn: Deno.Conn, timeoutMs = 5000): Promise<number | null> {
  let code: number | null = null;
  await readServerFrames(conn, { timeoutMs, keep: false, onFrame: (frame) => code = frame.code ?? code });
  return code;
}
