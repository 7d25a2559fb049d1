/**
 * Reconnecting with recovery, for `hubbub client --reconnect`: a {@linkcode ReconnectingClient} wraps the open
 * connection, and when it drops unexpectedly opens a new one after a backoff, asking a Hubbub room for what was missed
 * with `?since=<offset>&epoch=<epoch>`.
 *
 * The offsets come from the `hubbub.v1` envelope (README "History and recovery"): the caller offers that subprotocol,
 * and this module unwraps each envelope back into the message it carries, so the caller sees what it would see
 * without it. A connection whose server did not answer with a `joined` frame first (another server, an echo
 * endpoint) is passed through as it is, and reconnects without recovery.
 *
 * @module
 */

import type { EnvelopeJoined, EnvelopeMessage } from "../hub/envelope.ts";
import type { Message } from "../hub/peer.ts";
import { CLOSE_CODE } from "../ws/close_code.ts";
import { HUBBUB_PROTOCOL } from "../ws/subprotocol.ts";
import { type WebSocketClient, type WebSocketClosed, WebSocketHandshakeError } from "./ws_client.ts";

/** The backoff's bounds. */
export const RECONNECT_DEFAULTS = {
  // A quarter second: a blip (a proxy restart, a cell handover) is over by then, and a person hardly notices the wait.
  minDelayMs: 250,
  // Ten seconds: a long outage is retried six times a minute, so a thousand clients come back at 100 per second
  // rather than at once, and nobody waits more than ten seconds once the server is back.
  maxDelayMs: 10_000,
} as const;

/**
 * Closes after which a reconnect may succeed: the server went away or restarted (1001, 1012), the connection dropped
 * (1006), the server failed or is overloaded (1011, 1013: a slow consumer recovers what it missed), a gateway failed
 * (1014). Any other code is the server's decision (1000, 1008 not allowed, 1009 too big, 3000 token expired).
 */
const RETRY_CODES: ReadonlySet<number> = new Set([
  CLOSE_CODE.GoingAway,
  CLOSE_CODE.Abnormal,
  CLOSE_CODE.InternalError,
  CLOSE_CODE.ServiceRestart,
  CLOSE_CODE.TryAgainLater,
  CLOSE_CODE.BadGateway,
]);

/** A room position: the offset of the last message received and the epoch it belongs to. */
export interface Position {
  /** The offset of the last message received (or the room's latest when it joined). */
  offset: number;
  /** The run of offsets it belongs to. */
  epoch: string;
}

/**
 * The delay before reconnect attempt `attempt` (0 for the first): `minDelayMs` doubled per attempt up to
 * `maxDelayMs`, then a random point in its upper half ("equal jitter"), so clients dropped together do not all come
 * back in the same millisecond.
 *
 * @example
 * ```ts
 * import { backoffDelay } from "./reconnect.ts";
 * import assert from "node:assert/strict";
 * assert.equal(backoffDelay(0, { random: () => 1 }), 250);
 * assert.equal(backoffDelay(0, { random: () => 0 }), 125);
 * assert.equal(backoffDelay(3, { random: () => 1 }), 2000);
 * assert.equal(backoffDelay(20, { random: () => 1 }), 10_000);
 * ```
 */
export function backoffDelay(
  attempt: number,
  options: { minDelayMs?: number; maxDelayMs?: number; random?: () => number } = {},
): number {
  const min = options.minDelayMs ?? RECONNECT_DEFAULTS.minDelayMs;
  const max = options.maxDelayMs ?? RECONNECT_DEFAULTS.maxDelayMs;
  const ceiling = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return ceiling / 2 + (options.random ?? Math.random)() * ceiling / 2;
}

/**
 * The URL to reconnect to: `url` asking for every message after `position` (`since` and `epoch`), or for nothing
 * without one. A `replay` in `url` is dropped: what it replayed was shown already.
 *
 * @example
 * ```ts
 * import { recoveryUrl } from "./reconnect.ts";
 * import assert from "node:assert/strict";
 * assert.equal(
 *   recoveryUrl("ws://h/rooms/a?token=t&replay=5", { offset: 41, epoch: "9f2c" }),
 *   "ws://h/rooms/a?token=t&since=41&epoch=9f2c",
 * );
 * assert.equal(recoveryUrl("ws://h/rooms/a?replay=5", undefined), "ws://h/rooms/a");
 * ```
 */
export function recoveryUrl(url: string, position: Position | undefined): string {
  const target = new URL(url);
  for (const name of ["replay", "since", "epoch"]) target.searchParams.delete(name);
  if (position !== undefined) {
    target.searchParams.set("since", String(position.offset));
    target.searchParams.set("epoch", position.epoch);
  }
  return target.href;
}

/** An envelope frame this module acts on; presence frames and anything newer are `other`. */
export type EnvelopeFrame = EnvelopeJoined | EnvelopeMessage | { type: "other" };

/**
 * Parses one `hubbub.v1` frame, or returns `undefined` when `text` is not one (then it is a plain message).
 *
 * @example
 * ```ts
 * import { parseEnvelope } from "./reconnect.ts";
 * import assert from "node:assert/strict";
 * assert.equal(parseEnvelope('{"type":"message","room":"a","offset":3,"epoch":"e","data":"hi"}')?.type, "message");
 * assert.equal(parseEnvelope("hi"), undefined);
 * assert.equal(parseEnvelope('{"type":"joined"}'), undefined, "a joined frame has an offset and an epoch");
 * ```
 */
export function parseEnvelope(text: string): EnvelopeFrame | undefined {
  if (!text.startsWith("{")) return undefined;
  let frame: Record<string, unknown>;
  try {
    frame = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof frame !== "object" || frame === null || typeof frame.type !== "string") return undefined;
  const positioned = Number.isSafeInteger(frame.offset) && typeof frame.epoch === "string";
  if (frame.type === "joined") {
    return positioned && typeof frame.recovered === "boolean" && Number.isSafeInteger(frame.missed)
      ? frame as unknown as EnvelopeJoined
      : undefined;
  }
  if (frame.type === "message") {
    return positioned && (typeof frame.data === "string" || typeof frame.binary === "string")
      ? frame as unknown as EnvelopeMessage
      : undefined;
  }
  return { type: "other" };
}

/** The message an envelope carries: its text, or its bytes from base64. */
export function unwrapMessage(frame: EnvelopeMessage): Message {
  if ("data" in frame) return frame.data;
  const binary = atob(frame.binary);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

/** What a reconnect's `joined` frame says about the messages sent while the client was away. */
export type Recovery = { recovered: true; missed: number } | { recovered: false; missed?: number };

/**
 * Reads a reconnect's `joined` frame. With `since` asked, the server says whether it delivered everything after it.
 * Without (the server keeps no history), the offsets tell: the same epoch and the same latest offset as before means
 * nothing was missed; anything else, that something was lost.
 *
 * @example
 * ```ts
 * import { readRecovery } from "./reconnect.ts";
 * import assert from "node:assert/strict";
 * const joined = { type: "joined", room: "a", offset: 45, epoch: "e", recovered: true, missed: 4 } as const;
 * assert.deepEqual(readRecovery(joined, true, { offset: 41, epoch: "e" }), { recovered: true, missed: 4 });
 * assert.deepEqual(readRecovery({ ...joined, recovered: false, missed: 0 }, false, { offset: 41, epoch: "e" }), {
 *   recovered: false,
 *   missed: 4,
 * });
 * ```
 */
export function readRecovery(joined: EnvelopeJoined, askedSince: boolean, before: Position | undefined): Recovery {
  if (askedSince) return joined.recovered ? { recovered: true, missed: joined.missed } : lost(joined.missed);
  if (before === undefined || before.epoch !== joined.epoch) return { recovered: false };
  const missed = joined.offset - before.offset;
  return missed === 0 ? { recovered: true, missed: 0 } : lost(missed);
}

function lost(missed: number): Recovery {
  return missed > 0 ? { recovered: false, missed } : { recovered: false };
}

/**
 * One line for a recovery: "recovered N missed messages" or "some messages were lost".
 *
 * @example
 * ```ts
 * import { describeRecovery } from "./reconnect.ts";
 * import assert from "node:assert/strict";
 * assert.equal(describeRecovery({ recovered: true, missed: 1 }), "recovered 1 missed message");
 * assert.equal(describeRecovery({ recovered: false, missed: 26 }), "some messages were lost (26 missed)");
 * ```
 */
export function describeRecovery(recovery: Recovery): string {
  const { missed } = recovery;
  if (recovery.recovered) return `recovered ${missed} missed message${missed === 1 ? "" : "s"}`;
  return missed === undefined ? "some messages were lost" : `some messages were lost (${missed} missed)`;
}

/** What a {@linkcode ReconnectingClient} reports while it keeps the connection up. */
export type ReconnectEvent =
  /** The connection dropped; the next attempt is in `delayMs`. */
  | { type: "dropped"; closed: WebSocketClosed; delayMs: number }
  /** An attempt failed with `error`; the next one is in `delayMs`. */
  | { type: "retrying"; error: Error; delayMs: number }
  /** A new connection is open to `url` (what it recovered follows as a `recovery` event, from a Hubbub room). */
  | { type: "reconnected"; url: string }
  /** What the new connection's `joined` frame said about the messages missed meanwhile. */
  | { type: "recovery"; recovery: Recovery };

/** How a {@linkcode ReconnectingClient} ended: the close that was not retried, or the refusal that stopped it. */
export interface ReconnectClosed extends WebSocketClosed {
  /** The handshake refusal (an HTTP 4xx, an invalid 101) that ended the reconnecting, if that is what did. */
  refused?: Error;
}

/** The state of a {@linkcode ReconnectingClient}. */
export type ReconnectState = "open" | "reconnecting" | "closing" | "closed";

/** Options for {@linkcode ReconnectingClient}. */
export interface ReconnectOptions {
  /** Opens one connection to `url` with the caller's headers, subprotocols (`hubbub.v1` first) and certificates. */
  open: (url: string, signal: AbortSignal) => Promise<WebSocketClient>;
  /** The first delay, doubled per failed attempt. @default {250} */
  minDelayMs?: number;
  /** The longest delay. @default {10000} */
  maxDelayMs?: number;
  /** The jitter's source, in [0, 1). @default {Math.random} */
  random?: () => number;
}

/**
 * An open connection that reconnects after an unexpected close (1001, 1006, 1011–1014), with a backoff, and
 * recovers what it missed from a Hubbub room. It gives up on a close the server meant (1000, 1008 …) and on a refused
 * handshake (HTTP 4xx); a refusal of `since` itself (400: the server now keeps no history) is retried without it.
 */
export class ReconnectingClient {
  /** Called with each message, unwrapped from its envelope: text as a `string`, binary as an `ArrayBuffer`. */
  onmessage: ((data: Message) => void) | null = null;
  /** Called with what happens while reconnecting. */
  onevent: ((event: ReconnectEvent) => void) | null = null;
  /** Resolves once it stopped for good: closed by us, by the server for good, or refused; never rejects. */
  readonly closed: Promise<ReconnectClosed>;
  /** The URL given, without the `since` of later connections. */
  readonly url: string;

  readonly #options: ReconnectOptions;
  #resolveClosed!: (closed: ReconnectClosed) => void;
  #socket: WebSocketClient;
  #state: ReconnectState = "open";
  /** Whether the current connection speaks the envelope: unknown until its first frame. */
  #envelope: boolean | undefined;
  /** Whether the current connection asked for `since` (`undefined` for the first connection). */
  #askedSince: boolean | undefined;
  #position: Position | undefined;
  /** Set when a `since` was refused: the server keeps no history, so later attempts ask for none. */
  #noHistory = false;
  #attempt = 0;
  #lastClose: WebSocketClosed | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #abort: AbortController | undefined;
  #opening: Promise<void> | undefined;

  /** Takes over `first`, an open connection made with `options.open`'s settings; set the handlers right after. */
  constructor(first: WebSocketClient, options: ReconnectOptions) {
    this.#options = options;
    this.url = first.url;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.#socket = first;
    this.#adopt(first, undefined);
  }

  /** `open`, `reconnecting` between connections, `closing` once {@linkcode close} was called, then `closed`. */
  get readyState(): ReconnectState {
    return this.#state;
  }

  /** The subprotocol of the current connection. */
  get protocol(): string {
    return this.#socket.protocol;
  }

  /** Bytes queued on the current connection. */
  get bufferedAmount(): number {
    return this.#state === "open" ? this.#socket.bufferedAmount : 0;
  }

  /** Sends on the current connection; dropped unless open, as the WebSocket API does. */
  send(data: string | ArrayBuffer | ArrayBufferView): void {
    if (this.#state === "open") this.#socket.send(data);
  }

  /** Pings on the current connection; rejects while reconnecting. */
  ping(payload?: string | Uint8Array): Promise<number> {
    if (this.#state !== "open") return Promise.reject(new Error(`Cannot ping: the connection is ${this.#state}`));
    return this.#socket.ping(payload);
  }

  /** Closes the connection, or stops reconnecting, for good. */
  close(code: number = CLOSE_CODE.Normal, reason = ""): void {
    if (this.#state === "open") {
      this.#state = "closing";
      this.#socket.close(code, reason);
    } else if (this.#state === "reconnecting") {
      this.#state = "closing";
      clearTimeout(this.#timer);
      this.#abort?.abort(new Error("Closed while reconnecting"));
      // Nothing is open: the close the caller asked for is the one reported, once any attempt has let go.
      void (this.#opening ?? Promise.resolve()).then(() => this.#finish({ code, reason, wasClean: true }));
    }
  }

  #adopt(socket: WebSocketClient, askedSince: boolean | undefined): void {
    this.#socket = socket;
    this.#askedSince = askedSince;
    this.#envelope = socket.protocol === HUBBUB_PROTOCOL ? undefined : false;
    socket.onmessage = (data) => this.#receive(data);
    void socket.closed.then((closed) => this.#dropped(socket, closed));
  }

  #receive(data: Message): void {
    if (this.#envelope === false || typeof data !== "string") {
      this.#envelope = false;
      return this.onmessage?.(data);
    }
    const frame = parseEnvelope(data);
    if (this.#envelope === undefined) {
      // A Hubbub room says `joined` first; anything else (an echo endpoint, another server) is not an envelope.
      this.#envelope = frame?.type === "joined";
      if (!this.#envelope) return this.onmessage?.(data);
    }
    if (frame === undefined) return this.onmessage?.(data);
    if (frame.type === "joined") return this.#joined(frame);
    if (frame.type !== "message") return;
    this.#position = { offset: frame.offset, epoch: frame.epoch };
    this.onmessage?.(unwrapMessage(frame));
  }

  #joined(joined: EnvelopeJoined): void {
    if (this.#askedSince !== undefined) {
      this.onevent?.({ type: "recovery", recovery: readRecovery(joined, this.#askedSince, this.#position) });
    }
    // A recovery's messages follow and move the position on; otherwise live messages start after the room's latest.
    if (!(this.#askedSince && joined.recovered)) this.#position = { offset: joined.offset, epoch: joined.epoch };
  }

  #dropped(socket: WebSocketClient, closed: WebSocketClosed): void {
    if (socket !== this.#socket) return;
    if (this.#state !== "open" || !RETRY_CODES.has(closed.code)) return this.#finish(closed);
    this.#lastClose = closed;
    this.#state = "reconnecting";
    this.#schedule((delayMs) => ({ type: "dropped", closed, delayMs }));
  }

  #schedule(event: (delayMs: number) => ReconnectEvent): void {
    const delayMs = backoffDelay(this.#attempt++, this.#options);
    this.onevent?.(event(delayMs));
    this.#timer = setTimeout(() => this.#opening = this.#reconnect().finally(() => this.#opening = undefined), delayMs);
  }

  async #reconnect(): Promise<void> {
    const since = this.#noHistory ? undefined : this.#position;
    const url = recoveryUrl(this.url, since);
    const abort = this.#abort = new AbortController();
    let socket: WebSocketClient;
    try {
      socket = await this.#options.open(url, abort.signal);
    } catch (error) {
      if (this.#state !== "reconnecting") return;
      const status = error instanceof WebSocketHandshakeError ? error.status : undefined;
      if (status === 400 && since !== undefined) {
        this.#noHistory = true;
      } else if (status !== undefined && status < 500 && status !== 408 && status !== 429) {
        return this.#finish({ ...this.#lastClose!, refused: error as Error });
      }
      return this.#schedule((delayMs) => ({ type: "retrying", error: error as Error, delayMs }));
    } finally {
      this.#abort = undefined;
    }
    if (this.#state !== "reconnecting") {
      // Closed while the handshake ran: let the new connection go at once.
      socket.close();
      await socket.closed;
      return;
    }
    this.#attempt = 0;
    this.#state = "open";
    this.#adopt(socket, since !== undefined);
    this.onevent?.({ type: "reconnected", url });
  }

  #finish(closed: ReconnectClosed): void {
    this.#state = "closed";
    this.#resolveClosed(closed);
  }
}
