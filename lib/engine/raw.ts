/**
 * The raw engine: Hubbub's own RFC 6455 transport on `Deno.listen` / `Deno.listenTls`.
 *
 * Why it exists (see ENGINE_NOTES): `Deno.upgradeWebSocket` makes one frame and one system call per delivered
 * message. Here a broadcast frames its payload once (a one-slot cache: the hub hands every member the same
 * `string` or `ArrayBuffer`), each socket queues the frame bytes, and every socket writes everything queued since
 * its last write in one `conn.write`, flushed once per turn of the event loop, with at most one write in flight.
 * Limits are enforced while frames arrive, and a peer that stops reading can be cut off at once.
 *
 * Plain HTTP requests on the same port go to the same `Request → Response` handler as the deno engine (one request
 * per connection, `Connection: close`).
 *
 * @module
 */

import { concatBytes, writeAll } from "../bytes.ts";
import { CLOSE_CODE } from "../ws/close_code.ts";
import { encodeBinary, encodeClose, encodePing, encodeText } from "../ws/frame.ts";
import type { ClientInfo, UpgradeRequest } from "../handler.ts";
import { isWebSocketAttempt } from "../ws/handshake.ts";
import { computeAcceptKey, parseRequestHead, serializeResponseHead } from "../ws/http1.ts";
import type { Connection, Endpoint, Hub } from "../hub/hub.ts";
import type { Logger } from "../log.ts";
import { type Message, nextPeerId, type Peer } from "../hub/peer.ts";
import { ServerProtocol } from "../ws/protocol.ts";

/** Largest request head accepted (431 beyond); browsers send well under 8 KiB. */
const MAX_HEAD_BYTES = 16 * 1024;
/** Largest plain-HTTP request body read (413 beyond): Hubbub's HTTP routes take no body. */
const MAX_BODY_BYTES = 64 * 1024;
/** Time allowed for a request head to arrive, so a client that trickles headers cannot hold a socket forever. */
const HEAD_TIMEOUT_MS = 10_000;
/** Time a closing peer gets to answer our close frame before its connection is cut. */
const CLOSE_TIMEOUT_MS = 1_000;
/** First read buffer per connection: small, so idle sockets stay cheap; it doubles while reads fill it. */
const READ_BUFFER_MIN = 1024;
/** Largest read buffer per connection. */
const READ_BUFFER_MAX = 256 * 1024;
/**
 * Size of the pooled output buffers frames are written into. Allocating an `ArrayBuffer` costs Deno ~250 ns, more
 * than framing a small message, so frames go straight into a recycled buffer rather than into one array each.
 */
const OUT_BUFFER_BYTES = 16 * 1024;
/** Frames up to this size are copied into the output buffer; larger ones are queued as they are, uncopied. */
const COPY_MAX = 8 * 1024;
/** Output buffers kept for reuse (at most 4 MiB), so idle sockets hold none. */
const POOL_MAX = 256;

const encoder = new TextEncoder();
/** Text up to this many UTF-16 units, if ASCII, fits a 7-bit frame length and is framed in place. */
const SHORT_TEXT_UNITS = 125;

// One-slot frame cache: during a fan-out the hub hands every member the same object, so it is framed once.
let cachedData: Message | undefined;
let cachedFrame: Uint8Array = new Uint8Array(0);

function frameOf(data: Message): Uint8Array {
  if (data !== cachedData) {
    cachedFrame = typeof data === "string" ? encodeText(data) : encodeBinary(data);
    cachedData = data;
  }
  return cachedFrame;
}

const pool: ArrayBuffer[] = [];
const pooled = new WeakSet<ArrayBuffer>();

function takeBuffer(): Uint8Array {
  const reused = pool.pop();
  if (reused !== undefined) return new Uint8Array(reused);
  const buffer = new ArrayBuffer(OUT_BUFFER_BYTES);
  pooled.add(buffer);
  return new Uint8Array(buffer);
}

/** Returns a written chunk's buffer to the pool when it came from there (cached broadcast frames did not). */
function recycle(chunk: Uint8Array): void {
  if (pooled.has(chunk.buffer as ArrayBuffer) && pool.length < POOL_MAX) pool.push(chunk.buffer as ArrayBuffer);
}

// Sockets with bytes queued this turn, flushed together in one microtask.
let dirty: RawPeer[] = [];
let flushScheduled = false;

function flushDirty(): void {
  flushScheduled = false;
  const peers = dirty;
  dirty = [];
  for (const peer of peers) peer.flush();
}

const OPEN = 0;
const CLOSING = 1;
const CLOSED = 2;

/** What a {@linkcode RawPeer} reports back to its engine. */
interface RawPeerHost {
  readonly logger: Logger;
  readonly maxBufferedBytes: number;
  finished(peer: RawPeer, code: number, reason: string): void;
}

/** One connection of the raw engine, as a {@linkcode Peer}: an output queue with at most one write in flight. */
export class RawPeer implements Peer {
  /** Process-unique id. */
  readonly id: number = nextPeerId();
  /** The hub's handle, set once the peer has joined. */
  connection: Connection | undefined;
  /** Whether anything arrived since the idle sweep last looked. */
  active = true;
  /** Whether the idle sweep sent a ping that is still unanswered. */
  pinged = false;
  /** The connection's protocol state machine, set right after construction. */
  protocol: ServerProtocol | undefined;
  /** Frees the connection's limiter slot; called once when the connection ends. */
  release: (() => void) | undefined;
  readonly #conn: Deno.Conn;
  readonly #host: RawPeerHost;
  /** Chunks ready to write, in order: filled output buffers and large frames. */
  #sealed: Uint8Array[] = [];
  /** The output buffer being filled (none while idle), and how much of it is used. */
  #buf: Uint8Array | null = null;
  #len = 0;
  /** Bytes in `#sealed` plus `#len`. */
  #queued = 0;
  #inFlight = 0;
  #writing = false;
  #dirty = false;
  #state = OPEN;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  /** The code this side closed with, reported when the peer itself sent none. */
  #closeCode: number = CLOSE_CODE.Abnormal;
  #closeReason = "";
  /** Set when the closing handshake is done on our side: once flushed, the write side ends. */
  #peerClosed = false;

  /** Wraps an upgraded connection. */
  constructor(conn: Deno.Conn, host: RawPeerHost) {
    this.#conn = conn;
    this.#host = host;
  }

  /** Bytes queued plus bytes of the write in flight: what the slow-consumer policy reads. */
  get bufferedAmount(): number {
    return this.#queued + this.#inFlight;
  }

  /** Whether the peer is still open for messages. */
  get open(): boolean {
    return this.#state === OPEN;
  }

  /**
   * Queues one message. Short ASCII text is framed straight into the output buffer; anything else is framed once
   * per distinct message (however many peers it goes to) and copied in, or queued as it is when large.
   */
  send(data: Message): void {
    if (this.#state !== OPEN) return;
    if (typeof data === "string" && data.length <= SHORT_TEXT_UNITS && this.#writeShortAscii(data)) return;
    this.#enqueue(frameOf(data));
  }

  /** Writes `text` as a text frame into the output buffer if it is all ASCII; returns false (nothing queued) if not. */
  #writeShortAscii(text: string): boolean {
    const units = text.length;
    this.#reserve(units + 2);
    const buf = this.#buf!;
    const start = this.#len;
    for (let i = 0, at = start + 2; i < units; i++, at++) {
      const unit = text.charCodeAt(i);
      if (unit > 0x7f) return false;
      buf[at] = unit;
    }
    buf[start] = 0x81; // FIN + text
    buf[start + 1] = units;
    this.#len += units + 2;
    this.#queued += units + 2;
    this.#schedule();
    return true;
  }

  /** Makes room for `bytes` more in the output buffer, sealing a full one and taking a fresh one from the pool. */
  #reserve(bytes: number): void {
    if (this.#buf === null || this.#len + bytes > this.#buf.length) {
      this.#seal();
      this.#buf = takeBuffer();
    }
  }

  /** Moves the filled part of the output buffer to the write queue. */
  #seal(): void {
    const buf = this.#buf;
    if (buf === null) return;
    if (this.#len > 0) this.#sealed.push(buf.subarray(0, this.#len));
    else recycle(buf);
    this.#buf = null;
    this.#len = 0;
  }

  /** Queues a ping (idle checks). */
  ping(): void {
    if (this.#state === OPEN) this.#enqueue(encodePing());
  }

  /**
   * Starts the closing handshake. A peer with more than `maxBufferedBytes` still queued is not reading, so its
   * close frame could never get through: its connection is cut at once instead.
   */
  close(code: number, reason: string): void {
    if (this.#state !== OPEN) return;
    this.#state = CLOSING;
    this.#closeCode = code;
    this.#closeReason = reason;
    if (this.bufferedAmount > this.#host.maxBufferedBytes) {
      this.terminate();
      return;
    }
    // Through the protocol, so that it reports the peer's answering close instead of echoing a second one.
    if (this.protocol) this.protocol.close(code, reason);
    else this.#enqueue(encodeClose(code, reason));
    this.#closeTimer = setTimeout(() => this.terminate(), CLOSE_TIMEOUT_MS);
  }

  /** Queues bytes the protocol must send (pongs, close frames), even while closing. */
  writeControl(bytes: Uint8Array): void {
    if (this.#state !== CLOSED) this.#enqueue(bytes);
  }

  /**
   * Records that the closing handshake is over on our side (the peer's close arrived and was answered, or the peer
   * broke the protocol): once the queue is flushed, the connection is half-closed (FIN) and ends when the peer
   * closes its side, or after {@linkcode CLOSE_TIMEOUT_MS}.
   */
  peerClosed(code: number, reason: string): void {
    if (this.#state === CLOSED || this.#peerClosed) return;
    this.#peerClosed = true;
    // When we started the close, our code is the one that closed the connection; otherwise the peer's.
    if (this.#state === OPEN) {
      this.#closeCode = code;
      this.#closeReason = reason;
    }
    this.#state = CLOSING;
    clearTimeout(this.#closeTimer);
    this.#closeTimer = setTimeout(() => this.terminate(), CLOSE_TIMEOUT_MS);
    if (!this.#writing && this.#queued === 0) this.#endWrite();
  }

  /**
   * Sends FIN rather than closing outright: closing a socket with unread input makes the kernel send RST, and a
   * client then drops our close frame unread (it reports 1006 instead of our code). The read loop keeps draining
   * until the peer's EOF, then calls {@linkcode RawPeer.terminate}.
   */
  #endWrite(): void {
    try {
      this.#conn.closeWrite();
    } catch {
      this.terminate();
    }
  }

  /** Closes the TCP connection now, dropping anything queued, and reports the peer finished (once). */
  terminate(): void {
    if (this.#state === CLOSED) return;
    this.#state = CLOSED;
    clearTimeout(this.#closeTimer);
    for (const chunk of this.#sealed) recycle(chunk);
    if (this.#buf !== null) recycle(this.#buf);
    this.#sealed = [];
    this.#buf = null;
    this.#len = 0;
    this.#queued = 0;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the other side: nothing to release.
    }
    this.#host.finished(this, this.#closeCode, this.#closeReason);
  }

  #enqueue(bytes: Uint8Array): void {
    const length = bytes.length;
    if (length > COPY_MAX) {
      this.#seal();
      this.#sealed.push(bytes);
    } else {
      this.#reserve(length);
      this.#buf!.set(bytes, this.#len);
      this.#len += length;
    }
    this.#queued += length;
    this.#schedule();
  }

  /** Registers this socket for the end-of-turn flush, unless a write in flight will pick the queue up anyway. */
  #schedule(): void {
    if (this.#writing || this.#dirty) return;
    this.#dirty = true;
    dirty.push(this);
    if (!flushScheduled) {
      flushScheduled = true;
      queueMicrotask(flushDirty);
    }
  }

  /** Starts writing what is queued, unless a write is already in flight (it picks the queue up when done). */
  flush(): void {
    this.#dirty = false;
    if (!this.#writing && this.#queued > 0 && this.#state !== CLOSED) void this.#drain();
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queued > 0) {
        this.#seal();
        const chunks = this.#sealed;
        this.#inFlight = this.#queued;
        this.#sealed = [];
        this.#queued = 0;
        for (const chunk of chunks) {
          let offset = 0;
          // A write may take fewer bytes than given: go on from where it stopped.
          while (offset < chunk.length) {
            const written = await this.#conn.write(offset === 0 ? chunk : chunk.subarray(offset));
            offset += written;
            this.#inFlight -= written;
          }
          recycle(chunk);
        }
        this.#inFlight = 0;
      }
    } catch {
      // The connection broke under a write: the read side will see it too; end it here.
      this.#inFlight = 0;
      this.terminate();
      return;
    } finally {
      this.#writing = false;
    }
    if (this.#peerClosed && this.#state === CLOSING && this.#queued === 0) this.#endWrite();
  }
}

/** What an accepted upgrade hands from the HTTP step to the socket loop: only the small things. */
interface SocketStart {
  readonly endpoint: Endpoint;
  readonly release: () => void;
  readonly ip: string;
  readonly path: string;
  readonly key: string;
  /** Bytes that arrived right after the request head (a client may send its first frame at once). */
  early: Uint8Array | undefined;
}

/** What {@linkcode serveRaw} needs. */
export interface RawServeOptions {
  /** Port to listen on (0 picks one). */
  port: number;
  /** Interface to listen on. */
  hostname: string;
  /** PEM certificate and key, to serve TLS. */
  cert?: string;
  /** PEM private key. */
  key?: string;
  /** The hub sockets join. */
  hub: Hub;
  /** Where the engine logs. */
  logger: Logger;
  /** Largest message; enforced while frames arrive (1009). */
  maxMessageBytes: number;
  /** Queue cap: a peer closed beyond it is cut off at once. */
  maxBufferedBytes: number;
  /** Idle timeout in seconds (0 is off): a ping after half of it without traffic, a close after the rest. */
  idleTimeout: number;
  /** The shared `Request → Response` handler, given an upgrade that records the decision. */
  createHandler(upgrade: (request: UpgradeRequest) => Response): (request: Request, info: ClientInfo) => Response;
}

/** A running raw-engine listener. */
export interface RawServer {
  /** The bound address. */
  readonly addr: Deno.NetAddr;
  /** Resolves when the listener has stopped and every connection has ended. */
  readonly finished: Promise<void>;
  /** Upgraded peers still connected. */
  readonly peers: ReadonlySet<RawPeer>;
  /** Closes every peer with `code`/`reason`, waits up to `timeoutMs` for them, then cuts the rest and stops. */
  shutdown(code: number, reason: string, timeoutMs: number): Promise<void>;
}

/** Starts the raw engine's listener and accept loop. */
export function serveRaw(options: RawServeOptions): RawServer {
  const { hub, logger } = options;
  const listener = options.cert !== undefined && options.key !== undefined
    ? Deno.listenTls({ port: options.port, hostname: options.hostname, cert: options.cert, key: options.key })
    : Deno.listen({ port: options.port, hostname: options.hostname });
  const addr = listener.addr as Deno.NetAddr;
  const tls = options.cert !== undefined;
  const peers = new Set<RawPeer>();
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const upgrades = new WeakMap<Response, UpgradeRequest>();
  const handler = options.createHandler((request) => {
    // A 101 cannot be built as a web `Response`: hand back a marker the transport recognises.
    const marker = new Response(null, { status: 200 });
    upgrades.set(marker, request);
    return marker;
  });
  const host: RawPeerHost = {
    logger,
    maxBufferedBytes: options.maxBufferedBytes,
    finished(peer, code, reason) {
      peers.delete(peer);
      peer.connection?.disconnect();
      peer.release?.();
      peer.release = undefined;
      hub.stats.countClose(code);
      logger.log("info", "client disconnected", { peer: peer.id, code, reason: reason || undefined });
    },
  };

  let stopping = false;
  let sweeper: ReturnType<typeof setInterval> | undefined;
  if (options.idleTimeout > 0) {
    sweeper = setInterval(() => {
      for (const peer of peers) {
        if (peer.active) {
          peer.active = false;
          peer.pinged = false;
        } else if (!peer.pinged) {
          peer.pinged = true;
          peer.ping();
        } else {
          peer.connection?.disconnect();
          peer.close(CLOSE_CODE.GoingAway, "idle timeout");
        }
      }
    }, (options.idleTimeout * 1000) / 2);
  }

  async function handleConnection(conn: Deno.Conn): Promise<void> {
    // Two steps, so that nothing of the handshake (head buffer, Request, Headers) stays reachable from the
    // long-lived socket loop: an idle connection should cost its socket and little else.
    const start = await answerHttp(conn);
    if (start !== undefined) await runSocket(conn, start);
  }

  /** Reads one request and answers it; returns what the socket needs when it is an accepted upgrade. */
  async function answerHttp(conn: Deno.Conn): Promise<SocketStart | undefined> {
    const ip = (conn.remoteAddr as Deno.NetAddr).hostname;
    let head = new Uint8Array(0);
    let parsed;
    const deadline = setTimeout(() => {
      try {
        conn.close();
      } catch { /* already closed */ }
    }, HEAD_TIMEOUT_MS);
    try {
      const buffer = new Uint8Array(4096);
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) return;
        head = concatBytes(head, buffer.subarray(0, n));
        parsed = parseRequestHead(head, { maxHeadBytes: MAX_HEAD_BYTES });
        if (parsed.kind !== "incomplete") break;
      }
    } catch {
      return; // reset or timed out during the head
    } finally {
      clearTimeout(deadline);
    }
    if (parsed.kind === "error") {
      hub.stats.countRefusal("bad_request");
      await tryWrite(conn, plainResponse(parsed.status, parsed.reason + "\n"));
      return;
    }
    let rest = head.subarray(parsed.headLength);
    const headers = parsed.headers;
    const length = headers.get("content-length");
    if (headers.has("transfer-encoding") || (length !== null && !/^\d+$/.test(length))) {
      await tryWrite(conn, plainResponse(400, "Request bodies must have a valid Content-Length\n"));
      return;
    }
    const bodyLength = length === null ? 0 : Number(length);
    if (bodyLength > MAX_BODY_BYTES) {
      await tryWrite(conn, plainResponse(413, `Request body too large: at most ${MAX_BODY_BYTES} bytes\n`));
      return;
    }
    let body: Uint8Array<ArrayBuffer> | undefined;
    if (bodyLength > 0) {
      body = new Uint8Array(bodyLength);
      body.set(rest.subarray(0, bodyLength));
      let filled = Math.min(rest.length, bodyLength);
      while (filled < bodyLength) {
        const n = await conn.read(body.subarray(filled)).catch(() => null);
        if (n === null) return;
        filled += n;
      }
      rest = rest.subarray(bodyLength);
    }
    if (parsed.version !== "1.1" && isWebSocketAttempt(headers)) {
      // Refused before the handler runs, so it is never counted as an upgrade nor takes a connection slot.
      hub.stats.countRefusal("bad_version");
      logger.log("info", "handshake refused", { status: 400, reason: "bad_version", ip });
      await tryWrite(conn, plainResponse(400, "WebSocket upgrades need HTTP/1.1\n"));
      return;
    }
    const hostHeader = headers.get("host") ?? `${options.hostname}:${addr.port}`;
    let request: Request;
    try {
      request = new Request(`${tls ? "https" : "http"}://${hostHeader}${parsed.target}`, {
        method: parsed.method,
        headers,
        body: body && parsed.method !== "GET" && parsed.method !== "HEAD" ? body : undefined,
      });
    } catch {
      await tryWrite(conn, plainResponse(400, "Invalid request target or Host header\n"));
      return;
    }
    const response = handler(request, { remoteAddr: { hostname: ip } });
    const upgrade = upgrades.get(response);
    if (upgrade === undefined) {
      const payload = parsed.method === "HEAD" ? new Uint8Array(0) : new Uint8Array(await response.arrayBuffer());
      const responseHeaders = new Headers(response.headers);
      responseHeaders.set("content-length", String(payload.length));
      responseHeaders.set("connection", "close");
      const responseHead = serializeResponseHead(response.status, responseHeaders);
      await tryWrite(conn, concatBytes(responseHead, payload));
      return;
    }
    return {
      endpoint: upgrade.endpoint,
      release: upgrade.release,
      ip,
      path: upgrade.path,
      key: headers.get("sec-websocket-key")!.trim(),
      early: rest.length > 0 ? rest.slice() : undefined,
    };
  }

  async function runSocket(conn: Deno.Conn, start: SocketStart): Promise<void> {
    const accept = await computeAcceptKey(start.key);
    const written = await tryWrite(
      conn,
      serializeResponseHead(101, [["Upgrade", "websocket"], ["Connection", "Upgrade"], [
        "Sec-WebSocket-Accept",
        accept,
      ]]),
    );
    if (!written || stopping) {
      start.release();
      return;
    }
    const peer = new RawPeer(conn, host);
    peer.release = start.release;
    peers.add(peer);
    const protocol = new ServerProtocol({
      maxMessageBytes: options.maxMessageBytes,
      onMessage: (data) => peer.connection?.receive(data),
      write: (bytes) => peer.writeControl(bytes),
      onPong: () => {
        peer.pinged = false;
      },
      onClose: (code, reason) => {
        peer.connection?.disconnect();
        peer.peerClosed(code, reason);
      },
      onError: (code, reason) => {
        if (code === CLOSE_CODE.MessageTooBig) hub.stats.dropped.too_big++;
        logger.log("warn", "closing connection: " + reason, { peer: peer.id, code });
        peer.connection?.disconnect();
        peer.peerClosed(code, reason);
      },
    });
    peer.protocol = protocol;
    peer.connection = hub.connect(peer, start.endpoint);
    logger.log("info", "client connected", { peer: peer.id, ip: start.ip, path: start.path });
    if (start.early !== undefined) {
      protocol.receive(start.early);
      start.early = undefined;
    }
    let buffer = new Uint8Array(READ_BUFFER_MIN);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        // After the close, input is read only to be dropped, so that closing never meets unread bytes (RST).
        if (protocol.closed) continue;
        peer.active = true;
        protocol.receive(buffer.subarray(0, n));
        if (n === buffer.length) {
          if (buffer.length < READ_BUFFER_MAX) buffer = new Uint8Array(buffer.length * 2);
        } else if (n < buffer.length >>> 3 && buffer.length > READ_BUFFER_MIN) {
          // The burst is over: an idle socket should not keep a large buffer pinned by its pending read.
          buffer = new Uint8Array(READ_BUFFER_MIN);
        }
      }
    } catch {
      // Reset by the peer, or closed by us (terminate): either way the connection is over.
    }
    peer.connection?.disconnect();
    peer.terminate(); // EOF: after a clean close, the end of the handshake; before it, 1006 unless we closed first
  }

  const accepting = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        break; // the listener was closed
      }
      if (stopping) {
        conn.close();
        continue;
      }
      conns.add(conn);
      const task = handleConnection(conn).catch((error) => {
        logger.log("error", "connection handler failed", { error: String(error) });
      }).finally(() => {
        conns.delete(conn);
        tasks.delete(task);
        // Plain HTTP connections end here; upgraded ones were closed by terminate().
        try {
          conn.close();
        } catch { /* already closed */ }
      });
      tasks.add(task);
    }
  })();

  let finishedResolve!: () => void;
  const finished = new Promise<void>((resolve) => finishedResolve = resolve);

  return {
    addr,
    finished,
    peers,
    async shutdown(code, reason, timeoutMs) {
      if (stopping) return await finished;
      stopping = true;
      clearInterval(sweeper);
      try {
        listener.close();
      } catch { /* already closed */ }
      await accepting;
      for (const peer of peers) peer.close(code, reason);
      const deadline = Date.now() + timeoutMs;
      while (peers.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      for (const peer of [...peers]) peer.terminate();
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* already closed */ }
      }
      await Promise.allSettled([...tasks]);
      finishedResolve();
    },
  };
}

function plainResponse(status: number, text: string): Uint8Array {
  const body = encoder.encode(text);
  const head = serializeResponseHead(status, [
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Content-Length", String(body.length)],
    ["Connection", "close"],
  ]);
  return concatBytes(head, body);
}

/** Writes all of `bytes`; false when the connection failed (the caller just ends it). */
function tryWrite(conn: Deno.Conn, bytes: Uint8Array): Promise<boolean> {
  return writeAll(conn, bytes).then(() => true, () => false);
}
