/**
 * The Redis broker: every Hubbub process started with the same Redis URL and prefix is one hub.
 *
 * Layout (Centrifugo's, read for the design): per room, one Lua script appends the message to a capped stream and
 * PUBLISHes it on the room's channel, atomically, with the room's next offset — an integer that grows by exactly one
 * per message — and the room's epoch, a random id that changes when Redis loses the room (a restart without
 * persistence). Pub/sub carries messages with low latency; the stream fills gaps: a node that sees offset 7 after 5,
 * or whose subscriber reconnected, reads the missing offsets back from the stream, so its members get every message
 * once and in the room's one order. A node subscribes to a room's channel only while it has members there, so Redis
 * carries one copy of a message per node, never per member.
 *
 * Counts across the cluster come from heartbeats: every node writes its connection count and its rooms' member counts
 * to keys that expire within seconds unless refreshed, so a node killed with SIGKILL drops out of every count.
 *
 * Keys under `<prefix>:` — `room:{<room>}:meta` (hash: seq, epoch), `room:{<room>}:stream`, channel `room:<room>`,
 * `nodes` (sorted set by heartbeat time), `node:<id>` (hash) and `node:<id>:rooms` (hash room → members).
 *
 * @module
 */

import type { Message } from "../hub/peer.ts";
import type { Stats } from "../hub/stats.ts";
import type { Logger } from "../log.ts";
import type {
  Broker,
  BrokerState,
  BrokerTarget,
  ClusterCounts,
  HistoryQuery,
  NodeInfo,
  PresenceCounts,
} from "./broker.ts";
import { type HistoryEntry, type HistoryPage, ROOM_LOG_DEFAULTS } from "./history.ts";
import { RedisClient, RedisScript, type RedisState } from "./redis_client.ts";
import { RedisConnectionError } from "./redis_connection.ts";
import { RedisSubscriber } from "./redis_subscriber.ts";
import { parseRedisUrl, redisAddress } from "./redis_url.ts";
import type { RespValue } from "./resp.ts";

/** Options for {@linkcode RedisBroker}; each limit defaults from {@linkcode REDIS_BROKER_DEFAULTS}. */
export interface RedisBrokerOptions {
  /** `redis://[user:password@]host[:port][/db]` or `rediss://…` for TLS. */
  url: string;
  /** Extra CA certificates (PEM) trusted for `rediss://`. */
  caCerts?: string[];
  /** Namespace of every key and channel, so several hubs can share one Redis. @default {"hubbub"} */
  prefix?: string;
  /**
   * Bytes of messages kept, in order, while Redis is unreachable, published on reconnect; beyond it the oldest are
   * dropped and counted (`broker_unavailable`). 16 MiB: seconds of a busy node's traffic, a small part of its memory.
   * @default {16777216}
   */
  bufferBytes?: number;
  /**
   * Messages kept per room in its stream, for gap fill (and history). 10,000: what a node can miss while its
   * subscriber reconnects (up to 2 s of backoff) in a room publishing 5,000 messages per second.
   * @default {10000}
   */
  streamLength?: number;
  /** Seconds a room's stream and offsets live after its last message. A day: rooms come back after a night. @default {86400} */
  roomTtlSeconds?: number;
  /** Messages of a room served as history (`--history`); 0 serves none (the stream still fills gaps). @default {0} */
  historySize?: number;
  /** Seconds a message is served as history. @default {300} */
  historyTtlSeconds?: number;
  /** Bytes of a room's newest messages served as history, at most. @default {4194304} */
  historyMaxBytes?: number;
  /** This node's address for the node table (`http://host:port`); asked at each heartbeat (known once listening). */
  address: () => string;
  /** This node's open connections, for its heartbeat. */
  connections: () => number;
  /** Where state changes are logged. */
  logger: Logger;
  /** Where dropped messages are counted. */
  stats: Stats;
  /** How often this node's heartbeat is written. @default {2000} */
  heartbeatMs?: number;
  /** How long a heartbeat counts: a node silent for longer is out of the counts. @default {6000} */
  nodeTtlMs?: number;
  /** Time allowed for each connection attempt. @default {5000} */
  connectTimeoutMs?: number;
  /**
   * Time allowed to reach Redis at start, over every attempt: 4 s, so a node pointed at the wrong Redis exits within
   * 5 s, saying where it tried. @default {4000}
   */
  startTimeoutMs?: number;
}

/** The defaults behind {@linkcode RedisBrokerOptions}. */
export const REDIS_BROKER_DEFAULTS = {
  prefix: "hubbub",
  bufferBytes: 16 * 1024 * 1024,
  streamLength: 10_000,
  roomTtlSeconds: 86_400,
  /** Counts are at most 2 s stale; a dead node drops out within nodeTtlMs (6 s) plus one heartbeat. */
  heartbeatMs: 2000,
  nodeTtlMs: 6000,
  connectTimeoutMs: 5000,
  startTimeoutMs: 4000,
} as const;

// KEYS: meta, stream. ARGV: channel, kind (t|b), data, stream length, a new epoch, ttl seconds.
// A room whose meta is new (seq 1) starts a new epoch and drops any stream left from before (Redis lost the meta).
const PUBLISH_SCRIPT = `
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if seq == 1 or not epoch then
  epoch = ARGV[5]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
  if seq == 1 then redis.call('DEL', KEYS[2]) end
end
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], seq .. '-0', 'k', ARGV[2], 'd', ARGV[3], 'e', epoch, 't', ms)
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('PUBLISH', ARGV[1], seq .. ' ' .. epoch .. ' ' .. ARGV[2] .. '\\n' .. ARGV[3])
return seq
`;

// KEYS: this node's users hash for the room. ARGV: sub, delta, ttl ms, oldest live heartbeat, nodes key, node key
// prefix, users key suffix, channel. Counts the user's connections on every live node, atomically, and announces a
// first join or a last leave on the room's channel.
const PRESENCE_SCRIPT = `
local mine = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if mine <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local total = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', ARGV[5], ARGV[4], '+inf')) do
  total = total + tonumber(redis.call('HGET', ARGV[6] .. id .. ARGV[7], ARGV[1]) or '0')
end
local delta = tonumber(ARGV[2])
if (delta > 0 and total == 1) or (delta < 0 and total == 0) then
  redis.call('PUBLISH', ARGV[8], 'P ' .. (delta > 0 and 'join' or 'leave') .. '\\n' .. ARGV[1])
end
return total
`;

// KEYS: this node's users hash for a room. ARGV: ttl ms, then sub, count pairs. Rewrites it whole, atomically.
const USERS_SCRIPT = `
redis.call('DEL', KEYS[1])
if #ARGV > 1 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2))
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 1
`;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const NEWLINE = 0x0a;

/** A message as it travels: the room, and its payload as bytes with its kind. */
interface Outbound {
  readonly room: string;
  readonly kind: "t" | "b";
  readonly bytes: Uint8Array;
}

/** A message as Redis hands it back: its offset and epoch in the room, and its payload. */
interface Inbound {
  readonly offset: number;
  readonly epoch: string;
  readonly kind: "t" | "b";
  readonly bytes: Uint8Array;
  /** When Redis stored it (stream entries only). */
  readonly time: number;
}

/** The message itself: text decoded, binary as an `ArrayBuffer` of its own. */
function toMessage(message: Inbound): Message {
  return message.kind === "t" ? decoder.decode(message.bytes) : message.bytes.slice().buffer;
}

/** What this node knows of a room it has members in. */
interface RoomState {
  /** The epoch of the offsets below; undefined before the room's first message. */
  epoch: string | undefined;
  /** The offset of the last message delivered here. */
  last: number;
  /** False until subscribed and caught up; messages then wait in `pending`. */
  ready: boolean;
  /** A fill from the stream is running: live messages wait in `pending`. */
  filling: boolean;
  /** Live messages received while not ready or filling, in arrival order. */
  pending: Inbound[];
  /** This node's publishes to the room held until it is ready (so its own members see them). */
  held: Outbound[];
  /** Presence changes held likewise, so the announcement reaches this node too. */
  heldPresence: { sub: string; delta: 1 | -1 }[];
  /** Set when the room was left; a fill in flight then stops. */
  gone: boolean;
}

function randomId(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function text(value: RespValue): string | undefined {
  return value instanceof Uint8Array ? decoder.decode(value) : typeof value === "string" ? value : undefined;
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a whole number above 0: ${value}`);
  }
  return value;
}

/**
 * A {@linkcode Broker} over Redis. Construct it, then await {@linkcode RedisBroker.ready} (it rejects within
 * `connectTimeoutMs` when Redis cannot be reached, naming `host:port`, never the password).
 */
export class RedisBroker implements Broker {
  /** This node's random id in the cluster. */
  readonly id: string = randomId(8);
  /** `host:port` of Redis. */
  readonly redisAddress: string;
  /** Resolves once both connections are up; rejects if Redis cannot be reached in time. */
  readonly ready: Promise<void>;
  readonly #options: RedisBrokerOptions;
  readonly #prefix: string;
  readonly #bufferBytes: number;
  readonly #streamLength: number;
  readonly #roomTtl: number;
  readonly #nodeTtlMs: number;
  readonly #historySize: number;
  readonly #historyTtlMs: number;
  readonly #historyMaxBytes: number;
  readonly #startedAt = Date.now();
  readonly #client: RedisClient;
  readonly #subscriber: RedisSubscriber;
  readonly #scriptPromise: Promise<RedisScript>;
  readonly #presenceScript: Promise<RedisScript>;
  readonly #usersScript: Promise<RedisScript>;
  /** This node's identified users per room, with their connection counts here. */
  readonly #users = new Map<string, Map<string, number>>();
  #script: RedisScript | undefined;
  #target: BrokerTarget | undefined;
  readonly #rooms = new Map<string, RoomState>();
  /** Publishes waiting for Redis, in order. */
  #queue: Outbound[] = [];
  #queuedBytes = 0;
  /** This node's member count of each room it has members in. */
  readonly #memberCounts = new Map<string, number>();
  /** Rooms whose member count changed since it was last written. */
  readonly #dirty = new Set<string>();
  #heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #clientState: RedisState = "connecting";
  #subscriberState: RedisState = "connecting";

  /** Starts connecting at once; throws only on a malformed URL or option. */
  constructor(options: RedisBrokerOptions) {
    this.#options = options;
    const url = parseRedisUrl(options.url);
    this.redisAddress = redisAddress(url);
    this.#prefix = options.prefix ?? REDIS_BROKER_DEFAULTS.prefix;
    if (!/^[\w.:-]{1,64}$/.test(this.#prefix)) {
      throw new TypeError(`The Redis prefix must be 1-64 letters, digits or -_.: characters: ${this.#prefix}`);
    }
    this.#bufferBytes = positive("bufferBytes", options.bufferBytes ?? REDIS_BROKER_DEFAULTS.bufferBytes);
    this.#historySize = options.historySize ?? 0;
    if (!Number.isSafeInteger(this.#historySize) || this.#historySize < 0) {
      throw new RangeError(`historySize must be a whole number >= 0: ${this.#historySize}`);
    }
    this.#historyTtlMs = positive("historyTtlSeconds", options.historyTtlSeconds ?? ROOM_LOG_DEFAULTS.ttlSeconds) *
      1000;
    this.#historyMaxBytes = positive("historyMaxBytes", options.historyMaxBytes ?? ROOM_LOG_DEFAULTS.maxBytes);
    // The stream serves gap fill and history: long enough for both.
    this.#streamLength = Math.max(
      this.#historySize,
      positive("streamLength", options.streamLength ?? REDIS_BROKER_DEFAULTS.streamLength),
    );
    this.#roomTtl = positive("roomTtlSeconds", options.roomTtlSeconds ?? REDIS_BROKER_DEFAULTS.roomTtlSeconds);
    this.#nodeTtlMs = positive("nodeTtlMs", options.nodeTtlMs ?? REDIS_BROKER_DEFAULTS.nodeTtlMs);
    const heartbeatMs = positive("heartbeatMs", options.heartbeatMs ?? REDIS_BROKER_DEFAULTS.heartbeatMs);
    const connection = {
      url,
      caCerts: options.caCerts,
      connectTimeoutMs: options.connectTimeoutMs ?? REDIS_BROKER_DEFAULTS.connectTimeoutMs,
      clientName: `hubbub-${this.id}`,
    };
    this.#scriptPromise = RedisScript.create(PUBLISH_SCRIPT);
    this.#presenceScript = RedisScript.create(PRESENCE_SCRIPT);
    this.#usersScript = RedisScript.create(USERS_SCRIPT);
    this.#client = new RedisClient({
      ...connection,
      onState: (state, error) => this.#clientChanged(state, error),
      // Loaded before "ready" on every connection, so EVALSHA never meets NOSCRIPT: its EVAL fallback would run
      // after publishes issued later, out of their order.
      onConnect: async (redis) => {
        await Promise.all(
          [this.#scriptPromise, this.#presenceScript, this.#usersScript].map(async (script) =>
            redis.command(["SCRIPT", "LOAD", (await script).source])
          ),
        );
      },
    });
    this.#subscriber = new RedisSubscriber({
      ...connection,
      onMessage: (channel, payload) => this.#received(channel, payload),
      onState: (state, error) => this.#subscriberChanged(state, error),
    });
    this.ready = this.#start(
      positive("startTimeoutMs", options.startTimeoutMs ?? REDIS_BROKER_DEFAULTS.startTimeoutMs),
    );
    // Whoever cares awaits `ready`; a library user who does not must not get an unhandled rejection (the broker keeps
    // trying to connect meanwhile).
    this.ready.catch(() => {});
    this.#heartbeatTimer = setInterval(() => this.#heartbeat(), heartbeatMs);
  }

  /** `ok` while both connections to Redis are up. */
  get state(): BrokerState {
    return this.#clientState === "ready" && this.#subscriberState === "ready" ? "ok" : "down";
  }

  /** Where the broker is and who this node is, for the start-up banner. */
  get description(): string {
    return `Redis at ${this.redisAddress}, prefix ${this.#prefix}, node ${this.id}`;
  }

  /** Bytes of messages waiting for Redis. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** The hub this broker delivers to. */
  attach(target: BrokerTarget): void {
    this.#target = target;
  }

  /** Sends `data` to `room` through Redis; buffered (bounded) while Redis is down or the room is being joined. */
  publish(room: string, data: Message, _size: number): void {
    const message: Outbound = typeof data === "string"
      ? { room, kind: "t", bytes: encoder.encode(data) }
      : { room, kind: "b", bytes: new Uint8Array(data.slice(0)) };
    const state = this.#rooms.get(room);
    if (state !== undefined && !state.ready) {
      // Held until this node is subscribed, so its own members (the sender among them) get it back.
      state.held.push(message);
      this.#queuedBytes += message.bytes.length;
      this.#trim();
      return;
    }
    this.#enqueue(message);
  }

  /** Subscribes to a room when its first local member joins, unsubscribes when the last leaves. */
  membership(room: string, members: number): void {
    if (members > 0) this.#memberCounts.set(room, members);
    else this.#memberCounts.delete(room);
    this.#dirty.add(room);
    this.#scheduleCounts();
    const state = this.#rooms.get(room);
    if (members > 0 && state === undefined) {
      const fresh: RoomState = {
        epoch: undefined,
        last: 0,
        ready: false,
        filling: false,
        pending: [],
        held: [],
        heldPresence: [],
        gone: false,
      };
      this.#rooms.set(room, fresh);
      void this.#join(room, fresh);
    } else if (members === 0 && state !== undefined) {
      state.gone = true;
      this.#rooms.delete(room);
      // Held messages of a room everyone left still go out, for the other nodes.
      for (const message of state.held) {
        this.#queuedBytes -= message.bytes.length;
        this.#enqueue(message);
      }
      void this.#subscriber.unsubscribe(this.#channel(room));
    }
  }

  /** Counts a user's connection joining (+1) or leaving (-1) here; Redis announces cluster-wide first joins and last leaves. */
  presence(room: string, sub: string, delta: 1 | -1): void {
    let users = this.#users.get(room);
    if (users === undefined) this.#users.set(room, users = new Map());
    const count = (users.get(sub) ?? 0) + delta;
    if (count > 0) users.set(sub, count);
    else users.delete(sub);
    if (users.size === 0) this.#users.delete(room);
    if (this.#clientState !== "ready") return; // the next heartbeat writes this node's users again
    const state = this.#rooms.get(room);
    if (state !== undefined && !state.ready) {
      state.heldPresence.push({ sub, delta });
      return;
    }
    this.#announce(room, sub, delta);
  }

  /** Runs the presence script: this node's count, the cluster's total, and the announcement on the room's channel. */
  #announce(room: string, sub: string, delta: 1 | -1): void {
    void this.#presenceScript.then((script) =>
      this.#client.eval(script, [this.#usersKey(this.id, room)], [
        sub,
        delta,
        this.#nodeTtlMs,
        Date.now() - this.#nodeTtlMs,
        this.#key("nodes"),
        this.#key("node:"),
        `:users:{${room}}`,
        this.#channel(room),
      ])
    ).catch(() => {
      // Lost with the connection: the heartbeat writes this node's users again; the event itself is lost.
    });
  }

  /** Members and identified users of `room` on every live node. */
  async roomPresence(room: string): Promise<PresenceCounts> {
    const others = (await this.#liveNodes()).filter((id) => id !== this.id);
    const [members, ...replies] = await Promise.all([
      this.members(room),
      ...others.map((id) => this.#client.command(["HGETALL", this.#usersKey(id, room)])),
    ]);
    const users = new Map(this.#users.get(room) ?? []);
    for (const reply of replies) {
      const list = (reply as RespValue[]) ?? [];
      for (let i = 0; i + 1 < list.length; i += 2) {
        const sub = text(list[i]) ?? "";
        users.set(sub, (users.get(sub) ?? 0) + Number(text(list[i + 1]) ?? 0));
      }
    }
    return {
      members: members as number,
      users: [...users].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0).map(([sub, connections]) => ({
        sub,
        connections,
      })),
    };
  }

  #usersKey(node: string, room: string): string {
    return this.#key(`node:${node}:users:{${room}}`);
  }

  /** Connections and distinct rooms on every live node (this node's own counted live, the others' as of their heartbeat). */
  async counts(): Promise<ClusterCounts> {
    const others = (await this.#liveNodes()).filter((id) => id !== this.id);
    const replies = await Promise.all(others.flatMap((id) => [
      this.#client.command(["HGET", this.#key(`node:${id}`), "connections"]),
      this.#client.command(["HKEYS", this.#key(`node:${id}:rooms`)]),
    ]));
    let connections = this.#options.connections();
    const rooms = new Set<string>(this.#memberCounts.keys());
    for (let i = 0; i < replies.length; i += 2) {
      connections += Number(text(replies[i]) ?? 0);
      for (const room of (replies[i + 1] as RespValue[]) ?? []) rooms.add(text(room) ?? "");
    }
    return { connections, rooms: rooms.size, nodes: others.length + 1 };
  }

  /** Members of `room` on every live node (this node's own counted live). */
  async members(room: string): Promise<number> {
    const others = (await this.#liveNodes()).filter((id) => id !== this.id);
    const replies = await Promise.all(
      others.map((id) => this.#client.command(["HGET", this.#key(`node:${id}:rooms`), room])),
    );
    return replies.reduce<number>((sum, reply) => sum + Number(text(reply) ?? 0), this.#memberCounts.get(room) ?? 0);
  }

  /** The live nodes, from their heartbeats. */
  async nodes(): Promise<NodeInfo[]> {
    const ids = await this.#liveNodes();
    const replies = await Promise.all(ids.map((id) => this.#client.command(["HGETALL", this.#key(`node:${id}`)])));
    const nodes: NodeInfo[] = [];
    ids.forEach((id, i) => {
      const fields = new Map<string, string>();
      const list = replies[i] as RespValue[];
      for (let f = 0; f + 1 < list.length; f += 2) fields.set(text(list[f]) ?? "", text(list[f + 1]) ?? "");
      if (fields.size === 0) return;
      nodes.push({
        id,
        address: fields.get("address") ?? "",
        connections: Number(fields.get("connections") ?? 0),
        startedAt: Number(fields.get("startedAt") ?? 0),
        heartbeatAt: Number(fields.get("heartbeatAt") ?? 0),
        broker: fields.get("broker") === "ok" ? "ok" : "down",
      });
    });
    return nodes;
  }

  /**
   * The room's epoch and latest offset, and the kept messages asked for: the newest `historySize` of the room's
   * stream that are younger than the history TTL and fit in `historyMaxBytes` (counted from the newest).
   */
  async history(room: string, query: HistoryQuery): Promise<HistoryPage> {
    const stream = this.#key(`room:{${room}}:stream`);
    const limit = Math.min(this.#historySize, query.last ?? this.#historySize);
    const [meta, time, raw] = await Promise.all([
      this.#client.command(["HMGET", this.#key(`room:{${room}}:meta`), "seq", "epoch"]),
      this.#client.command(["TIME"]),
      limit === 0
        ? Promise.resolve([] as RespValue[])
        : this.#client.command(["XREVRANGE", stream, "+", `${(query.after ?? 0) + 1}-0`, "COUNT", limit]),
    ]);
    const [seq, epoch] = meta as RespValue[];
    const latest = Number(text(seq) ?? 0);
    const [seconds, micros] = (time as RespValue[]).map((part) => Number(text(part) ?? 0));
    const oldest = seconds * 1000 + Math.floor(micros / 1000) - this.#historyTtlMs;
    const entries: HistoryEntry[] = [];
    let bytes = 0;
    for (const item of (raw as RespValue[]) ?? []) {
      const entry = parseEntry(item);
      if (entry === undefined || entry.time < oldest || bytes + entry.bytes.length > this.#historyMaxBytes) break;
      bytes += entry.bytes.length;
      entries.push({ offset: entry.offset, data: toMessage(entry), size: entry.bytes.length, time: entry.time });
    }
    entries.reverse();
    // What the history reaches back to: everything before the oldest entry served is gone (or was never kept).
    const first = entries.length > 0 ? entries[0].offset : latest + 1;
    return { epoch: text(epoch) ?? "", latest, first, entries };
  }

  /** Leaves the cluster (its counts go at once), closes both connections and every timer. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeatTimer);
    clearTimeout(this.#flushTimer);
    if (this.#clientState === "ready") {
      await Promise.all([
        this.#client.command(["ZREM", this.#key("nodes"), this.id]),
        this.#client.command(["DEL", this.#key(`node:${this.id}`), this.#key(`node:${this.id}:rooms`)]),
      ]).catch(() => {});
    }
    await Promise.all([this.#client.close(), this.#subscriber.close()]);
    await this.ready.catch(() => {});
  }

  async #start(timeoutMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`cannot reach Redis at ${this.redisAddress} within ${timeoutMs} ms${this.#lastError}`)),
        timeoutMs,
      );
    });
    try {
      this.#script = await this.#scriptPromise;
      await Promise.race([Promise.all([this.#client.whenReady(), this.#subscriber.whenReady()]), timeout]);
    } finally {
      clearTimeout(timer);
    }
    this.#heartbeat();
  }

  #lastError = "";

  #clientChanged(state: RedisState, error: Error | undefined): void {
    const was = this.state;
    this.#clientState = state;
    if (error !== undefined) this.#lastError = `: ${error.message}`;
    if (state === "ready") {
      this.#flush();
      this.#heartbeat();
    }
    this.#logState(was);
  }

  #subscriberChanged(state: RedisState, error: Error | undefined): void {
    const was = this.state;
    const reconnected = state === "ready" && this.#subscriberState !== "ready";
    this.#subscriberState = state;
    if (error !== undefined) this.#lastError = `: ${error.message}`;
    // Every channel is subscribed again: read back from the streams whatever was published meanwhile.
    if (reconnected) {
      for (const [room, roomState] of this.#rooms) if (roomState.ready) void this.#fill(room, roomState);
    }
    this.#logState(was);
  }

  #logState(was: BrokerState): void {
    const now = this.state;
    if (now === was || this.#closed) return;
    if (now === "down") {
      this.#options.logger.log("warn", "broker down: buffering messages", { redis: this.redisAddress });
    } else this.#options.logger.log("info", "broker up", { redis: this.redisAddress, queued: this.#queuedBytes });
  }

  #key(name: string): string {
    return `${this.#prefix}:${name}`;
  }

  #channel(room: string): string {
    return `${this.#prefix}:room:${room}`;
  }

  /** Adds a message to the outbound queue and sends what can go. */
  #enqueue(message: Outbound): void {
    this.#queue.push(message);
    this.#queuedBytes += message.bytes.length;
    this.#trim();
    if (this.#clientState === "ready") this.#flush();
  }

  /**
   * Drops the oldest messages while more than `bufferBytes` wait: first from the outbound queue, then those held for
   * rooms still being joined (newer: a join takes milliseconds unless Redis went down meanwhile).
   */
  #trim(): void {
    while (this.#queuedBytes > this.#bufferBytes) {
      let dropped = this.#queue.shift();
      if (dropped === undefined) {
        for (const state of this.#rooms.values()) {
          dropped = state.held.shift();
          if (dropped !== undefined) break;
        }
      }
      if (dropped === undefined) return;
      this.#queuedBytes -= dropped.bytes.length;
      this.#options.stats.dropped.broker_unavailable++;
    }
  }

  /** Sends every queued message, in order, in one pipelined batch. */
  #flush(): void {
    const script = this.#script;
    if (script === undefined || this.#queue.length === 0) return;
    const batch = this.#queue;
    this.#queue = [];
    const resend: { index: number; message: Outbound }[] = [];
    let settled = 0;
    // Used only by a room's first message (a new epoch); one per batch is as good as one per message.
    const epoch = randomId(8);
    batch.forEach((message, index) => {
      const room = message.room;
      this.#client.command([
        "EVALSHA",
        script.sha,
        2,
        this.#key(`room:{${room}}:meta`),
        this.#key(`room:{${room}}:stream`),
        this.#channel(room),
        message.kind,
        message.bytes,
        this.#streamLength,
        epoch,
        this.#roomTtl,
      ]).then(() => {
        this.#queuedBytes -= message.bytes.length;
      }, (error) => {
        if (error instanceof RedisConnectionError && !error.sent) {
          resend.push({ index, message });
        } else {
          // Written but unanswered: it may have run. Sending it again could deliver it twice, so it is dropped.
          this.#queuedBytes -= message.bytes.length;
          this.#options.stats.dropped.broker_unavailable++;
        }
      }).finally(() => {
        if (++settled < batch.length || resend.length === 0) return;
        // Never written: back to the front of the queue, in their order, for the next connection.
        resend.sort((a, b) => a.index - b.index);
        this.#queue = [...resend.map((entry) => entry.message), ...this.#queue];
        if (this.#clientState === "ready") this.#flush();
      });
    });
  }

  /** First member of `room` here: note its offset, subscribe, fill what came between, then let messages flow. */
  async #join(room: string, state: RoomState): Promise<void> {
    for (;;) {
      try {
        await this.#client.whenReady();
        const meta = await this.#client.command(["HMGET", this.#key(`room:{${room}}:meta`), "seq", "epoch"]);
        const [seq, epoch] = meta as RespValue[];
        state.last = Number(text(seq) ?? 0);
        state.epoch = text(epoch);
        await this.#subscriber.subscribe(this.#channel(room));
        break;
      } catch {
        if (state.gone || this.#closed) return;
        // Redis went down meanwhile: the channel stays wanted; try again once it is back.
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    if (state.gone) return;
    await this.#fill(room, state);
    state.ready = true;
    for (const message of state.held) {
      this.#queuedBytes -= message.bytes.length;
      this.#enqueue(message);
    }
    state.held = [];
    for (const { sub, delta } of state.heldPresence) this.#announce(room, sub, delta);
    state.heldPresence = [];
  }

  /** Reads the room's stream after the last delivered offset, delivers it, then the live messages that waited. */
  async #fill(room: string, state: RoomState): Promise<void> {
    if (state.filling) return;
    state.filling = true;
    try {
      for (;;) {
        try {
          await this.#client.whenReady();
          const meta = await this.#client.command(["HGET", this.#key(`room:{${room}}:meta`), "epoch"]);
          const epoch = text(meta);
          if (epoch !== state.epoch) {
            // Redis lost the room (or it expired): a new epoch, its offsets start again at 1.
            state.epoch = epoch;
            state.last = 0;
          }
          const entries = await this.#client.command([
            "XRANGE",
            this.#key(`room:{${room}}:stream`),
            `${state.last + 1}-0`,
            "+",
          ]);
          if (state.gone) return;
          for (const entry of (entries as RespValue[]) ?? []) this.#accept(room, state, parseEntry(entry), true);
          break;
        } catch {
          if (state.gone || this.#closed) return;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    } finally {
      state.filling = false;
    }
    const pending = state.pending;
    state.pending = [];
    for (const message of pending) this.#accept(room, state, message, false);
  }

  #received(channel: string, payload: Uint8Array): void {
    const room = channel.slice(this.#prefix.length + ":room:".length);
    const state = this.#rooms.get(room);
    if (state === undefined) return;
    if (payload[0] === 0x50 && payload[1] === 0x20) {
      // "P join\n<sub>" or "P leave\n<sub>": a presence event, outside the room's sequence of messages.
      const [head, sub] = decoder.decode(payload).split("\n", 2);
      const type = head.slice(2);
      if ((type === "join" || type === "leave") && sub !== undefined) this.#target?.presence(room, type, sub);
      return;
    }
    const message = parsePayload(payload);
    if (message === undefined) return;
    if (!state.ready || state.filling) {
      state.pending.push(message);
      return;
    }
    this.#accept(room, state, message, false);
  }

  /** Delivers `message` unless already delivered; a gap starts a fill from the stream (the message waits for it). */
  #accept(room: string, state: RoomState, message: Inbound | undefined, fromStream: boolean): void {
    if (message === undefined) return;
    if (message.epoch !== state.epoch) {
      state.epoch = message.epoch;
      state.last = 0;
    }
    if (message.offset <= state.last) return;
    if (message.offset > state.last + 1 && !fromStream) {
      state.pending.push(message);
      void this.#fill(room, state);
      return;
    }
    if (message.offset > state.last + 1) {
      // The stream no longer holds the missing offsets (trimmed or expired): they are lost here.
      this.#options.stats.dropped.broker_unavailable += message.offset - state.last - 1;
      this.#options.logger.log("warn", "messages lost: no longer in the room's stream", {
        room,
        missed: message.offset - state.last - 1,
      });
    }
    state.last = message.offset;
    this.#target?.deliver(room, toMessage(message), message.bytes.length, message.offset, message.epoch);
  }

  /** The ids of nodes whose heartbeat is recent, cleaning out the others. */
  async #liveNodes(): Promise<string[]> {
    const now = Date.now();
    const [, ids] = await Promise.all([
      this.#client.command(["ZREMRANGEBYSCORE", this.#key("nodes"), "-inf", String(now - this.#nodeTtlMs)]),
      this.#client.command(["ZRANGEBYSCORE", this.#key("nodes"), String(now - this.#nodeTtlMs), "+inf"]),
    ]);
    return ((ids as RespValue[]) ?? []).map((id) => text(id) ?? "");
  }

  /** Writes the room counts that changed soon, so cluster counts follow joins within ~50 ms. */
  #scheduleCounts(): void {
    if (this.#flushTimer !== undefined || this.#closed) return;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined;
      this.#writeCounts();
    }, 50);
  }

  /** Writes the counts of the rooms that changed, or of every room (a restarted Redis has none). */
  #writeCounts(all = false): void {
    if (this.#clientState !== "ready") return;
    const key = this.#key(`node:${this.id}:rooms`);
    const set: (string | number)[] = [];
    const remove: string[] = [];
    for (const room of all ? this.#memberCounts.keys() : this.#dirty) {
      const members = this.#memberCounts.get(room);
      if (members !== undefined) set.push(room, members);
    }
    for (const room of this.#dirty) if (!this.#memberCounts.has(room)) remove.push(room);
    this.#dirty.clear();
    const commands: Promise<RespValue>[] = [];
    if (set.length > 0) commands.push(this.#client.command(["HSET", key, ...set]));
    if (remove.length > 0) commands.push(this.#client.command(["HDEL", key, ...remove]));
    commands.push(this.#client.command(["PEXPIRE", key, this.#nodeTtlMs]));
    Promise.all(commands).catch(() => {
      // Lost with the connection: the next heartbeat writes every room again.
    });
  }

  /** Refreshes this node's record and every room count; both expire unless refreshed. */
  #heartbeat(): void {
    if (this.#clientState !== "ready" || this.#closed) return;
    const now = Date.now();
    const node = this.#key(`node:${this.id}`);
    Promise.all([
      this.#client.command([
        "HSET",
        node,
        "address",
        this.#options.address(),
        "connections",
        this.#options.connections(),
        "startedAt",
        this.#startedAt,
        "heartbeatAt",
        now,
        "broker",
        this.state,
      ]),
      this.#client.command(["PEXPIRE", node, this.#nodeTtlMs]),
      this.#client.command(["ZADD", this.#key("nodes"), now, this.id]),
    ]).catch(() => {});
    this.#writeCounts(true);
    void this.#usersScript.then((script) => {
      for (const [room, users] of this.#users) {
        this.#client.eval(script, [this.#usersKey(this.id, room)], [this.#nodeTtlMs, ...[...users].flat()]).catch(
          () => {},
        );
      }
    });
  }
}

/** Parses a pub/sub payload: `<offset> <epoch> <t|b>\n<data>`. */
function parsePayload(payload: Uint8Array): Inbound | undefined {
  const newline = payload.indexOf(NEWLINE);
  if (newline < 0) return undefined;
  const [offset, epoch, kind] = decoder.decode(payload.subarray(0, newline)).split(" ");
  if (kind !== "t" && kind !== "b") return undefined;
  return { offset: Number(offset), epoch, kind, bytes: payload.subarray(newline + 1), time: 0 };
}

/** Parses a stream entry `[id, [k, kind, d, data, e, epoch]]`. */
function parseEntry(entry: RespValue): Inbound | undefined {
  if (!Array.isArray(entry) || entry.length !== 2 || !Array.isArray(entry[1])) return undefined;
  const id = text(entry[0]) ?? "";
  const fields = entry[1];
  let kind: string | undefined;
  let bytes: Uint8Array | undefined;
  let epoch: string | undefined;
  let time = 0;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = text(fields[i]);
    if (name === "t") time = Number(text(fields[i + 1]) ?? 0);
    else if (name === "k") kind = text(fields[i + 1]);
    else if (name === "d") bytes = fields[i + 1] instanceof Uint8Array ? fields[i + 1] as Uint8Array : new Uint8Array();
    else if (name === "e") epoch = text(fields[i + 1]);
  }
  if ((kind !== "t" && kind !== "b") || bytes === undefined || epoch === undefined) return undefined;
  return { offset: Number(id.split("-")[0]), epoch, kind, bytes, time };
}
