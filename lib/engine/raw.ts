/**
 * The raw engine: Hubbub's own RFC 6455 transport on `Deno.listen` / `Deno.listenTls`.
 *
 * Why it exists (see ENGINE_NOTES): `Deno.upgradeWebSocket` makes one frame and one system call per delivered
 * message. Here a broadcast is framed once, into a shared log of frames (a one-slot cache: the hub hands every member
 * the same `string` or `ArrayBuffer`; a text message relayed as it arrived is framed from its received bytes), and
 * each socket queues a slice of that log, which grows while the frames it gets are adjacent: no copy per recipient.
 * Sockets are written in passes, a slice of them per turn of the event loop, each at most once per pass with
 * everything queued until its turn, in one `conn.write`, with at most one write in flight.
 * Limits are enforced while frames arrive, and a peer that stops reading can be cut off at once.
 *
 * Plain HTTP requests on the same port go to the same `Request → Response` handler as the deno engine (one request
 * per connection, `Connection: close`).
 *
 * @module
 */

import { ConnectionLimiter } from "../access.ts";
import { BufferPool, concatBytes, GrowableBytes, writeAll } from "../bytes.ts";
import { CLOSE_CODE } from "../ws/close_code.ts";
import { encodePing, FrameLog, OPCODE } from "../ws/frame.ts";
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
/**
 * First read buffer per connection: small, since a pending read pins it for as long as the socket is idle (a chat
 * message fits; 1 KiB cost 1 KB more per idle connection); it doubles while reads fill it.
 */
const READ_BUFFER_MIN = 256;
/** Largest read buffer per connection. */
const READ_BUFFER_MAX = 256 * 1024;
/**
 * Size of the segments frames are appended to (see `FrameLog`): every frame a turn sends is encoded once into the
 * current segment, and each socket queues a slice of it. Frames over a quarter of it get a buffer of their own.
 */
const SEGMENT_BYTES = 64 * 1024;
/**
 * A socket's queued slice of a segment shorter than this is copied out of it when the socket's next frame is not
 * adjacent (another room's frames came between) and other chunks already wait, so that a socket never pins many
 * segments for a few bytes of each.
 */
const SLICE_KEEP_MIN = SEGMENT_BYTES / 4;
/** Size of the pooled private output buffers, used when a socket's frames are not adjacent in the log. */
const OUT_BUFFER_BYTES = 16 * 1024;
/** Frames up to this size are copied into a private output buffer; larger ones are queued as slices, uncopied. */
const COPY_MAX = 8 * 1024;
/** Private output buffers kept for reuse (at most 4 MiB), so idle sockets hold none. */
const POOL_MAX = 256;

const encoder = new TextEncoder();

const log = new FrameLog({ segmentBytes: SEGMENT_BYTES });
const pool = new BufferPool({ bufferBytes: OUT_BUFFER_BYTES, maxKept: POOL_MAX });

// One-slot frame cache: during a fan-out the hub hands every member the same object, so it is framed once, and every
// member queues the same bytes, `cachedBytes[cachedStart, cachedEnd)`.
let cachedData: Message | undefined;
let cachedBytes: Uint8Array = new Uint8Array(0);
let cachedStart = 0;
let cachedEnd = 0;

function cacheFrame(data: Message): void {
  if (typeof data === "string") log.appendText(data);
  else log.appendFrame(OPCODE.Binary, new Uint8Array(data));
  cachedData = data;
  cachedBytes = log.bytes;
  cachedStart = log.start;
  cachedEnd = log.end;
}

/**
 * Frames a text message from the bytes it arrived as, so that relaying it unchanged copies bytes rather than encoding
 * the string again: the hub will hand this very string to every recipient.
 */
function cacheReceivedText(text: string, bytes: Uint8Array, start: number, end: number): void {
  log.appendFrame(OPCODE.Text, bytes, start, end);
  cachedData = text;
  cachedBytes = log.bytes;
  cachedStart = log.start;
  cachedEnd = log.end;
}

/**
 * Forgets the cached frame. The hub calls this after every delivery pass (its `afterDelivery` hook): an `ArrayBuffer`
 * is mutable, so the same object sent again later may hold other bytes, and must be framed anew.
 */
export function endDeliveryPass(): void {
  cachedData = undefined;
}

/**
 * Sockets written per turn of the event loop, at most. Deno performs an operation at once only while the turn's budget
 * lasts (tokio's, 128 operations); past it, a write waits in a queue for later turns and costs ~30% more CPU. So a
 * fan-out to many sockets is written in slices, one per turn, as uWebSockets writes one loop iteration at a time.
 */
const WRITE_SLICE = 100;

// Writes go out in passes over the sockets with bytes queued, a slice per turn, each socket at most once per pass with
// everything it got until its turn came. A socket that gets bytes while out of the pass joins its end; one written
// already waits for the next pass, which keeps this one's order. Without passes, the sockets whose writes Deno happens
// to perform first in a turn are written again first, ever more often than the rest (1.75× at 1,000 subscribers):
// their clients, senders among them, get their copies sooner and send again before the others drained, whose queues
// grow (p99 ×3, with spikes to 400 ms).
let pass: RawPeer[] = [];
let passHead = 0;
let passId = 0;
let pumping = false;

/** Adds `peer` to the end of the current pass, starting passes if none are under way. */
function joinPass(peer: RawPeer): void {
  pass.push(peer);
  if (!pumping) {
    pumping = true;
    queueMicrotask(pump);
  }
}

/** Writes the next slice of the pass, or starts the next pass when this one is done; goes on at the next turn. */
function pump(): void {
  if (passHead === pass.length) {
    const next: RawPeer[] = [];
    passId++;
    // Senders first, so that their copy, which is what lets them send again, comes back while the pass still has
    // most sockets to write: their next messages then reach those in this pass instead of waiting for a new one.
    for (const peer of pass) if (peer.sent && peer.nextPass(passId)) next.push(peer);
    for (const peer of pass) if (peer.nextPass(passId)) next.push(peer);
    pass = next;
    passHead = 0;
    if (next.length === 0) {
      pumping = false;
      return;
    }
  }
  const end = Math.min(pass.length, passHead + WRITE_SLICE);
  while (passHead < end) pass[passHead++].flush();
  setImmediate(pump);
}

const OPEN = 0;
const CLOSING = 1;
const CLOSED = 2;

/** What a {@linkcode RawPeer} reports back to its engine. */
interface RawPeerHost {
  readonly logger: Logger;
  readonly maxBufferedBytes: number;
  finished(peer: RawPeer, code: number, reason: string): void;
  /** Makes the protocol state machine of `peer`, whose callbacks act on it. */
  createProtocol(peer: RawPeer): ServerProtocol;
  /** A peer's read loop is over (its connection is closed). */
  readingEnded(): void;
}

/** One connection of the raw engine, as a {@linkcode Peer}: an output queue with at most one write in flight. */
export class RawPeer implements Peer {
  /** Process-unique id. */
  readonly id: number = nextPeerId();
  /** The hub's handle, set once the peer has joined. */
  connection: Connection | undefined;
  /** Whether a message arrived from this socket since its last pass of writes began (it goes first in the next). */
  sent = false;
  /** Whether anything arrived since the idle sweep last looked. */
  active = true;
  /** Whether the idle sweep sent a ping that is still unanswered. */
  pinged = false;
  /**
   * The connection's protocol state machine, made when the first bytes arrive or we close: a client that never sends
   * anything (most idle members of a room) costs none (~0.5 KB with its callbacks).
   */
  #protocol: ServerProtocol | null = null;
  /** Frees the connection's limiter slot; called once when the connection ends. */
  release: (() => void) | undefined;
  readonly #conn: Deno.Conn;
  readonly #host: RawPeerHost;
  /** Chunks ready to write before the end of the queue, in order: filled private buffers and slices (rarely any). */
  #sealed: Uint8Array[] | null = null;
  /**
   * The end of the queue, after `#sealed`: at most one of a slice of shared frame bytes that grows while the frames
   * this socket gets are adjacent (`#slice[#sliceStart, #sliceEnd)`), or a private buffer being filled (`#buf`, `#len`
   * bytes used) once they are not. Neither while idle.
   */
  #slice: Uint8Array | null = null;
  #sliceStart = 0;
  #sliceEnd = 0;
  #buf: Uint8Array | null = null;
  #len = 0;
  /** Bytes in `#sealed`, the slice and `#buf`. */
  #queued = 0;
  #inFlight = 0;
  #writing = false;
  /** The chunk being written, how much of it is written, and how many chunks of this turn's batch are left. */
  #chunk: Uint8Array | null = null;
  #offset = 0;
  #batch = 0;
  /** The callback of every write (made on the first: a socket never written to costs none). */
  #onWritten: ((written: number | Error) => void) | null = null;
  /** Whether this socket has bytes waiting for its turn in a pass. */
  #waiting = false;
  #state = OPEN;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  /** The code this side closed with, reported when the peer itself sent none. */
  #closeCode: number = CLOSE_CODE.Abnormal;
  #closeReason = "";
  /** Set when the closing handshake is done on our side: once flushed, the write side ends. */
  #peerClosed = false;
  /** The read buffer: small while idle (a pending read pins it), doubled while reads fill it. */
  #buffer: Uint8Array = new Uint8Array(READ_BUFFER_MIN);
  /** Whether reading is paused while the output is over its cap (see {@linkcode RawPeer.#readNext}). */
  #readPaused = false;
  /** Whether the read loop is over (EOF, reset, or closed by us). */
  #readEnded = false;

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

  /** Starts the read loop, after `early` (bytes that came with the request head), if any. */
  startReading(early: Uint8Array | undefined): void {
    if (early !== undefined && !this.#receive(early)) return;
    this.#readNext();
  }

  /**
   * Reads the next chunk, unless the output is over `maxBufferedBytes`: then reading waits until it drains (or the
   * connection is over), so a client that keeps sending while it reads nothing (pings whose pongs pile up, messages
   * echoed back to it) is held back by TCP flow control: what it can pin is bounded by the cap.
   */
  #readNext(): void {
    if (this.#state === CLOSED) {
      this.#endReading();
      return;
    }
    if (this.bufferedAmount > this.#host.maxBufferedBytes) {
      this.#readPaused = true;
      return;
    }
    // Plain callbacks rather than an async loop: an idle connection then holds one pending read and nothing else.
    this.#conn.read(this.#buffer).then(this.#onRead, this.#onRead);
  }

  /** A read's outcome: bytes read, EOF, or (rejected) reset by the peer or closed by us; one callback for both. */
  readonly #onRead = (n: number | null | Error): void => {
    if (typeof n !== "number") {
      this.#endReading();
      return;
    }
    const buffer = this.#buffer;
    if (!this.#receive(buffer.subarray(0, n))) return;
    if (n === buffer.length) {
      if (n < READ_BUFFER_MAX) this.#buffer = new Uint8Array(2 * n);
    } else if (n < buffer.length >>> 3 && buffer.length > READ_BUFFER_MIN) {
      // The burst is over: an idle socket should not keep a large buffer pinned by its pending read.
      this.#buffer = new Uint8Array(READ_BUFFER_MIN);
    }
    this.#readNext();
  };

  /** Feeds `chunk` to the protocol; false when that failed and the connection is over. */
  #receive(chunk: Uint8Array): boolean {
    const protocol = this.#protocol ??= this.#host.createProtocol(this);
    // After the close, input is read only to be dropped, so that closing never meets unread bytes (RST).
    if (protocol.closed) return true;
    this.active = true;
    try {
      protocol.receive(chunk);
      return true;
    } catch {
      // A callback threw (the protocol's own failures are reported, not thrown): end the connection, as a broken read.
      this.#endReading();
      return false;
    }
  }

  /** EOF: after a clean close, the end of the handshake; before it, 1006 unless we closed first. */
  #endReading(): void {
    if (this.#readEnded) return;
    this.#readEnded = true;
    this.connection?.disconnect();
    this.terminate();
    this.#host.readingEnded();
  }

  #wakeReader(): void {
    if (this.#readPaused && (this.bufferedAmount <= this.#host.maxBufferedBytes || this.#state === CLOSED)) {
      this.#readPaused = false;
      this.#readNext();
    }
  }

  /**
   * Queues one message. It is framed once per distinct message however many peers it goes to (the frame cache), and
   * this socket queues the frame's bytes: it extends the slice it already queued when the frame comes right after it
   * in the log, as every frame of a room's fan-out does for its members, so a broadcast costs no copy per recipient.
   */
  send(data: Message): void {
    if (this.#state !== OPEN) return;
    if (data !== cachedData) cacheFrame(data);
    this.#push(cachedBytes, cachedStart, cachedEnd);
  }

  /** Queues `bytes[start, end)`, which must never change afterwards (frame log bytes, or a frame of its own). */
  #push(bytes: Uint8Array, start: number, end: number): void {
    if (this.#slice === bytes && this.#sliceEnd === start) this.#sliceEnd = end;
    else this.#pushApart(bytes, start, end);
    this.#queued += end - start;
    this.#schedule();
  }

  /** {@linkcode RawPeer.#push} for a frame that does not extend the queued slice. */
  #pushApart(bytes: Uint8Array, start: number, end: number): void {
    const slice = this.#slice;
    if (slice !== null) {
      this.#slice = null;
      // Keep the slice when it is long, or when nothing else waits: a full segment ended it, and a copy for each of a
      // room's members would cost more than their second write. A short one behind other chunks is copied out, so a
      // socket that is not being written to never pins more than a few segments for a few bytes each.
      if (!this.#sealed?.length || this.#sliceEnd - this.#sliceStart >= SLICE_KEEP_MIN) {
        (this.#sealed ??= []).push(slice.subarray(this.#sliceStart, this.#sliceEnd));
      } else {
        this.#copy(slice, this.#sliceStart, this.#sliceEnd);
      }
    }
    if (this.#buf !== null && end - start <= COPY_MAX) {
      this.#copy(bytes, start, end);
      return;
    }
    this.#seal();
    this.#slice = bytes;
    this.#sliceStart = start;
    this.#sliceEnd = end;
  }

  /** Copies `bytes[start, end)` (at most {@linkcode OUT_BUFFER_BYTES}) into the private buffer. */
  #copy(bytes: Uint8Array, start: number, end: number): void {
    const length = end - start;
    let buf = this.#buf;
    if (buf === null || this.#len + length > buf.length) {
      this.#seal();
      this.#buf = buf = pool.take();
    }
    const at = this.#len;
    if (length <= 64) { for (let i = 0; i < length; i++) buf[at + i] = bytes[start + i]; }
    else buf.set(bytes.subarray(start, end), at);
    this.#len = at + length;
  }

  /** Moves the end of the queue (the slice or the private buffer) to the chunks ready to write. */
  #seal(): void {
    const tail = this.#takeTail();
    if (tail !== undefined) (this.#sealed ??= []).push(tail);
  }

  /** Takes the end of the queue (the slice or the private buffer) as one chunk; undefined when it holds nothing. */
  #takeTail(): Uint8Array | undefined {
    const slice = this.#slice;
    if (slice !== null) {
      this.#slice = null;
      return slice.subarray(this.#sliceStart, this.#sliceEnd);
    }
    const buf = this.#buf;
    if (buf === null) return undefined;
    const length = this.#len;
    this.#buf = null;
    this.#len = 0;
    if (length > 0) return buf.subarray(0, length);
    pool.give(buf);
    return undefined;
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
    (this.#protocol ??= this.#host.createProtocol(this)).close(code, reason);
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
    for (const chunk of this.#sealed ?? []) pool.give(chunk);
    if (this.#buf !== null) pool.give(this.#buf);
    this.#sealed = null;
    this.#slice = null;
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

  /** Queues a frame of its own (control frames). */
  #enqueue(frame: Uint8Array): void {
    this.#push(frame, 0, frame.length);
  }

  /** The pass this socket was last put in. */
  #pass = -1;

  /** Puts this socket in line for its turn in a pass of writes, unless it is in line already or writing. */
  #schedule(): void {
    if (this.#writing || this.#waiting) return;
    this.#waiting = true;
    // Written in this pass already: the next pass takes it in the same place. Otherwise it joins this pass.
    if (this.#pass !== passId) {
      this.#pass = passId;
      joinPass(this);
    }
  }

  /** Whether this socket goes in pass `id` (it has bytes waiting); if so, it is now in it. */
  nextPass(id: number): boolean {
    if (!this.#waiting || this.#pass === id || this.#state === CLOSED) return false;
    this.#pass = id;
    this.sent = false;
    return true;
  }

  /** Writes what is queued: its turn in the pass has come. Whatever comes meanwhile waits for the next pass. */
  flush(): void {
    this.#waiting = false;
    if (this.#writing || this.#queued === 0 || this.#state === CLOSED) return;
    this.#writing = true;
    const sealed = this.#sealed;
    if (!sealed?.length) {
      // Nearly always: one slice of the frame log, or one private buffer.
      this.#batch = 1;
      this.#writeChunk(this.#takeTail()!);
      return;
    }
    this.#seal();
    this.#batch = sealed.length;
    this.#writeChunk(sealed.shift()!);
  }

  /** Starts writing `chunk`, the next of the batch (plain callbacks: this runs for every socket of every pass). */
  #writeChunk(chunk: Uint8Array): void {
    this.#chunk = chunk;
    this.#offset = 0;
    this.#queued -= chunk.length;
    this.#inFlight = chunk.length;
    const done = this.#onWritten ??= (written) => this.#written(written);
    this.#conn.write(chunk).then(done, done);
  }

  /** A write's outcome: bytes written, or (rejected) the connection broke; one callback for both. */
  #written(written: number | Error): void {
    if (typeof written !== "number") {
      // The connection broke under a write: the read side will see it too; end it here.
      this.#inFlight = 0;
      this.#writing = false;
      this.#chunk = null;
      this.terminate();
      return;
    }
    const chunk = this.#chunk!;
    this.#offset += written;
    this.#inFlight -= written;
    if (this.#readPaused) this.#wakeReader();
    if (this.#state === CLOSED) {
      // Terminated meanwhile: its queue is gone.
      this.#writing = false;
      this.#chunk = null;
      return;
    }
    if (this.#offset < chunk.length) {
      // A write may take fewer bytes than given: go on from where it stopped.
      this.#conn.write(chunk.subarray(this.#offset)).then(this.#onWritten!, this.#onWritten!);
      return;
    }
    pool.give(chunk);
    this.#chunk = null;
    if (--this.#batch > 0) {
      this.#writeChunk(this.#sealed!.shift()!);
      return;
    }
    this.#writing = false;
    if (this.#queued > 0) this.#schedule();
    else if (this.#peerClosed && this.#state === CLOSING) this.#endWrite();
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
  /** Read loops still running, and what waits for them to end (shutdown). */
  let liveSockets = 0;
  let socketsEnded: (() => void) | undefined;
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
    createProtocol(peer) {
      return new ServerProtocol({
        maxMessageBytes: options.maxMessageBytes,
        onMessage: (data, bytes, start, end) => {
          const connection = peer.connection;
          if (connection === undefined) return;
          peer.sent = true;
          if (bytes !== undefined) cacheReceivedText(data as string, bytes, start!, end!);
          connection.receive(data);
        },
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
    },
    readingEnded() {
      if (--liveSockets === 0) socketsEnded?.();
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

  /**
   * Reads the request and answers it; returns true when the connection was upgraded and its socket started. The
   * handshake ends here, so that nothing of it (head buffer, Request, Headers, its deadline) stays reachable from the
   * long-lived socket: an idle connection should cost its socket and little else.
   */
  async function handshake(conn: Deno.Conn, ip: string, release: () => void): Promise<boolean> {
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
    if (start === undefined) return false;
    startSocket(conn, start);
    return true;
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
    const accept = computeAcceptKey(key);
    const fields: [string, string][] = [
      ["Upgrade", "websocket"],
      ["Connection", "Upgrade"],
      ["Sec-WebSocket-Accept", accept],
    ];
    if (protocol !== undefined) fields.push(["Sec-WebSocket-Protocol", protocol]);
    const head = serializeResponseHead(101, fields);
    return (await tryWrite(conn, head)) && !stopping;
  }

  function startSocket(conn: Deno.Conn, start: SocketStart): void {
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
    const peer = new RawPeer(conn, host);
    peer.release = start.release;
    peers.add(peer);
    peer.connection = hub.connect(peer, start.endpoint);
    start.opened?.(peer.connection);
    logger.log("info", "client connected", {
      peer: peer.id,
      ip: start.ip,
      path: start.path,
      sub: start.sub,
      protocol: start.protocol,
    });
    liveSockets++;
    peer.startReading(start.early);
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
    const task = handshake(conn, ip, slot).catch((error) => {
      logger.log("error", "connection handler failed", { error: String(error) });
      return false;
    }).then((upgraded) => {
      conns.delete(conn);
      tasks.delete(task);
      // Plain HTTP connections end here; upgraded ones belong to their peer, which closes them.
      if (!upgraded) closeQuietly(conn);
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
      // Every read loop has seen its connection closed (its pending read settled), so no operation is left behind.
      if (liveSockets > 0) await new Promise<void>((resolve) => socketsEnded = resolve);
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
