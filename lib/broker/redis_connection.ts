/**
 * One connection to Redis over `Deno.connect` / `Deno.connectTls`: AUTH and SELECT on connect, then commands
 * pipelined — everything issued in one turn of the event loop leaves in one write, with at most one write in flight
 * (ENGINE_NOTES: batching per turn, flushed in a microtask, is where the throughput is) — and replies resolved in
 * order. {@linkcode RedisClient} reconnects around it.
 *
 * @module
 */

import { writeAll } from "../bytes.ts";
import {
  type CommandArg,
  CommandWriter,
  RespError,
  RespParser,
  type RespParserOptions,
  type RespValue,
} from "./resp.ts";
import { parseRedisUrl, redisAddress, type RedisUrl } from "./redis_url.ts";

/** Options for {@linkcode RedisConnection.connect}; each defaults from {@linkcode REDIS_CONNECTION_DEFAULTS}. */
export interface RedisConnectionOptions {
  /** Where to connect: a URL string (see {@linkcode parseRedisUrl}) or one already parsed. @default {"redis://127.0.0.1:6379"} */
  url?: string | RedisUrl;
  /** Extra trusted CA certificates (PEM) for `rediss://`, e.g. a private CA; the system roots are always trusted. */
  caCerts?: string[];
  /** Time allowed for TCP connect, TLS handshake, AUTH, SELECT and a first PING together. @default {5000} */
  connectTimeoutMs?: number;
  /**
   * Bytes of commands queued but not yet written (while a write is in flight) before more are refused with a
   * `RangeError`: the server or the network is not keeping up, and the caller must slow down or drop.
   *
   * @default {64 MiB}
   */
  maxQueuedBytes?: number;
  /** A name for `CLIENT SETNAME`, shown by `CLIENT LIST` (letters, digits and `-_.:` only). @default {none} */
  clientName?: string;
  /** Limits of the reply parser. @default {RESP_DEFAULTS} */
  parser?: RespParserOptions;
  /** Aborts a connect in progress (the promise rejects). */
  signal?: AbortSignal;
  /**
   * Sees every incoming value before it is matched with a command, and returns true to claim it as an out-of-band
   * message (pub/sub deliveries) so it is not taken as a reply. Exceptions it throws are reported, not propagated.
   */
  onPush?: (value: RespValue) => boolean;
}

/** Defaults of {@linkcode RedisConnectionOptions}. */
export const REDIS_CONNECTION_DEFAULTS = {
  url: "redis://127.0.0.1:6379",
  /** Long enough for a TLS handshake across a region, short enough that a dead address is reported promptly. */
  connectTimeoutMs: 5000,
  /** 64 messages of Hubbub's 1 MiB maximum: far above a healthy pipeline, far below what would hurt the process. */
  maxQueuedBytes: 64 * 1024 * 1024,
} as const;

/** Size of the read buffer: the parser copies what it keeps, so one buffer per connection is reused for every read. */
const READ_BUFFER_BYTES = 64 * 1024;
/** Longest command name kept for error messages (the first argument; later arguments may hold secrets). */
const MAX_NAME_CHARS = 32;

/** A command's error reply, e.g. `WRONGTYPE` or `NOSCRIPT`, as a rejection of its promise. */
export class RedisReplyError extends Error {
  /** The error's first word: `ERR`, `WRONGTYPE`, `NOSCRIPT`, `WRONGPASS`, ... */
  readonly code: string;
  /** The command's name (its first argument, upper-cased); never its other arguments. */
  readonly command: string;

  /** Wraps an error reply to `command`. */
  constructor(command: string, reply: RespError) {
    super(`Redis refused ${command}: ${reply.message}`);
    this.name = "RedisReplyError";
    this.code = reply.code;
    this.command = command;
  }
}

/** A command that got no reply because the connection was not there, failed or was closed. */
export class RedisConnectionError extends Error {
  /**
   * Whether the command may have reached the server: `false` when it was never written (safe to send again),
   * `true` when it was written and the reply was lost (it may or may not have run).
   */
  readonly sent: boolean;

  /** Makes the error; `message` names the server as `host:port`, never a password. */
  constructor(message: string, options: { sent: boolean; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.name = "RedisConnectionError";
    this.sent = options.sent;
  }
}

/** The text of an error thrown by Deno or by us, for messages (Deno's socket errors carry no secrets). */
function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Closes a socket that may already be closed (or handed over to `startTls`). */
function closeQuietly(conn: Deno.Conn | undefined): void {
  try {
    conn?.close();
  } catch {
    // Already closed: nothing left to release.
  }
}

// One-slot cache: a pipeline usually repeats one command, and its name is needed for every error message.
let lastFirst: unknown;
let lastName = "";

function commandName(args: readonly CommandArg[]): string {
  const first = args[0];
  if (first === lastFirst) return lastName;
  const name = typeof first === "string" ? first : first instanceof Uint8Array ? "<bytes>" : String(first);
  lastFirst = typeof first === "string" ? first : undefined;
  lastName = name.slice(0, MAX_NAME_CHARS).toUpperCase();
  return lastName;
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer: ${value}`);
  return value;
}

/** A command waiting for its reply. */
interface Pending {
  readonly name: string;
  readonly resolve: (value: RespValue) => void;
  readonly reject: (error: Error) => void;
}

/**
 * Throws `RangeError` / `TypeError` naming the first bad option (limits that are not positive integers, a client
 * name Redis would refuse); {@linkcode RedisClient} checks at construction what every connect would refuse.
 */
export function checkConnectionOptions(options: RedisConnectionOptions): void {
  positive("connectTimeoutMs", options.connectTimeoutMs ?? REDIS_CONNECTION_DEFAULTS.connectTimeoutMs);
  positive("maxQueuedBytes", options.maxQueuedBytes ?? REDIS_CONNECTION_DEFAULTS.maxQueuedBytes);
  if (options.clientName !== undefined && !/^[\w.:-]{1,64}$/.test(options.clientName)) {
    throw new TypeError(`clientName must be 1 to 64 letters, digits or -_.: characters: ${options.clientName}`);
  }
  // The parser checks its own limits; make one now so a bad limit fails here, not on every connect.
  new RespParser(options.parser);
}

/** A FIFO with O(1) shift: commands wait here for their replies, in the order they were written. */
class Queue<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  shift(): T | undefined {
    if (this.#head === this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    // Compact once the consumed head is most of the array, so it never grows with the total served.
    if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  drain(): T[] {
    const rest = this.#items.slice(this.#head) as T[];
    this.#items = [];
    this.#head = 0;
    return rest;
  }
}

/**
 * One Redis connection, ready to use once {@linkcode RedisConnection.connect} resolves. Commands issued in the same
 * turn of the event loop go out in one write; replies resolve their promises in order. When the connection fails,
 * every waiting command rejects with a {@linkcode RedisConnectionError} and {@linkcode closed} resolves.
 */
export class RedisConnection {
  /** `host:port` of the server, for messages and logs. */
  readonly address: string;
  readonly #conn: Deno.Conn;
  readonly #parser: RespParser;
  readonly #maxQueuedBytes: number;
  readonly #onPush: ((value: RespValue) => boolean) | undefined;
  #writer = new CommandWriter();
  #pending = new Queue<Pending>();
  /** How many of the newest pending commands are still in `#writer`, not yet handed to a write. */
  #unsent = 0;
  #writing = false;
  #flushScheduled = false;
  #writes = 0;
  #received = 0;
  #writeDone: Promise<void> = Promise.resolve();
  #readDone: Promise<void> = Promise.resolve();
  /** Set once the connection is finished: why, for the errors of later commands. */
  #ended: Error | undefined;
  #resolveClosed!: (error: Error | undefined) => void;
  /** Resolves once the connection has ended: with the error that ended it, or `undefined` after {@linkcode close}. */
  readonly closed: Promise<Error | undefined> = new Promise((resolve) => this.#resolveClosed = resolve);

  private constructor(conn: Deno.Conn, address: string, options: RedisConnectionOptions) {
    this.#conn = conn;
    this.address = address;
    this.#parser = new RespParser(options.parser);
    this.#maxQueuedBytes = options.maxQueuedBytes ?? REDIS_CONNECTION_DEFAULTS.maxQueuedBytes;
    this.#onPush = options.onPush;
    this.#readDone = this.#readLoop();
  }

  /**
   * Connects, sends AUTH (when the URL has a password), SELECT (when its database is not 0), CLIENT SETNAME (when
   * asked) and a PING, all in one write, and resolves once Redis has answered every one. Rejects with a
   * {@linkcode RedisConnectionError} naming `host:port` (never the password) on refusal, timeout or a failed AUTH.
   */
  static async connect(options: RedisConnectionOptions = {}): Promise<RedisConnection> {
    const url = typeof options.url === "object"
      ? options.url
      : parseRedisUrl(options.url ?? REDIS_CONNECTION_DEFAULTS.url);
    checkConnectionOptions(options);
    const timeoutMs = options.connectTimeoutMs ?? REDIS_CONNECTION_DEFAULTS.connectTimeoutMs;
    const address = redisAddress(url);
    const fail = (why: string, cause?: unknown) =>
      new RedisConnectionError(`Could not connect to Redis at ${address}: ${why}`, { sent: false, cause });
    if (options.signal?.aborted) throw fail("aborted");

    // One abort path for timeout and caller: it cancels the TCP connect, or closes whatever is open by then.
    const abort = new AbortController();
    let abortReason = "";
    let conn: Deno.Conn | undefined;
    let connection: RedisConnection | undefined;
    const stop = (why: string) => {
      if (abortReason !== "") return;
      abortReason = why;
      abort.abort();
      if (connection !== undefined) connection.#end(new Error(why));
      else closeQuietly(conn);
    };
    const onAbort = () => stop("aborted");
    const timer = setTimeout(() => stop(`no answer within ${timeoutMs} ms`), timeoutMs);
    options.signal?.addEventListener("abort", onAbort);
    try {
      conn = await Deno.connect({ hostname: url.hostname, port: url.port, signal: abort.signal });
      if (abortReason !== "") throw new Error(abortReason);
      (conn as Deno.TcpConn).setNoDelay(true);
      if (url.tls) {
        conn = await Deno.startTls(conn as Deno.TcpConn, { hostname: url.hostname, caCerts: options.caCerts });
        if (abortReason !== "") throw new Error(abortReason);
        await (conn as Deno.TlsConn).handshake();
      }
      connection = new RedisConnection(conn, address, options);
      const hello: Promise<RespValue>[] = [];
      if (url.password !== undefined) {
        hello.push(
          connection.command(
            url.username === undefined ? ["AUTH", url.password] : ["AUTH", url.username, url.password],
          ),
        );
      }
      if (url.db !== 0) hello.push(connection.command(["SELECT", url.db]));
      if (options.clientName !== undefined) hello.push(connection.command(["CLIENT", "SETNAME", options.clientName]));
      hello.push(connection.command(["PING"]));
      // Wait for every reply (so none is left pending), then report the first failure.
      const results = await Promise.allSettled(hello);
      const failed = results.find((result) => result.status === "rejected");
      if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
      if (abortReason !== "") throw new Error(abortReason);
      return connection;
    } catch (error) {
      if (connection !== undefined) await connection.close();
      else closeQuietly(conn);
      if (abortReason !== "") throw fail(abortReason, error);
      // A failed AUTH reads "Redis refused AUTH: WRONGPASS ..."; a lost connection names its cause.
      throw fail(reason(error instanceof RedisConnectionError ? error.cause ?? error : error), error);
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Number of writes made so far (a pipelined batch is one). */
  get writes(): number {
    return this.#writes;
  }

  /** Number of values received so far (replies and pushes): a health check sees the connection is alive. */
  get received(): number {
    return this.#received;
  }

  /** Number of commands waiting for their replies. */
  get pending(): number {
    return this.#pending.length;
  }

  /** Bytes of commands queued and not yet handed to a write. */
  get queuedBytes(): number {
    return this.#writer.length;
  }

  /**
   * Sends one command; resolves with its reply. Rejects with {@linkcode RedisReplyError} on an error reply,
   * {@linkcode RedisConnectionError} when the connection is gone or fails before the reply, `RangeError` when more
   * than `maxQueuedBytes` are waiting to be written, and `TypeError` / `RangeError` on a bad argument.
   */
  command(args: readonly CommandArg[]): Promise<RespValue> {
    const name = commandName(args);
    if (this.#ended !== undefined) {
      return Promise.reject(
        new RedisConnectionError(`${name} not sent: ${this.#ended.message}`, { sent: false, cause: this.#ended }),
      );
    }
    const mark = this.#writer.length;
    try {
      this.#writer.write(args);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#writer.length > this.#maxQueuedBytes) {
      const queued = this.#writer.length;
      this.#writer.truncate(mark);
      return Promise.reject(
        new RangeError(
          `${name} not sent: Redis at ${this.address} is not keeping up, ${queued} bytes would be queued, over ` +
            `maxQueuedBytes: ${this.#maxQueuedBytes}`,
        ),
      );
    }
    this.#unsent++;
    if (!this.#flushScheduled && !this.#writing) {
      this.#flushScheduled = true;
      queueMicrotask(this.#flush);
    }
    return new Promise((resolve, reject) => this.#pending.push({ name, resolve, reject }));
  }

  /**
   * Closes the connection: commands still waiting reject with a {@linkcode RedisConnectionError}; resolves once the
   * socket's read and write have finished. Safe to call more than once.
   */
  async close(): Promise<void> {
    this.#end(undefined);
    await Promise.all([this.#readDone, this.#writeDone]);
  }

  /** Ends the connection because of `error` (e.g. a health check gave up): like a lost connection. Idempotent. */
  abort(error: Error): void {
    this.#end(error);
  }

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    if (this.#writing || this.#ended !== undefined || this.#writer.length === 0) return;
    const bytes = this.#writer.take();
    this.#unsent = 0;
    this.#writing = true;
    this.#writes++;
    this.#writeDone = writeAll(this.#conn, bytes).then(
      () => {
        this.#writing = false;
        this.#writer.recycle(bytes);
        // Whatever was queued while this write was in flight goes out now, as one write.
        if (this.#writer.length > 0) this.#flush();
      },
      (error) => {
        this.#writing = false;
        this.#end(new Error(`write failed: ${reason(error)}`));
      },
    );
  };

  async #readLoop(): Promise<void> {
    const buffer = new Uint8Array(READ_BUFFER_BYTES);
    try {
      for (;;) {
        const n = await this.#conn.read(buffer);
        if (n === null) throw new Error("the server closed the connection");
        for (const value of this.#parser.push(buffer.subarray(0, n))) this.#dispatch(value);
      }
    } catch (error) {
      // After close() the read fails because the socket was closed under it; that is not news.
      this.#end(error instanceof Error ? error : new Error(String(error)));
    }
  }

  #dispatch(value: RespValue): void {
    this.#received++;
    if (this.#onPush !== undefined) {
      let claimed = false;
      try {
        claimed = this.#onPush(value);
      } catch (error) {
        reportError(error);
        claimed = true;
      }
      if (claimed) return;
    }
    const pending = this.#pending.shift();
    if (pending === undefined) throw new Error("Redis sent a reply to no command");
    if (value instanceof RespError) pending.reject(new RedisReplyError(pending.name, value));
    else pending.resolve(value);
  }

  /** Finishes the connection once: by `error`, or by {@linkcode close} when undefined. */
  #end(error: Error | undefined): void {
    if (this.#ended !== undefined) return;
    const why = error === undefined
      ? `the connection to Redis at ${this.address} was closed`
      : `lost the connection to Redis at ${this.address}: ${error.message}`;
    this.#ended = new Error(why);
    closeQuietly(this.#conn);
    const waiting = this.#pending.drain();
    const sentCount = waiting.length - this.#unsent;
    waiting.forEach((pending, i) => {
      const sent = i < sentCount;
      pending.reject(
        new RedisConnectionError(`${pending.name} ${sent ? "got no reply" : "not sent"}: ${why}`, {
          sent,
          cause: error,
        }),
      );
    });
    this.#writer = new CommandWriter();
    this.#unsent = 0;
    this.#resolveClosed(error);
  }
}
