/**
 * The typed hub: echo, broadcast rooms, limits and the slow-consumer policy, over the {@linkcode Peer} seam.
 *
 * The hub never touches a socket and uses no `Deno.*` API, so it runs the same under every engine and is unit-tested
 * with fake peers.
 *
 * Lifecycle contract:
 * 1. A peer joins its endpoint's room when the engine calls {@linkcode Hub.connect} (on open).
 * 2. It leaves every room exactly once: on {@linkcode Hub.disconnect} (on close, even after an error, even when the
 *    engine reports close twice) or when the hub evicts it.
 * 3. An evicted peer (slow, too big, over its rate, failing sends, publishing where it may not) is out of every room at once, is closed with a
 *    code that says why, and is never sent to again.
 * 4. Nobody joins or leaves a room in the middle of that room's fan-out: such changes wait until the fan-out ends.
 * 5. The hub holds no timer, so nothing of a peer outlives its disconnect.
 *
 * @module
 */

import type { Broker } from "../broker/broker.ts";
import { CLOSE_CODE } from "../ws/close_code.ts";
import type { Logger } from "../log.ts";
import { SILENT_LOGGER } from "../log.ts";
import type { Message, Peer } from "./peer.ts";
import { Room, type RoomSummary } from "./room.ts";
import { type DropReason, Stats } from "./stats.ts";
import { messageSize } from "../ws/utf8.ts";

/**
 * Where a connection's messages go: back to the sender, or to every member of a room. `publish: false` makes a
 * subscribe-only member: it receives the room, and a message from it closes it with 1008 and reaches nobody.
 */
export type Endpoint =
  | { readonly kind: "echo" }
  | { readonly kind: "room"; readonly room: string; readonly publish?: boolean };

/** Hub limits and collaborators; every limit is enforced per peer. */
export interface HubOptions {
  /**
   * Largest message accepted, in bytes; a larger one closes its sender with 1009 and reaches nobody.
   * 1 MiB: far above chat and ticker traffic, small enough that a few hundred offenders cannot exhaust memory.
   * @default {1048576}
   */
  maxMessageBytes?: number;
  /**
   * Bytes a peer may have queued before it counts as a slow consumer and is evicted with 1013.
   * 1 MiB: several seconds of a busy room for a healthy client; bounds what one stalled reader can pin.
   * @default {1048576}
   */
  maxBufferedBytes?: number;
  /**
   * Messages per second each connection may send, with a burst of twice that; 0 turns the limit off.
   * Off by default because a chat room's normal traffic has no natural rate.
   * @default {0}
   */
  rateLimit?: number;
  /** Counters to update; pass one to share it with the engine. @default {new Stats()} */
  stats?: Stats;
  /** Where evictions are logged. @default {SILENT_LOGGER} */
  logger?: Logger;
  /** Millisecond clock for the rate limiter; injectable for tests. @default {performance.now} */
  now?: () => number;
  /**
   * Called after each delivery pass (a room's fan-out, an echo, a {@linkcode Hub.send}). An engine that frames a
   * message once per pass drops its cached frame here: the caller may change an `ArrayBuffer`'s bytes and send the
   * same object again. @default {undefined}
   */
  afterDelivery?: () => void;
  /**
   * The broker that sequences room messages across nodes (see `lib/broker/broker.ts`). Without one, a room message is
   * fanned out to this hub's members at once; with one, every room message goes through it, and comes back (here
   * too) in the room's one order. Echo never leaves the hub. @default {undefined}
   */
  broker?: Broker;
}

/** The defaults behind {@linkcode HubOptions}, in one place. */
export const HUB_DEFAULTS = {
  maxMessageBytes: 1024 * 1024,
  maxBufferedBytes: 1024 * 1024,
  rateLimit: 0,
} as const;

/** A connection as the engine holds it: feed it messages, tell it when the socket closed. */
export interface Connection {
  /** The peer this connection wraps. */
  readonly peer: Peer;
  /** Handles one message received from the peer. */
  receive(data: Message): void;
  /** Removes the peer from every room; safe to call more than once. */
  disconnect(): void;
}

class Member implements Connection {
  readonly peer: Peer;
  readonly endpoint: Endpoint | undefined;
  readonly rooms: Set<Room<Member>> = new Set();
  gone = false;
  tokens: number;
  refilledAt: number;
  readonly #hub: Hub;

  constructor(hub: Hub, peer: Peer, endpoint: Endpoint | undefined, tokens: number, now: number) {
    this.#hub = hub;
    this.peer = peer;
    this.endpoint = endpoint;
    this.tokens = tokens;
    this.refilledAt = now;
  }

  receive(data: Message): void {
    this.#hub.receive(this.peer, data);
  }

  disconnect(): void {
    this.#hub.disconnect(this.peer);
  }
}

/** The drop reasons that close a peer. */
type Eviction = Exclude<DropReason, "broker_unavailable">;

/** How each eviction reason closes the peer and what it logs. */
const EVICTION: Record<Eviction, { code: number; reason: string }> = {
  slow_consumer: { code: CLOSE_CODE.TryAgainLater, reason: "slow consumer" },
  send_error: { code: CLOSE_CODE.InternalError, reason: "internal error" },
  too_big: { code: CLOSE_CODE.MessageTooBig, reason: "message too big" },
  rate_limit: { code: CLOSE_CODE.PolicyViolation, reason: "rate limit exceeded" },
  not_allowed: { code: CLOSE_CODE.PolicyViolation, reason: "not allowed to publish" },
};

function positiveInteger(name: string, value: number, allowZero: boolean): number {
  if (!Number.isSafeInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new RangeError(`${name} must be a whole number ${allowZero ? "of 0 or more" : "above 0"}: ${value}`);
  }
  return value;
}

/**
 * Routes messages between peers: echo, broadcast rooms, and the limits that protect every other client.
 *
 * @example Two peers in a room; the sender receives its own message too
 * ```ts
 * import { Hub } from "./hub.ts";
 * import assert from "node:assert/strict";
 * const hub = new Hub();
 * const inbox: string[] = [];
 * const peer = (id: number) => ({
 *   id,
 *   bufferedAmount: 0,
 *   send: (data: string | ArrayBuffer) => void inbox.push(`${id}:${data}`),
 *   close() {},
 * });
 * const alice = hub.connect(peer(1), { kind: "room", room: "lobby" });
 * hub.connect(peer(2), { kind: "room", room: "lobby" });
 * alice.receive("Hello World!");
 * assert.deepEqual(inbox, ["1:Hello World!", "2:Hello World!"]);
 * ```
 */
export class Hub {
  readonly #rooms: Map<string, Room<Member>> = new Map();
  readonly #members: Map<Peer, Member> = new Map();
  readonly #maxMessageBytes: number;
  readonly #maxBufferedBytes: number;
  readonly #rate: number;
  readonly #now: () => number;
  readonly #logger: Logger;
  readonly #afterDelivery: () => void;
  readonly #broker: Broker | undefined;
  /** Nesting depth of fan-outs in progress; membership changes wait while it is above 0. */
  #publishing = 0;
  #deferred: (() => void)[] = [];
  /** The counters this hub updates. */
  readonly stats: Stats;

  /** Creates an empty hub; throws `RangeError` on a limit that is not a whole number in range. */
  constructor(options: HubOptions = {}) {
    this.#maxMessageBytes = positiveInteger(
      "maxMessageBytes",
      options.maxMessageBytes ?? HUB_DEFAULTS.maxMessageBytes,
      false,
    );
    this.#maxBufferedBytes = positiveInteger(
      "maxBufferedBytes",
      options.maxBufferedBytes ?? HUB_DEFAULTS.maxBufferedBytes,
      false,
    );
    this.#rate = positiveInteger("rateLimit", options.rateLimit ?? HUB_DEFAULTS.rateLimit, true);
    this.#now = options.now ?? (() => performance.now());
    this.#logger = options.logger ?? SILENT_LOGGER;
    this.#afterDelivery = options.afterDelivery ?? (() => {});
    this.stats = options.stats ?? new Stats();
    this.#broker = options.broker;
    this.#broker?.attach({ deliver: (room, data, size) => this.#fanOut(room, data, size) });
  }

  /** Number of connected peers (evicted peers no longer count). */
  get connections(): number {
    return this.#members.size;
  }

  /** Number of rooms with at least one member; empty rooms are deleted. */
  get roomCount(): number {
    return this.#rooms.size;
  }

  /** Number of members in `room` (0 when it does not exist). */
  members(room: string): number {
    return this.#rooms.get(room)?.size ?? 0;
  }

  /** Every room with its member count and message count, in no particular order. */
  *rooms(): IterableIterator<RoomSummary> {
    for (const room of this.#rooms.values()) yield { name: room.name, members: room.size, messages: room.messages };
  }

  /** Names of the rooms `peer` is in. */
  roomsOf(peer: Peer): string[] {
    const member = this.#members.get(peer);
    return member ? [...member.rooms].map((room) => room.name) : [];
  }

  /** Whether `peer` is connected and not evicted. */
  has(peer: Peer): boolean {
    return this.#members.has(peer);
  }

  /**
   * Registers `peer` (call it when the socket opens) and joins its endpoint's room. Without an endpoint the peer
   * joins nothing and its messages go nowhere until {@linkcode Hub.join}; library users route them themselves.
   */
  connect(peer: Peer, endpoint?: Endpoint): Connection {
    const existing = this.#members.get(peer);
    if (existing) return existing;
    const member = new Member(this, peer, endpoint, 2 * this.#rate, this.#rate > 0 ? this.#now() : 0);
    this.#members.set(peer, member);
    if (endpoint?.kind === "room") this.#whenIdle(() => this.#join(member, endpoint.room));
    return member;
  }

  /** Adds a connected `peer` to `room` (creating it); throws `Error` if the peer is not connected. */
  join(peer: Peer, room: string): void {
    const member = this.#members.get(peer);
    if (!member) throw new Error(`Cannot join room "${room}": peer ${peer.id} is not connected; call connect() first`);
    this.#whenIdle(() => this.#join(member, room));
  }

  /** Removes `peer` from `room`; deletes the room when it empties. */
  leave(peer: Peer, room: string): void {
    const member = this.#members.get(peer);
    const target = this.#rooms.get(room);
    if (member && target) this.#whenIdle(() => this.#leave(member, target));
  }

  /**
   * Removes `peer` from every room and forgets it; returns `false` when it was not connected (already
   * disconnected or evicted), so a second close event changes nothing.
   */
  disconnect(peer: Peer): boolean {
    const member = this.#members.get(peer);
    if (!member) return false;
    this.#detach(member);
    return true;
  }

  /**
   * Handles one message from `peer`: checks the size and rate limits, then echoes it or publishes it to the
   * peer's room. A peer over a limit is evicted and the message reaches nobody.
   */
  receive(peer: Peer, data: Message): void {
    const member = this.#members.get(peer);
    if (!member) return;
    const size = messageSize(data);
    const stats = this.stats;
    stats.messagesReceived++;
    stats.bytesIn += size;
    if (size > this.#maxMessageBytes) {
      this.#evict(member, "too_big", size);
      return;
    }
    if (this.#rate > 0 && !this.#takeToken(member)) {
      this.#evict(member, "rate_limit");
      return;
    }
    const endpoint = member.endpoint;
    if (endpoint === undefined) return;
    if (endpoint.kind === "room" && endpoint.publish === false) {
      this.#evict(member, "not_allowed");
      return;
    }
    if (endpoint.kind === "echo") {
      const delivered = this.#deliver(member, data);
      this.#afterDelivery();
      if (delivered) {
        stats.messagesDelivered++;
        stats.bytesOut += size;
      }
    } else if (this.#broker === undefined) {
      this.#fanOut(endpoint.room, data, size);
    } else {
      this.#broker.publish(endpoint.room, data, size);
    }
  }

  /**
   * Sends `data` to every member of `room`, unchanged. Without a broker it is one pass over this hub's members, and
   * the result is how many peers it was handed to; with a broker it goes to every node's members when the broker hands
   * it back, and the result is 0.
   */
  publish(room: string, data: Message): number {
    const size = messageSize(data);
    if (this.#broker === undefined) return this.#fanOut(room, data, size);
    this.#broker.publish(room, data, size);
    return 0;
  }

  /** Sends `data` to one connected `peer` under the slow-consumer policy; returns whether it was handed over. */
  send(peer: Peer, data: Message): boolean {
    const member = this.#members.get(peer);
    if (!member) return false;
    const delivered = this.#deliver(member, data);
    this.#afterDelivery();
    if (!delivered) return false;
    this.stats.messagesDelivered++;
    this.stats.bytesOut += messageSize(data);
    return true;
  }

  /** Closes every connected peer with `code` and `reason` and forgets them (for shutdown). */
  closeAll(code: number, reason: string): void {
    for (const member of [...this.#members.values()]) {
      this.#detach(member);
      this.#closePeer(member.peer, code, reason);
    }
  }

  #fanOut(name: string, data: Message, size: number): number {
    const room = this.#rooms.get(name);
    if (room === undefined) return 0;
    room.messages++;
    let delivered = 0;
    this.#publishing++;
    try {
      for (const member of room.members) {
        if (!member.gone && this.#deliver(member, data)) delivered++;
      }
    } finally {
      this.#afterDelivery();
      if (--this.#publishing === 0 && this.#deferred.length > 0) this.#runDeferred();
    }
    this.stats.messagesDelivered += delivered;
    this.stats.bytesOut += delivered * size;
    return delivered;
  }

  /** One send under the policy: a peer over its buffer cap, or whose send throws, is evicted and skipped. */
  #deliver(member: Member, data: Message): boolean {
    const peer = member.peer;
    if (peer.bufferedAmount > this.#maxBufferedBytes) {
      this.#evict(member, "slow_consumer", peer.bufferedAmount);
      return false;
    }
    try {
      peer.send(data);
      return true;
    } catch (error) {
      this.#evict(member, "send_error", undefined, error);
      return false;
    }
  }

  #takeToken(member: Member): boolean {
    const now = this.#now();
    const burst = 2 * this.#rate;
    member.tokens = Math.min(burst, member.tokens + ((now - member.refilledAt) * this.#rate) / 1000);
    member.refilledAt = now;
    if (member.tokens < 1) return false;
    member.tokens -= 1;
    return true;
  }

  #evict(member: Member, why: Eviction, bytes?: number, error?: unknown): void {
    if (member.gone) return;
    this.stats.dropped[why]++;
    const { code, reason } = EVICTION[why];
    this.#logger.log(why === "send_error" ? "error" : "warn", `closing connection: ${reason}`, {
      peer: member.peer.id,
      code,
      bytes,
      error: error === undefined ? undefined : String(error),
    });
    this.#detach(member);
    this.#closePeer(member.peer, code, reason);
  }

  #closePeer(peer: Peer, code: number, reason: string): void {
    try {
      peer.close(code, reason);
    } catch (error) {
      this.#logger.log("error", "peer.close() threw", { peer: peer.id, error: String(error) });
    }
  }

  /** Marks the member gone at once (so no fan-out touches it again) and leaves its rooms when no fan-out runs. */
  #detach(member: Member): void {
    member.gone = true;
    this.#members.delete(member.peer);
    this.#whenIdle(() => {
      for (const room of member.rooms) this.#leave(member, room);
    });
  }

  #join(member: Member, name: string): void {
    if (member.gone) return;
    let room = this.#rooms.get(name);
    if (room === undefined) {
      room = new Room(name);
      this.#rooms.set(name, room);
    }
    const before = room.size;
    room.members.add(member);
    member.rooms.add(room);
    if (room.size !== before) this.#broker?.membership(name, room.size);
  }

  #leave(member: Member, room: Room<Member>): void {
    if (!room.members.delete(member)) return;
    member.rooms.delete(room);
    if (room.size === 0 && this.#rooms.get(room.name) === room) this.#rooms.delete(room.name);
    this.#broker?.membership(room.name, room.size);
  }

  #whenIdle(change: () => void): void {
    if (this.#publishing === 0) change();
    else this.#deferred.push(change);
  }

  #runDeferred(): void {
    const changes = this.#deferred;
    this.#deferred = [];
    for (const change of changes) change();
  }
}
