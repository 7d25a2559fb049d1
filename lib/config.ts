/**
 * Server options, their defaults in one place, and validation done once at start.
 *
 * @module
 */

import type { Broker } from "./broker/broker.ts";
import { parseRedisUrl } from "./broker/redis_url.ts";
import type { JwtVerifier } from "./auth/jwt.ts";
import { HUB_DEFAULTS } from "./hub/hub.ts";
import type { LogFormat, Logger, LogLevel } from "./log.ts";
import { type Mode, MODES } from "./route.ts";
import { BEARER_PROTOCOL_PREFIX, SUBPROTOCOL_NAME } from "./ws/subprotocol.ts";

/** Which WebSocket engine runs under the hub. */
export type Engine = "deno" | "raw";
/** Every accepted {@linkcode Engine}. */
export const ENGINES: readonly Engine[] = ["deno", "raw"];

/** Everything a Hubbub server can be told; each field is optional and defaults from {@linkcode DEFAULTS}. */
export interface ServerOptions {
  /** TCP port; 0 picks a free one. @default {8765} */
  port?: number;
  /** Interface to listen on; `0.0.0.0` exposes the server. @default {"localhost"} */
  hostname?: string;
  /** What `/` does. @default {"broadcast"} */
  mode?: Mode;
  /** Which engine runs the sockets. @default {"deno"} */
  engine?: Engine;
  /** Largest message in bytes (1009 beyond). @default {1048576} */
  maxMessageBytes?: number;
  /** Bytes queued for one peer before it is evicted as a slow consumer (1013). @default {1048576} */
  maxBufferedBytes?: number;
  /** Messages per second per connection, burst 2×; 0 is off (1008 beyond). @default {0} */
  rateLimit?: number;
  /**
   * Open connections in total (503 beyond). 10,000: about 200 MB at Deno's ~19 KB per idle socket, well within
   * a small machine, and far beyond what one chat deployment needs.
   * @default {10000}
   */
  maxConnections?: number;
  /** Open connections from one IP (429 beyond); 256 leaves room for a NAT'd office. @default {256} */
  maxConnectionsPerIp?: number;
  /** Seconds of silence before a peer is closed with 1001 (pinged halfway through); 0 is off. @default {30} */
  idleTimeout?: number;
  /**
   * Seconds a connection has to finish its opening handshake: the whole HTTP request on the raw engine, and for an
   * accepted upgrade to open on both (a client that resets right after its request never opens, and its connection
   * slot is freed then). 10: a real client needs milliseconds; a trickling or vanished one cannot hold a slot long.
   * @default {10}
   */
  handshakeTimeout?: number;
  /** Exact origins allowed to connect, or `*`; empty allows any. @default {[]} */
  allowedOrigins?: string[];
  /** Refuse upgrades without an `Origin` header. @default {false} */
  requireOrigin?: boolean;
  /** Shared secret every upgrade must present; empty is off. @default {""} */
  token?: string;
  /**
   * The credential `/dashboard.json` needs (as `Authorization: Bearer`), also accepted by HTTP publish; empty is off.
   * With `token` or `jwt` on and no admin token the dashboard is refused; with neither it is open to loopback only.
   * @default {""}
   */
  adminToken?: string;
  /**
   * Verifies JWTs on every upgrade (make one with `createJwtVerifier`); with `token` too, either admits.
   * @default {undefined}
   */
  jwt?: JwtVerifier;
  /**
   * Subprotocols the server speaks besides `hubbub.v1`: it selects the client's first offer among them, and refuses an
   * offer with none (400). Empty selects the client's first offer, whatever it is: the hub relays bytes unchanged.
   * @default {[]}
   */
  subprotocols?: string[];
  /** PEM certificate chain, to serve wss:// (with `key`). @default {undefined} */
  cert?: string;
  /** PEM private key, to serve wss:// (with `cert`). @default {undefined} */
  key?: string;
  /** Milliseconds shutdown waits for clients to finish closing before it stops waiting. @default {1500} */
  shutdownTimeout?: number;
  /** Where the server logs; overrides `logLevel`/`logFormat`. @default {a stderr logger} */
  logger?: Logger;
  /** Lowest level logged. @default {"info"} */
  logLevel?: LogLevel;
  /** Log line format. @default {"text"} */
  logFormat?: LogFormat;
  /**
   * Redis URL (`redis://[user:password@]host[:port][/db]`, `rediss://` for TLS): every server started with the same
   * URL and prefix is one hub. Without it this process is the whole hub. @default {undefined}
   */
  redis?: string;
  /**
   * Messages kept per room for replay and recovery (`?replay=`, `?since=`, `GET /rooms/<name>/history`); 0 is off.
   * In memory on one node, in Redis with `redis`. @default {0}
   */
  historySize?: number;
  /** Seconds a message stays in the history. Five minutes: a phone changing cell comes back well within it. @default {300} */
  historyTtl?: number;
  /** Bytes of history per room, at most. 4 MiB: four of the largest messages, or thousands of chat lines. @default {4194304} */
  historyMaxBytes?: number;
  /**
   * Share the port with other servers of this machine (SO_REUSEPORT: the kernel spreads connections over them), as
   * `--workers` does. Needs Deno's `--unstable-net` for the raw engine. @default {false}
   */
  reusePort?: boolean;
  /**
   * A broker of your own (see `lib/broker/broker.ts`), e.g. the workers' sequencer; exclusive with `redis`.
   * @default {undefined}
   */
  broker?: Broker;
  /** PEM of a CA to trust for `rediss://`, besides the system roots. @default {undefined} */
  redisCa?: string;
  /** Namespace of Hubbub's keys and channels in Redis, so several hubs can share one. @default {"hubbub"} */
  redisPrefix?: string;
  /**
   * Bytes of messages kept in order while Redis is down, published on reconnect; beyond it the oldest are dropped
   * (`broker_unavailable`). 16 MiB: seconds of a busy node's traffic, a small part of its memory. @default {16777216}
   */
  redisBufferBytes?: number;
}

/** The defaults behind {@linkcode ServerOptions}. */
export const DEFAULTS = {
  port: 8765,
  hostname: "localhost",
  mode: "broadcast" as Mode,
  engine: "deno" as Engine,
  // `as number`: deno doc (and so the registry's page) shows a value taken from another constant without a type.
  maxMessageBytes: HUB_DEFAULTS.maxMessageBytes as number,
  maxBufferedBytes: HUB_DEFAULTS.maxBufferedBytes as number,
  rateLimit: HUB_DEFAULTS.rateLimit as number,
  maxConnections: 10_000,
  maxConnectionsPerIp: 256,
  idleTimeout: 30,
  handshakeTimeout: 10,
  requireOrigin: false,
  token: "",
  adminToken: "",
  shutdownTimeout: 1500,
  logLevel: "info" as LogLevel,
  logFormat: "text" as LogFormat,
  historySize: 0,
  historyTtl: 300,
  historyMaxBytes: 4 * 1024 * 1024,
  reusePort: false,
  redisPrefix: "hubbub",
  redisBufferBytes: 16 * 1024 * 1024,
} as const;

/** {@linkcode ServerOptions} with every default applied and every value checked. */
export type ResolvedOptions =
  & Required<
    Omit<
      ServerOptions,
      "cert" | "key" | "logger" | "allowedOrigins" | "jwt" | "subprotocols" | "redis" | "redisCa" | "broker"
    >
  >
  & Pick<ServerOptions, "cert" | "key" | "logger" | "jwt" | "redis" | "redisCa" | "broker">
  & { allowedOrigins: string[]; subprotocols: string[] };

function wholeNumber(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be a whole number from ${min} to ${max}: ${value}`);
  }
  return value;
}

/**
 * Applies defaults and validates; throws `RangeError`/`TypeError` naming the bad option and its value.
 *
 * @example
 * ```ts
 * import { resolveOptions } from "./config.ts";
 * import assert from "node:assert/strict";
 * assert.equal(resolveOptions({}).port, 8765);
 * assert.throws(() => resolveOptions({ port: 70000 }), RangeError);
 * ```
 */
export function resolveOptions(options: ServerOptions = {}): ResolvedOptions {
  const o = { ...DEFAULTS, allowedOrigins: [] as string[], subprotocols: [] as string[], ...stripUndefined(options) };
  wholeNumber("port", o.port, 0, 65535);
  if (typeof o.hostname !== "string" || o.hostname.length === 0) {
    throw new TypeError(`hostname must be a non-empty string: ${o.hostname}`);
  }
  if (!MODES.includes(o.mode)) throw new TypeError(`mode must be one of ${MODES.join(", ")}: ${o.mode}`);
  if (!ENGINES.includes(o.engine)) throw new TypeError(`engine must be one of ${ENGINES.join(", ")}: ${o.engine}`);
  wholeNumber("maxMessageBytes", o.maxMessageBytes, 1);
  wholeNumber("maxBufferedBytes", o.maxBufferedBytes, 1);
  wholeNumber("rateLimit", o.rateLimit, 0);
  wholeNumber("maxConnections", o.maxConnections, 1);
  wholeNumber("maxConnectionsPerIp", o.maxConnectionsPerIp, 1);
  wholeNumber("idleTimeout", o.idleTimeout, 0, 86_400);
  wholeNumber("handshakeTimeout", o.handshakeTimeout, 1, 3600);
  wholeNumber("shutdownTimeout", o.shutdownTimeout, 0, 60_000);
  for (const origin of o.allowedOrigins) {
    if (origin !== "*" && !/^[a-z][a-z0-9+.-]*:\/\/[^/\s]+$/i.test(origin)) {
      throw new TypeError(`allowedOrigins entries must look like https://example.com (no path) or *: ${origin}`);
    }
  }
  if (o.redis !== undefined) parseRedisUrl(o.redis);
  if (o.redis !== undefined && o.broker !== undefined) {
    throw new TypeError("redis and broker exclude each other: give one");
  }
  if (!/^[\w.:-]{1,64}$/.test(o.redisPrefix)) {
    throw new TypeError(`redisPrefix must be 1-64 letters, digits or -_.: characters: ${o.redisPrefix}`);
  }
  wholeNumber("redisBufferBytes", o.redisBufferBytes, 1);
  wholeNumber("historySize", o.historySize, 0, 1_000_000);
  wholeNumber("historyTtl", o.historyTtl, 1);
  wholeNumber("historyMaxBytes", o.historyMaxBytes, 1);
  for (const name of o.subprotocols) {
    if (typeof name !== "string" || !SUBPROTOCOL_NAME.test(name) || name.startsWith(BEARER_PROTOCOL_PREFIX)) {
      throw new TypeError(`subprotocols entries must be names like chat.v1 (not bearer.*): ${name}`);
    }
  }
  if (typeof o.adminToken !== "string") throw new TypeError(`adminToken must be a string: ${typeof o.adminToken}`);
  // Never echo a secret in the message.
  if (o.adminToken !== "" && o.adminToken === o.token) {
    throw new TypeError("adminToken must differ from token: every client would hold the dashboard's credential");
  }
  if (o.jwt !== undefined && typeof o.jwt?.verify !== "function") {
    throw new TypeError("jwt must be a verifier made by createJwtVerifier");
  }
  if ((o.cert === undefined) !== (o.key === undefined)) {
    throw new TypeError("cert and key must be given together: got only " + (o.cert === undefined ? "key" : "cert"));
  }
  return o;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
