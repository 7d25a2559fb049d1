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

import { ConnectionLimiter } from "../access.ts";
import { concatBytes, GrowableBytes, writeAll } from "../bytes.ts";
import { CLOSE_CODE } from "../ws/close_code.ts";
import { encodeBinary, encodeClose, encodePing, encodeText } from "../ws/frame.ts";
import type { Handler, UpgradeRequest } from "../handler.ts";
import { isWebSocketAttempt } from "../ws/handshake.ts";
import { computeAcceptKey, findHeadEnd, parseRequestHead, serializeResponseHead } from "../ws/http1.ts";
import { splitTarget } from "../target.ts";
import { ACCEPT_BACKOFF_MAX_MS, ACCEPT_BACKOFF_MIN_MS, classifyAcceptError } from "./accept_error.ts";
import type { Connection, Endpoint, Hub } from "../hub/hub.ts";
import type { Logger } from "../log.ts";
import { type Message, nextPeerId, type Peer } from "../hub/peer.ts";
import { ServerProtocol } from "../ws/protocol.ts";

/** Largest request head accepted (431 beyond); browsers send well under 8 KiB. */
const MAX_HEAD_BYTES = 16 * 1024;
/**
 * Connections still in their HTTP request (or draining after a plain answer), at most: a burst of reconnecting clients
 * fits, while a client that opens connections and trickles (or never sends) its request runs into this cap, and each
 * such connection is cut at the handshake timeout.
 */
const MAX_PENDING = 1024;
/**
 * The same from one address: `maxConnectionsPerIp` (an address may open as many connections as it may keep), but at
 * least this many, since a connection that was just answered may still be draining when its client opens the next.
 */
const MIN_PENDING_PER_IP = 16;
/** Time a closing peer gets to answer our close frame before its connection is cut. */
const CLOSE_TIMEOUT_MS = 1_000;
/**
 * After a plain HTTP answer, how long unread request bytes (a body nobody asked for) are drained before closing:
 * closing with unread input sends a reset, which can destroy the answer before the client reads it.
 */
const LINGER_MS = 1_000;
/** Where unread request bytes are drained to: shared by every connection, since what lands in it is thrown away. */
const SINK = new Uint8Array(4096);
/** The reason for an idle-timeout close: the words `Deno.upgradeWebSocket` uses, so both engines say the same. */
export const IDLE_TIMEOUT_REASON = "No response from ping frame.";
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
const EMPTY_FRAME = new Uint8Array(0);
let cachedData: Message | undefined;
let cachedFrame: Uint8Array = EMPTY_FRAME;

function frameOf(data: Message): Uint8Array {
  if (data !== cachedData) {
    cachedFrame = typeof data === "string" ? encodeText(data) : encodeBinary(data);
    cachedData = data;
  }
  return cachedFrame;
}

/**
 * Forgets the cached frame. The hub calls this after every delivery pass (its `afterDelivery` hook): an `ArrayBuffer`
 * is mutable, so the same object sent again later may hold other bytes, and must be framed anew.
 */
export function endDeliveryPass(): void {
  cachedData = undefined;
  cachedFrame = EMPTY_FRAME;
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
  /** The read loop, paused while the output is over its cap, waiting for it to drain. */
  #writable: (() => void) | null = null;

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
   * Resolves once the output is back under `maxBufferedBytes`, or the connection is over. The read loop waits here
   * before reading more, so a client that keeps sending while it reads nothing (pings whose pongs pile up, messages
   * echoed back to it) is held back by TCP flow control: what it can pin is bounded by the cap.
   */
  writable(): Promise<void> {
    if (this.bufferedAmount <= this.#host.maxBufferedBytes || this.#state === CLOSED) return Promise.resolve();
    return new Promise((resolve) => this.#writable = resolve);
  }

  #wakeReader(): void {
    const wake = this.#writable;
    if (wake !== null && (this.bufferedAmount <= this.#host.maxBufferedBytes || this.#state === CLOSED)) {
      this.#writable = null;
      wake();
    }
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
    this.#wakeReader();
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
            if (this.#writable !== null) this.#wakeReader();
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
  readonly protocol: string | undefined;
  readonly sub: string | undefined;
  readonly opened: ((connection: Connection) => void) | undefined;
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
  /** Queue cap: a peer closed beyond it is cut off at once, and reading from a peer over it pauses. */
  maxBufferedBytes: number;
  /** Open connections allowed from one address; connections still in their request are held to it too. */
  maxConnectionsPerIp: number;
  /** Idle timeout in seconds (0 is off): a ping after half of it without traffic, a close after the rest. */
  idleTimeout: number;
  /** Seconds a connection has for its whole HTTP request and the upgrade. */
  handshakeTimeout: number;
  /** Share the port with other listeners (SO_REUSEPORT; Deno needs `--unstable-net`). @default {false} */
  reusePort?: boolean;
  /** The shared `Request → Response` handler, given an upgrade that records the decision. */
  createHandler(upgrade: (request: UpgradeRequest) => Response): Handler;
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
  const reusePort = options.reusePort === true;
  const listener = options.cert !== undefined && options.key !== undefined
    ? Deno.listenTls({
      port: options.port,
      hostname: options.hostname,
      cert: options.cert,
      key: options.key,
      reusePort,
    })
    : Deno.listen({ port: options.port, hostname: options.hostname, reusePort });
  const addr = listener.addr as Deno.NetAddr;
  const handshakeMs = options.handshakeTimeout * 1000;
  const peers = new Set<RawPeer>();
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const pending = new ConnectionLimiter({
    max: MAX_PENDING,
    maxPerIp: Math.max(MIN_PENDING_PER_IP, Math.min(options.maxConnectionsPerIp, MAX_PENDING)),
  });
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
          peer.close(CLOSE_CODE.GoingAway, IDLE_TIMEOUT_REASON);
        }
      }
    }, (options.idleTimeout * 1000) / 2);
  }

  async function handleConnection(conn: Deno.Conn, ip: string, release: () => void): Promise<void> {
    // Two steps, so that nothing of the handshake (head buffer, Request, Headers) stays reachable from the
    // long-lived socket loop: an idle connection should cost its socket and little else.
    let start: SocketStart | undefined;
    // One deadline for the whole request and the upgrade: a client that trickles its head, or never reads our answer,
    // is cut when it passes.
    const deadline = setTimeout(() => closeQuietly(conn), handshakeMs);
    try {
      const decided = await answerHttp(conn, ip);
      if (decided instanceof Uint8Array) await answer(conn, decided);
      else start = decided;
      if (start !== undefined && !(await writeUpgrade(conn, start.key, start.protocol))) {
        start.release();
        start = undefined;
      }
    } finally {
      clearTimeout(deadline);
      release();
    }
    if (start !== undefined) await runSocket(conn, start);
  }

  /**
   * Reads one request and decides: what the socket needs when it is an accepted upgrade, the bytes of a plain answer
   * otherwise (written by the caller, after this frame and its buffers are gone), or nothing when the client left.
   */
  async function answerHttp(conn: Deno.Conn, ip: string): Promise<SocketStart | Uint8Array | undefined> {
    const head = new GrowableBytes(1024);
    const buffer = new Uint8Array(READ_BUFFER_MIN);
    let parsed;
    for (let scanned = 0;;) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) return; // reset, closed at the deadline, or EOF during the head
      head.append(buffer.subarray(0, n));
      const bytes = head.view();
      // Parse only once a blank line has arrived (or the limit is passed), scanning only the new bytes.
      if (findHeadEnd(bytes, scanned - 3) < 0 && bytes.length < MAX_HEAD_BYTES) {
        scanned = bytes.length;
        continue;
      }
      scanned = bytes.length;
      parsed = parseRequestHead(bytes, { maxHeadBytes: MAX_HEAD_BYTES });
      if (parsed.kind !== "incomplete") break;
    }
    if (parsed.kind === "error") {
      hub.stats.countRefusal("bad_request");
      return plainResponse(parsed.status, parsed.reason + "\n");
    }
    const headers = parsed.headers;
    const rest = head.view().subarray(parsed.headLength);
    if (parsed.version !== "1.1" && isWebSocketAttempt(headers)) {
      // Refused before the handler runs, so it is never counted as an upgrade nor takes a connection slot.
      hub.stats.countRefusal("bad_version");
      logger.log("info", "handshake refused", { status: 400, reason: "bad_version", ip });
      return plainResponse(400, "WebSocket upgrades need HTTP/1.1\n");
    }
    const target = splitTarget(parsed.target);
    if ("error" in target) {
      return plainResponse(400, target.error + "\n");
    }
    if (headers.has("transfer-encoding")) {
      return plainResponse(411, "Send a request body with Content-Length, not Transfer-Encoding\n");
    }
    const length = headers.get("content-length");
    if (length !== null && !/^\d{1,15}$/.test(length)) {
      return plainResponse(400, "Invalid Content-Length\n");
    }
    // The request line and headers travel as they were sent, in `RouteOptions` (a fetch `Request` would upper-case
    // `get` and fold `/a/../b`). A POST's body is a stream the handler reads only if its route takes one (within the
    // same deadline); any other body is drained unread after the answer.
    const bodyLength = length === null ? 0 : Number(length);
    const request = parsed.method === "POST" && bodyLength > 0
      ? new Request("http://localhost/", { method: "POST", headers, body: bodyStream(conn, rest, bodyLength) })
      : new Request("http://localhost/", { headers });
    const response = await handler(request, { remoteAddr: { hostname: ip } }, {
      method: parsed.method,
      path: target.path,
      query: target.query,
    });
    const upgrade = upgrades.get(response);
    if (upgrade === undefined) {
      const payload = new Uint8Array(await response.arrayBuffer());
      const responseHeaders = new Headers(response.headers);
      // HEAD: the headers GET would send, Content-Length included, and no body (RFC 9110 §9.3.2).
      responseHeaders.set("content-length", String(payload.length));
      responseHeaders.set("connection", "close");
      const responseHead = serializeResponseHead(response.status, responseHeaders);
      return parsed.method === "HEAD" ? responseHead : concatBytes(responseHead, payload);
    }
    return {
      endpoint: upgrade.endpoint,
      release: upgrade.release,
      ip,
      path: upgrade.path,
      key: headers.get("sec-websocket-key")!.trim(),
      protocol: upgrade.protocol,
      sub: upgrade.sub,
      opened: upgrade.opened,
      early: rest.length > 0 ? rest.slice() : undefined,
    };
  }

  /** Sends the 101; false when the connection failed or the server is stopping. */
  async function writeUpgrade(conn: Deno.Conn, key: string, protocol: string | undefined): Promise<boolean> {
    const accept = await computeAcceptKey(key);
    const fields: [string, string][] = [
      ["Upgrade", "websocket"],
      ["Connection", "Upgrade"],
      ["Sec-WebSocket-Accept", accept],
    ];
    if (protocol !== undefined) fields.push(["Sec-WebSocket-Protocol", protocol]);
    const head = serializeResponseHead(101, fields);
    return (await tryWrite(conn, head)) && !stopping;
  }

  async function runSocket(conn: Deno.Conn, start: SocketStart): Promise<void> {
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
    start.opened?.(peer.connection);
    logger.log("info", "client connected", {
      peer: peer.id,
      ip: start.ip,
      path: start.path,
      sub: start.sub,
      protocol: start.protocol,
    });
    if (start.early !== undefined) {
      protocol.receive(start.early);
      start.early = undefined;
    }
    let buffer = new Uint8Array(READ_BUFFER_MIN);
    try {
      for (;;) {
        // Read no more from a peer whose output is over its cap until it drains (see RawPeer.writable).
        await peer.writable();
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

  /**
   * Writes a plain HTTP answer, then ends the connection without a reset: half-close, and drain what the client
   * still sends (a body no route reads) until it closes too, for at most {@linkcode LINGER_MS}.
   */
  async function answer(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
    if (!(await tryWrite(conn, bytes))) return;
    try {
      conn.closeWrite();
    } catch {
      return;
    }
    const timer = setTimeout(() => closeQuietly(conn), LINGER_MS);
    try {
      while ((await conn.read(SINK)) !== null);
    } catch {
      // Closed by the linger timer, or reset: done either way.
    } finally {
      clearTimeout(timer);
    }
  }

  function accepted(conn: Deno.Conn): void {
    const ip = (conn.remoteAddr as Deno.NetAddr).hostname;
    const slot = pending.acquire(ip);
    if (typeof slot !== "function") {
      // Too many connections still in their request: refuse at once, reading nothing.
      hub.stats.countRefusal(slot.label === "max_connections" ? "max_pending" : "max_pending_per_ip");
      void tryWrite(conn, plainResponse(503, "Too many connections waiting to send their request; retry later\n"))
        .finally(() => closeQuietly(conn));
      return;
    }
    conns.add(conn);
    const task = handleConnection(conn, ip, slot).catch((error) => {
      logger.log("error", "connection handler failed", { error: String(error) });
    }).finally(() => {
      conns.delete(conn);
      tasks.delete(task);
      // Plain HTTP connections end here; upgraded ones were closed by terminate().
      closeQuietly(conn);
    });
    tasks.add(task);
  }

  // The loop ends only when we close the listener. A client that resets before it is accepted (NotConnected) is
  // skipped; running out of file descriptors is logged once per episode and retried with a growing pause.
  const accepting = (async () => {
    let pause = 0;
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (stopping || error instanceof Deno.errors.BadResource) {
          if (!stopping) logger.log("error", "the listener was closed; no longer accepting", { error: String(error) });
          break;
        }
        const { reason, exhausted } = classifyAcceptError(error);
        hub.stats.countAcceptError(reason);
        if (!exhausted) {
          logger.log("debug", "accept failed; skipped", { reason, error: String(error) });
          continue;
        }
        if (pause === 0) logger.log("error", "cannot accept connections: out of file descriptors", { reason });
        pause = pause === 0 ? ACCEPT_BACKOFF_MIN_MS : Math.min(2 * pause, ACCEPT_BACKOFF_MAX_MS);
        await new Promise((resolve) => setTimeout(resolve, pause));
        continue;
      }
      if (pause !== 0) {
        logger.log("info", "accepting connections again");
        pause = 0;
      }
      if (stopping) {
        closeQuietly(conn);
        continue;
      }
      accepted(conn);
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
      closeQuietly(listener);
      await accepting;
      for (const peer of peers) peer.close(code, reason);
      const deadline = Date.now() + timeoutMs;
      while (peers.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      for (const peer of [...peers]) peer.terminate();
      for (const conn of conns) closeQuietly(conn);
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

/**
 * A request body of `length` bytes as a stream: first what arrived with the head (`early`), then reads from `conn`
 * as the consumer pulls, never past `length`.
 */
function bodyStream(conn: Deno.Conn, early: Uint8Array, length: number): ReadableStream<Uint8Array> {
  let first = early.subarray(0, Math.min(early.length, length));
  let remaining = length;
  // A byte stream, so the handler reads with its own small buffer straight from the connection (no buffer per
  // pending read of ours); what arrived with the head goes first.
  return new ReadableStream({
    type: "bytes",
    async pull(controller) {
      const request = controller.byobRequest;
      if (first.length > 0 || request === null || request.view === null) {
        const chunk = first.length > 0 ? first.slice() : new Uint8Array(Math.min(remaining, 4096));
        let n = chunk.length;
        if (first.length > 0) first = first.subarray(first.length);
        else {
          const read = await conn.read(chunk).catch(() => null);
          if (read === null) return controller.error(new Error("The request body ended before its Content-Length"));
          n = read;
        }
        remaining -= n;
        controller.enqueue(chunk.subarray(0, n));
      } else {
        const view = request.view;
        const target = new Uint8Array(view.buffer, view.byteOffset, Math.min(view.byteLength, remaining));
        const read = await conn.read(target).catch(() => null);
        if (read === null) return controller.error(new Error("The request body ended before its Content-Length"));
        remaining -= read;
        request.respond(read);
      }
      if (remaining === 0) {
        controller.close();
        controller.byobRequest?.respond(0);
      }
    },
    // 0: pull only when the handler reads (the default of 1 would read ahead at once, a buffer per request).
  }, { highWaterMark: 0 });
}

/** Closes a connection or listener that may already be closed. */
function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // Already closed: nothing to release.
  }
}

/** Writes all of `bytes`; false when the connection failed (the caller just ends it). */
function tryWrite(conn: Deno.Conn, bytes: Uint8Array): Promise<boolean> {
  return writeAll(conn, bytes).then(() => true, () => false);
}
