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
import { type HistoryPage, RoomLog } from "../broker/history.ts";
import { envelopeJoined, envelopeMessage, envelopePresence } from "./envelope.ts";
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
 * `envelope: true` (the `hubbub.v1` subprotocol) delivers every room message as a JSON envelope with its offset and
 * epoch, after a `joined` frame; `join` asks for a replay or a recovery when joining.
 */
export type Endpoint =
  | { readonly kind: "echo" }
  | {
    readonly kind: "room";
    readonly room: string;
    readonly publish?: boolean;
    readonly envelope?: boolean;
    readonly join?: JoinOptions;
    /** The member's identity (a JWT's `sub`): counted in the room's presence. Anonymous members are not listed. */
    readonly sub?: string;
    /** Envelope members only: also receive `join`/`leave` frames when a user's first connection joins or last leaves. */
    readonly presence?: boolean;
  };

/** What a member asks for when it joins a room, from its URL (`?replay=`, `?since=&epoch=`). */
export interface JoinOptions {
  /** Deliver the newest this many kept messages first. */
  readonly replay?: number;
  /** Deliver every message after this offset first, if the history still holds all of them (never a part). */
  readonly since?: number;
  /** The epoch `since` belongs to; a different one means the history was lost (nothing is replayed). */
  readonly epoch?: string;
}

/** Whether a recovery delivered everything after `since`, and how many messages that was. */
export interface CatchUpPlan {
  /** The messages to send before live ones. */
  readonly entries: HistoryPage["entries"];
  /** Whether every message after `since` is among them. */
  readonly recovered: boolean;
  /** How many messages the room had after `since` (0 without `since`). */
  readonly missed: number;
}

/**
 * Decides what a joining member gets from `page`: with `since`, every message after it (only if the epoch matches
 * and the history reaches back that far: never a partial replay), or nothing; with `replay`, the newest ones.
 *
 * @example
 * ```ts
 * import { planCatchUp } from "./hub.ts";
 * import assert from "node:assert/strict";
 * const entry = (offset: number) => ({ offset, data: `m${offset}`, size: 2, time: 0 });
 * const page = { epoch: "e", latest: 5, first: 3, entries: [entry(4), entry(5)] };
 * assert.equal(planCatchUp(page, { since: 3, epoch: "e" }).recovered, true);
 * assert.equal(planCatchUp(page, { since: 1, epoch: "e" }).recovered, false); // 2 and 3 are gone
 * assert.equal(planCatchUp(page, { since: 3, epoch: "other" }).entries.length, 0);
 * ```
 */
export function planCatchUp(page: HistoryPage, join: JoinOptions): CatchUpPlan {
  const since = join.since;
  if (since === undefined) {
    const entries = join.replay === undefined ? [] : page.entries.slice(Math.max(0, page.entries.length - join.replay));
    return { entries, recovered: false, missed: 0 };
  }
  const sameEpoch = join.epoch === undefined || join.epoch === page.epoch;
  const missed = sameEpoch ? Math.max(0, page.latest - since) : 0;
  const reaches = page.first <= since + 1 || since >= page.latest;
  if (!sameEpoch || since > page.latest || !reaches) return { entries: [], recovered: false, missed };
  return { entries: page.entries.filter((entry) => entry.offset > since), recovered: true, missed };
}

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
   * This node's room offsets and kept messages (`--history`), used when there is no broker (a broker keeps its own).
   * @default {a log that keeps no message}
   */
  log?: RoomLog;
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

/** A room message waiting for a member that is still receiving its replay. */
interface Pending {
  readonly data: Message;
  readonly offset: number;
  readonly envelope: string | undefined;
}

class Member implements Connection {
  readonly peer: Peer;
  readonly endpoint: Endpoint | undefined;
  readonly rooms: Set<Room<Member>> = new Set();
  /** Whether it gets room messages in the `hubbub.v1` envelope. */
  readonly envelope: boolean;
  /** Its identity, for presence. */
  readonly sub: string | undefined;
  /** Whether it gets presence frames. */
  readonly presence: boolean;
  /** Live messages held while its replay is read (from a broker, asynchronously); undefined once caught up. */
  pending: Pending[] | undefined;
  gone = false;
  tokens: number;
  refilledAt: number;
  readonly #hub: Hub;

  constructor(hub: Hub, peer: Peer, endpoint: Endpoint | undefined, tokens: number, now: number) {
    this.#hub = hub;
    this.peer = peer;
    this.endpoint = endpoint;
    this.envelope = endpoint?.kind === "room" && endpoint.envelope === true;
    this.sub = endpoint?.kind === "room" ? endpoint.sub : undefined;
    this.presence = this.envelope && endpoint?.kind === "room" && endpoint.presence === true;
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
  readonly #log: RoomLog;
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
    this.#log = options.log ?? new RoomLog();
    this.#broker?.attach({
      deliver: (room, data, size, offset, epoch) => this.#fanOut(room, data, size, offset, epoch),
      presence: (room, type, sub) => this.#presenceEvent(room, type, sub),
    });
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

  /** The identified users in `room` on this hub, with their connection counts (anonymous members are not listed). */
  users(room: string): { sub: string; connections: number }[] {
    const users = this.#rooms.get(room)?.users;
    return users === undefined ? [] : [...users].map(([sub, connections]) => ({ sub, connections }));
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
      this.#sequenceAndFanOut(endpoint.room, data, size);
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
    if (this.#broker === undefined) return this.#sequenceAndFanOut(room, data, size);
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

  /** Without a broker: the room's next offset (and its place in the history), then the fan-out. */
  #sequenceAndFanOut(name: string, data: Message, size: number): number {
    const { offset, epoch } = this.#log.append(name, data, size);
    return this.#fanOut(name, data, size, offset, epoch);
  }

  #fanOut(name: string, data: Message, size: number, offset: number, epoch: string): number {
    const room = this.#rooms.get(name);
    if (room === undefined) return 0;
    room.messages++;
    let delivered = 0;
    // Built once per fan-out, and only if a member wants it.
    let envelope: string | undefined;
    this.#publishing++;
    try {
      for (const member of room.members) {
        if (member.gone) continue;
        if (member.envelope) envelope ??= envelopeMessage(name, offset, epoch, data);
        if (member.pending !== undefined) {
          member.pending.push({ data, offset, envelope });
          continue;
        }
        if (this.#deliver(member, member.envelope ? envelope! : data)) delivered++;
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
    const endpoint = member.endpoint;
    const join = endpoint?.kind === "room" && endpoint.room === name ? endpoint.join : undefined;
    const catchUp = member.envelope || join !== undefined;
    if (catchUp && this.#broker === undefined) {
      // One node: the replay and the join happen in one step, so the next message is the first live one.
      this.#sendCatchUp(member, name, this.#log.read(name, historyQuery(join)), join ?? {});
    }
    let room = this.#rooms.get(name);
    if (room === undefined) {
      room = new Room(name);
      this.#rooms.set(name, room);
    }
    const before = room.size;
    room.members.add(member);
    member.rooms.add(room);
    if (room.size !== before) {
      this.#broker?.membership(name, room.size);
      if (before === 0) this.#log.setActive(name, true);
      if (member.sub !== undefined) this.#countUser(room, member.sub, 1);
    }
    if (catchUp && this.#broker !== undefined) {
      // Across nodes the history is read from the broker: live messages wait meanwhile, then go after the replay.
      member.pending = [];
      this.#broker.history(name, historyQuery(join)).then(
        (page) => this.#finishCatchUp(member, name, page, join ?? {}),
        () => this.#finishCatchUp(member, name, undefined, join ?? {}),
      );
    }
  }

  /** Sends the `joined` frame (envelope members) and the replay; returns the last offset sent (or the latest). */
  #sendCatchUp(member: Member, room: string, page: HistoryPage, join: JoinOptions): number {
    const plan = planCatchUp(page, join);
    if (join.since !== undefined) this.stats.countRecovery(plan.recovered ? "recovered" : "lost");
    const peer = member.peer;
    if (member.envelope) {
      const { recovered, missed } = plan;
      this.#sendUnchecked(member, envelopeJoined({ room, offset: page.latest, epoch: page.epoch, recovered, missed }));
    }
    // The replay is sent whole (bounded by the history's own limits); the slow-consumer cap applies from the next
    // live message on.
    for (const entry of plan.entries) {
      if (member.gone) break;
      this.#sendUnchecked(
        member,
        member.envelope ? envelopeMessage(room, entry.offset, page.epoch, entry.data) : entry.data,
      );
    }
    this.#afterDelivery();
    if (plan.entries.length > 0) {
      this.#logger.log("debug", "replayed", { peer: peer.id, room, count: plan.entries.length });
    }
    return page.latest;
  }

  #finishCatchUp(member: Member, room: string, page: HistoryPage | undefined, join: JoinOptions): void {
    const pending = member.pending ?? [];
    member.pending = undefined;
    if (member.gone) return;
    let last = -1;
    if (page !== undefined) last = this.#sendCatchUp(member, room, page, join);
    // Live messages that came in meanwhile, minus those the replay already covered.
    for (const message of pending) {
      if (message.offset <= last) continue;
      if (!this.#deliver(member, member.envelope ? message.envelope! : message.data)) break;
    }
    this.#afterDelivery();
  }

  /**
   * A user's connections in a room changed by `delta`. Its first joining or last leaving is a presence event: here at
   * once without a broker; with one, the broker decides across every node and hands the event back.
   */
  #countUser(room: Room<Member>, sub: string, delta: 1 | -1): void {
    const count = (room.users.get(sub) ?? 0) + delta;
    if (count > 0) room.users.set(sub, count);
    else room.users.delete(sub);
    if (this.#broker !== undefined) this.#broker.presence(room.name, sub, delta);
    else if (count === (delta > 0 ? 1 : 0)) this.#presenceEvent(room.name, delta > 0 ? "join" : "leave", sub);
  }

  /** Sends a presence frame to the room's members that asked for them. */
  #presenceEvent(name: string, type: "join" | "leave", sub: string): void {
    const room = this.#rooms.get(name);
    if (room === undefined) return;
    let frame: string | undefined;
    this.#publishing++;
    try {
      for (const member of room.members) {
        if (!member.presence || member.gone) continue;
        frame ??= envelopePresence({ type, room: name, sub });
        // A member still receiving its replay gets it after the replay (it has no offset to order it by).
        if (member.pending !== undefined) member.pending.push({ data: frame, offset: Infinity, envelope: frame });
        else this.#deliver(member, frame);
      }
    } finally {
      this.#afterDelivery();
      if (--this.#publishing === 0 && this.#deferred.length > 0) this.#runDeferred();
    }
  }

  /** A send outside the slow-consumer check (a replay); a throwing send still evicts. */
  #sendUnchecked(member: Member, data: Message): void {
    try {
      member.peer.send(data);
    } catch (error) {
      this.#evict(member, "send_error", undefined, error);
    }
  }

  #leave(member: Member, room: Room<Member>): void {
    if (!room.members.delete(member)) return;
    member.rooms.delete(room);
    if (member.sub !== undefined) this.#countUser(room, member.sub, -1);
    if (room.size === 0 && this.#rooms.get(room.name) === room) {
      this.#rooms.delete(room.name);
      this.#log.setActive(room.name, false);
    }
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

/** What a join asks of the history: the messages after `since`, the newest `replay`, or none (the epoch and offset). */
function historyQuery(join: JoinOptions | undefined): { after?: number; last?: number } {
  if (join?.since !== undefined) return { after: join.since };
  return { last: join?.replay ?? 0 };
}
