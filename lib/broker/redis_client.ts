/**
 * A Redis client that stays connected: it reconnects with backoff (100 ms doubling to 2 s, with jitter), reports
 * its state ("connecting" | "ready" | "down"), and while not ready fails every command at once instead of queueing
 * it — the broker above keeps its own ordered buffer and decides what to resend. Lua scripts run with EVALSHA,
 * are loaded again on every new connection (Redis forgets them on restart), and fall back to EVAL on NOSCRIPT.
 *
 * @module
 */

import type { CommandArg, RespValue } from "./resp.ts";
import {
  checkConnectionOptions,
  REDIS_CONNECTION_DEFAULTS,
  RedisConnection,
  RedisConnectionError,
  type RedisConnectionOptions,
  RedisReplyError,
} from "./redis_connection.ts";
import { parseRedisUrl, redisAddress, type RedisUrl } from "./redis_url.ts";

/** Where a {@linkcode RedisClient} stands: connecting (or preparing a new connection), ready, or down between tries. */
export type RedisState = "connecting" | "ready" | "down";

/** Options for {@linkcode RedisClient}; each defaults from {@linkcode REDIS_CLIENT_DEFAULTS}. */
export interface RedisClientOptions extends Omit<RedisConnectionOptions, "signal"> {
  /**
   * Called on every change of state, with the error that took the client down (none when it was closed). Called
   * synchronously, so a "ready" is seen before any command could fail on the new connection; exceptions are
   * reported, not propagated. Not called after {@linkcode RedisClient.close}.
   */
  onState?: (state: RedisState, error: Error | undefined) => void;
  /**
   * Runs on each new connection after AUTH, SELECT and loading the known scripts, before the client reports
   * "ready"; a rejection drops the connection and counts as a failed attempt.
   */
  onConnect?: (connection: RedisConnection) => Promise<void>;
  /** First wait before reconnecting, doubled after each failed attempt. @default {100} */
  minBackoffMs?: number;
  /** Longest wait between attempts. @default {2000} */
  maxBackoffMs?: number;
  /**
   * Health check: when nothing arrived from Redis for this long a PING is sent, and when nothing arrives for as long
   * again the connection counts as lost (a half-open TCP connection otherwise looks healthy forever). 0 turns it off.
   *
   * @default {5000}
   */
  pingIntervalMs?: number;
}

/** Defaults of {@linkcode RedisClientOptions}. */
export const REDIS_CLIENT_DEFAULTS = {
  /** A restarting Redis is back within a few hundred milliseconds; trying sooner only adds load. */
  minBackoffMs: 100,
  /** Caps the wait, so an outage of any length ends at most ~2 s before the client notices. */
  maxBackoffMs: 2000,
  /** One PING per 5 s per idle connection costs nothing, and finds a dead peer within 10 s. */
  pingIntervalMs: 5000,
} as const;

/** Scripts remembered for loading on reconnect; beyond this, scripts still run, through the NOSCRIPT fallback. */
const MAX_SCRIPTS = 256;

/** A Lua script, known by its SHA-1 so that it can run with EVALSHA. */
export class RedisScript {
  /** The Lua source. */
  readonly source: string;
  /** Hex SHA-1 of the source, as Redis names the script. */
  readonly sha: string;

  private constructor(source: string, sha: string) {
    this.source = source;
    this.sha = sha;
  }

  /** Makes a script from its Lua source (the digest is asynchronous in Web Crypto, hence a factory). */
  static async create(source: string): Promise<RedisScript> {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-1", new TextEncoder().encode(source)));
    return new RedisScript(source, Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join(""));
  }
}

function nonNegative(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a whole number: ${value}`);
  return value;
}

/**
 * A Redis client over one connection at a time, reconnecting forever until {@linkcode close}. Commands issued in
 * one turn of the event loop are pipelined into one write; replies come back in order.
 */
export class RedisClient {
  /** `host:port` of the server, for messages and logs. */
  readonly address: string;
  readonly #url: RedisUrl;
  readonly #options: RedisClientOptions;
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #pingIntervalMs: number;
  #state: RedisState = "connecting";
  /** The connection being prepared or in use (closed by close()). */
  #current: RedisConnection | undefined;
  /** The connection commands go to: set only while ready. */
  #ready: RedisConnection | undefined;
  #closed = false;
  readonly #abort = new AbortController();
  #wake: (() => void) | undefined;
  #waiters: { resolve: () => void; reject: (error: Error) => void }[] = [];
  readonly #scripts = new Map<string, RedisScript>();
  #pastWrites = 0;
  readonly #loop: Promise<void>;

  /** Starts connecting at once; throws on a bad URL or option, never for an unreachable server. */
  constructor(options: RedisClientOptions = {}) {
    this.#url = typeof options.url === "object"
      ? options.url
      : parseRedisUrl(options.url ?? REDIS_CONNECTION_DEFAULTS.url);
    this.address = redisAddress(this.#url);
    checkConnectionOptions(options);
    this.#options = options;
    this.#minBackoffMs = nonNegative("minBackoffMs", options.minBackoffMs ?? REDIS_CLIENT_DEFAULTS.minBackoffMs);
    this.#maxBackoffMs = nonNegative("maxBackoffMs", options.maxBackoffMs ?? REDIS_CLIENT_DEFAULTS.maxBackoffMs);
    this.#pingIntervalMs = nonNegative(
      "pingIntervalMs",
      options.pingIntervalMs ?? REDIS_CLIENT_DEFAULTS.pingIntervalMs,
    );
    if (this.#minBackoffMs > this.#maxBackoffMs) {
      throw new RangeError(`minBackoffMs must not exceed maxBackoffMs: ${this.#minBackoffMs} > ${this.#maxBackoffMs}`);
    }
    this.#loop = this.#run();
  }

  /** The current state. */
  get state(): RedisState {
    return this.#state;
  }

  /** Writes made so far over every connection (a pipelined batch is one). */
  get writes(): number {
    return this.#pastWrites + (this.#current?.writes ?? 0);
  }

  /**
   * Sends one command while ready; resolves with its reply. Rejects with {@linkcode RedisReplyError} on an error
   * reply, and with {@linkcode RedisConnectionError} at once when not ready (`sent: false`) or when the connection
   * fails before the reply.
   */
  command(args: readonly CommandArg[]): Promise<RespValue> {
    const connection = this.#ready;
    if (connection === undefined) {
      const name = typeof args[0] === "string" ? args[0].slice(0, 32).toUpperCase() : "command";
      const why = this.#closed ? "the client was closed" : `Redis at ${this.address} is ${this.#state}`;
      return Promise.reject(new RedisConnectionError(`${name} not sent: ${why}`, { sent: false }));
    }
    return connection.command(args);
  }

  /**
   * Runs `script` with EVALSHA, and with EVAL if Redis answers NOSCRIPT (an admin ran SCRIPT FLUSH). The script is
   * loaded on every later connection before "ready", so after a Redis restart EVALSHA works from the first call.
   */
  eval(script: RedisScript, keys: readonly CommandArg[], args: readonly CommandArg[] = []): Promise<RespValue> {
    if (!this.#scripts.has(script.sha) && this.#scripts.size < MAX_SCRIPTS) this.#scripts.set(script.sha, script);
    return this.command(["EVALSHA", script.sha, keys.length, ...keys, ...args]).catch((error) => {
      if (!(error instanceof RedisReplyError && error.code === "NOSCRIPT")) throw error;
      return this.command(["EVAL", script.source, keys.length, ...keys, ...args]);
    });
  }

  /** Resolves when the client is ready (at once if it is); rejects if it is closed first. */
  whenReady(): Promise<void> {
    if (this.#closed) return Promise.reject(new RedisConnectionError("The Redis client was closed", { sent: false }));
    if (this.#state === "ready") return Promise.resolve();
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /**
   * Stops reconnecting and closes the connection; waiting commands reject with {@linkcode RedisConnectionError}.
   * Resolves once every socket and timer is gone. Safe to call more than once.
   */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#ready = undefined;
      this.#abort.abort();
      this.#wake?.();
      const current = this.#current;
      if (current !== undefined) await current.close();
      for (const waiter of this.#waiters.splice(0)) {
        waiter.reject(new RedisConnectionError("The Redis client was closed", { sent: false }));
      }
    }
    await this.#loop;
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#closed) {
      this.#setState("connecting", undefined);
      let error: Error | undefined;
      try {
        const connection = await RedisConnection.connect({
          ...this.#options,
          url: this.#url,
          signal: this.#abort.signal,
        });
        this.#current = connection;
        try {
          await this.#prepare(connection);
          if (this.#closed) break;
          failures = 0;
          this.#ready = connection;
          this.#setState("ready", undefined);
          error = await this.#watch(connection);
        } finally {
          this.#ready = undefined;
          await connection.close();
          this.#pastWrites += connection.writes;
          this.#current = undefined;
        }
      } catch (failure) {
        error = failure instanceof Error ? failure : new Error(String(failure));
      }
      if (this.#closed) break;
      this.#setState("down", error);
      await this.#sleep(this.#backoff(failures++));
    }
    this.#state = "down";
  }

  /** Loads the known scripts, then runs the caller's `onConnect`. */
  async #prepare(connection: RedisConnection): Promise<void> {
    await Promise.all(
      [...this.#scripts.values()].map((script) => connection.command(["SCRIPT", "LOAD", script.source])),
    );
    await this.#options.onConnect?.(connection);
  }

  /** Waits until `connection` ends, probing it with PING whenever it has been silent for a whole interval. */
  async #watch(connection: RedisConnection): Promise<Error | undefined> {
    if (this.#pingIntervalMs === 0) return await connection.closed;
    let seen = connection.received;
    let probing = false;
    const timer = setInterval(() => {
      if (connection.received !== seen) {
        seen = connection.received;
        probing = false;
      } else if (probing) {
        connection.abort(new Error(`nothing received for ${2 * this.#pingIntervalMs} ms, not even a reply to PING`));
      } else {
        probing = true;
        connection.command(["PING"]).catch(() => {});
      }
    }, this.#pingIntervalMs);
    try {
      return await connection.closed;
    } finally {
      clearInterval(timer);
    }
  }

  /** The wait before attempt `attempt + 1`: doubling from the minimum up to the maximum, minus up to half of it. */
  #backoff(attempt: number): number {
    const full = Math.min(this.#maxBackoffMs, this.#minBackoffMs * 2 ** Math.min(attempt, 30));
    return full / 2 + Math.random() * full / 2;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  #setState(state: RedisState, error: Error | undefined): void {
    if (state === this.#state) return;
    this.#state = state;
    if (state === "ready") { for (const waiter of this.#waiters.splice(0)) waiter.resolve(); }
    try {
      this.#options.onState?.(state, error);
    } catch (failure) {
      reportError(failure);
    }
  }
}
