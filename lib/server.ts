/**
 * Running Hubbub: {@linkcode serve} starts a server on `Deno.serve`; {@linkcode createHubbub} gives the handler to
 * mount in your own server.
 *
 * @module
 */

import { ConnectionLimiter } from "./access.ts";
import { CLOSE_CODE } from "./ws/close_code.ts";
import { type ResolvedOptions, resolveOptions, type ServerOptions } from "./config.ts";
import { ACCEPT_BACKOFF_MAX_MS, ACCEPT_BACKOFF_MIN_MS, classifyAcceptError } from "./engine/accept_error.ts";
import { createDenoUpgrade } from "./engine/deno.ts";
import { createHandler, type Handler, type Upgrade } from "./handler.ts";
import { endDeliveryPass, serveRaw } from "./engine/raw.ts";
import type { Broker } from "./broker/broker.ts";
import { RedisBroker } from "./broker/redis.ts";
import { Hub } from "./hub/hub.ts";
import { Stats } from "./hub/stats.ts";
import { RoomLog } from "./broker/history.ts";
import { createLogger, type Logger } from "./log.ts";

/** How often kept messages past their TTL are dropped from idle rooms. */
const HISTORY_SWEEP_MS = 5000;

/** The reason sent with 1001 to every client on shutdown. */
export const SHUTDOWN_REASON = "server shutting down";

/** A hub with its handler, ready to mount under any `Deno.serve`. */
export interface Hubbub {
  /** The hub: rooms, counters, and `publish` for server-side messages. */
  readonly hub: Hub;
  /** The options in force, defaults applied. */
  readonly options: ResolvedOptions;
  /** The logger in use. */
  readonly logger: Logger;
  /** The broker when `redis` is set: the hub is then every server on that Redis. */
  readonly broker: Broker | undefined;
  /** Resolves once the broker is connected (at once without one); rejects when Redis cannot be reached in time. */
  readonly ready: Promise<void>;
  /**
   * Answers every Hubbub route: WebSocket upgrades, the page, `/healthz`, `/stats`, `/metrics`. Pass
   * `{ path }` to route a request of yours as a Hubbub path (the original request must be passed for the upgrade).
   */
  handler: Handler;
  /**
   * Closes every client with 1001 `server shutting down` and waits until their close events ran, or until
   * `shutdownTimeout` ms passed (a client that stopped reading may never finish its close); then closes the broker.
   */
  closeAll(): Promise<void>;
}

/**
 * Creates a hub and its `Request → Response` handler on the deno engine, to mount in your own `Deno.serve`.
 *
 * @example Mount Hubbub under /ws/<room> in another app
 * ```ts
 * import { createHubbub } from "./server.ts";
 * import { SILENT_LOGGER } from "./log.ts";
 * import assert from "node:assert/strict";
 * const hubbub = createHubbub({ logger: SILENT_LOGGER });
 * const app = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (request, info) => {
 *   const url = new URL(request.url);
 *   if (url.pathname.startsWith("/ws/")) {
 *     return hubbub.handler(request, info, { path: `/rooms/${url.pathname.slice(4)}` });
 *   }
 *   return new Response("my app");
 * });
 * const socket = new WebSocket(`ws://127.0.0.1:${app.addr.port}/ws/lobby`);
 * await new Promise((resolve) => socket.onopen = resolve);
 * assert.equal(hubbub.hub.members("lobby"), 1);
 * socket.close();
 * await new Promise((resolve) => socket.onclose = resolve);
 * await hubbub.closeAll();
 * await app.shutdown();
 * ```
 */
export function createHubbub(options: ServerOptions = {}): Hubbub {
  return createDenoHubbub(createCore(options));
}

function createDenoHubbub(core: Core): Hubbub {
  const { hub, logger, resolved, broker } = core;
  const sockets = new Set<WebSocket>();
  const upgrade = createDenoUpgrade({
    hub,
    idleTimeout: resolved.idleTimeout,
    handshakeTimeout: resolved.handshakeTimeout,
    logger,
    sockets,
  });
  return {
    hub,
    options: resolved,
    logger,
    broker,
    ready: core.ready,
    handler: core.handler(upgrade),
    async closeAll() {
      hub.closeAll(CLOSE_CODE.GoingAway, SHUTDOWN_REASON);
      for (const socket of sockets) {
        if (socket.readyState === WebSocket.OPEN) socket.close(CLOSE_CODE.GoingAway, SHUTDOWN_REASON);
      }
      await waitFor(() => sockets.size === 0, resolved.shutdownTimeout);
      await core.stop();
    },
  };
}

/** What both engines share: validated options, the logger, the hub and its broker, the caps and the handler. */
interface Core {
  readonly resolved: ResolvedOptions;
  readonly logger: Logger;
  readonly hub: Hub;
  readonly broker: Broker | undefined;
  /** The broker's `ready`, or resolved. */
  readonly ready: Promise<void>;
  /** Where this server listens, for the cluster's node table; set once it does. */
  address: string;
  /** This node's room offsets and history (unused with a broker, which keeps its own). */
  readonly log: RoomLog;
  /** Stops what runs beside the hub: the history sweep, the broker. */
  stop(): Promise<void>;
  handler(upgrade: Upgrade): Handler;
}

function createCore(options: ServerOptions, afterDelivery?: () => void): Core {
  const resolved = resolveOptions(options);
  const logger = resolved.logger ?? createLogger({ level: resolved.logLevel, format: resolved.logFormat });
  const stats = new Stats();
  // The broker reports the hub's connection count, and the hub publishes through the broker: the broker asks lazily.
  const counted: { hub?: Hub } = {};
  const broker: Broker | undefined = resolved.broker ?? (resolved.redis === undefined ? undefined : new RedisBroker({
    url: resolved.redis,
    caCerts: resolved.redisCa === undefined ? undefined : [resolved.redisCa],
    prefix: resolved.redisPrefix,
    bufferBytes: resolved.redisBufferBytes,
    historySize: resolved.historySize,
    historyTtlSeconds: resolved.historyTtl,
    historyMaxBytes: resolved.historyMaxBytes,
    address: () => core.address,
    connections: () => counted.hub?.connections ?? 0,
    logger,
    stats,
  }));
  const log = new RoomLog({
    size: resolved.historySize,
    ttlSeconds: resolved.historyTtl,
    maxBytes: resolved.historyMaxBytes,
  });
  const hub = counted.hub = new Hub({
    maxMessageBytes: resolved.maxMessageBytes,
    maxBufferedBytes: resolved.maxBufferedBytes,
    rateLimit: resolved.rateLimit,
    logger,
    afterDelivery,
    stats,
    broker,
    log,
  });
  const limiter = new ConnectionLimiter({ max: resolved.maxConnections, maxPerIp: resolved.maxConnectionsPerIp });
  const core: Core = {
    resolved,
    logger,
    hub,
    broker,
    ready: broker instanceof RedisBroker ? broker.ready : Promise.resolve(),
    address: "",
    log,
    handler: (upgrade: Upgrade) => createHandler({ hub, options: resolved, logger, limiter, upgrade, broker, log }),
    async stop() {
      clearInterval(sweeper);
      await broker?.close();
    },
  };
  // Expired messages of idle rooms are dropped by this sweep (the hub holds no timer); busy rooms trim as they go.
  const sweeper = broker === undefined && resolved.historySize > 0
    ? setInterval(() => log.sweep(), HISTORY_SWEEP_MS)
    : undefined;
  return core;
}

/** A running server. */
export interface HubbubServer {
  /** The hub behind it. */
  readonly hub: Hub;
  /** The broker when `redis` is set. */
  readonly broker: Broker | undefined;
  /** The options in force. */
  readonly options: ResolvedOptions;
  /** The logger in use. */
  readonly logger: Logger;
  /** Where it listens, e.g. `http://localhost:8765` (`https:` with TLS); no trailing slash. */
  readonly url: string;
  /** The WebSocket URL of `/`, e.g. `ws://localhost:8765`. */
  readonly wsUrl: string;
  /** The bound address; `port` is the real one when 0 was asked. */
  readonly addr: Deno.NetAddr;
  /** Resolves once listening (already true when `serve` returns; kept for engines that bind asynchronously). */
  readonly ready: Promise<void>;
  /** Resolves when the server has stopped. */
  readonly finished: Promise<void>;
  /** Closes every client with 1001, then stops listening; resolves within about `shutdownTimeout` ms. */
  shutdown(): Promise<void>;
}

/**
 * Starts a Hubbub server.
 *
 * @example
 * ```ts
 * import { serve } from "./server.ts";
 * import { SILENT_LOGGER } from "./log.ts";
 * const server = serve({ port: 0, hostname: "127.0.0.1", logger: SILENT_LOGGER });
 * const socket = new WebSocket(server.wsUrl);
 * await new Promise((resolve) => socket.onopen = resolve);
 * socket.close();
 * await new Promise((resolve) => socket.onclose = resolve);
 * await server.shutdown();
 * ```
 */
export function serve(options: ServerOptions = {}): HubbubServer {
  const resolved = resolveOptions(options);
  const tls = resolved.cert !== undefined && resolved.key !== undefined;
  const core = createCore(options, resolved.engine === "raw" ? endDeliveryPass : undefined);
  let running: Running;
  try {
    running = resolved.engine === "raw" ? startRaw(core) : startDeno(core, tls);
  } catch (error) {
    void core.stop();
    throw error;
  }
  const host = displayHost(resolved.hostname);
  const port = running.addr.port;
  const url = `${tls ? "https" : "http"}://${host}:${port}`;
  core.address = url;
  let stopping: Promise<void> | undefined;
  return {
    hub: core.hub,
    options: resolved,
    logger: core.logger,
    broker: core.broker,
    url,
    wsUrl: `${tls ? "wss" : "ws"}://${host}:${port}`,
    addr: running.addr,
    ready: core.ready,
    finished: running.finished,
    shutdown() {
      stopping ??= running.shutdown().then(() => core.stop());
      return stopping;
    },
  };
}

type Running = Pick<HubbubServer, "addr" | "finished" | "shutdown">;

function startDeno(core: Core, tls: boolean): Running {
  const hubbub = createDenoHubbub(core);
  const { hub, logger } = hubbub;
  const resolved = hubbub.options;
  const listen = (port: number) =>
    Deno.serve({
      port,
      hostname: resolved.hostname,
      reusePort: resolved.reusePort,
      ...(tls ? { cert: resolved.cert, key: resolved.key } : {}),
      onListen() {},
      onError(error) {
        logger.log("error", "request handler failed", { error: String(error) });
        return new Response("Internal server error\n", { status: 500 });
      },
    }, hubbub.handler);
  let server = listen(resolved.port);
  const addr = server.addr;
  let stopping = false;
  // Deno.serve stops listening for good when an accept fails (denoland/deno#10148: EMFILE once file descriptors run
  // out), and its `finished` rejects. Listen again on the same port, backing off while accepting cannot work; the
  // upgraded sockets live on meanwhile.
  const finished = (async () => {
    for (;;) {
      try {
        await server.finished;
        return;
      } catch (error) {
        if (stopping) return;
        const { reason } = classifyAcceptError(error);
        hub.stats.countAcceptError(reason);
        logger.log("error", "the listener stopped accepting; listening again", { reason, error: String(error) });
      }
      for (let pause = ACCEPT_BACKOFF_MIN_MS;; pause = Math.min(2 * pause, ACCEPT_BACKOFF_MAX_MS)) {
        await delay(pause);
        if (stopping) return;
        try {
          server = listen(addr.port);
          logger.log("info", "listening again", { port: addr.port });
          break;
        } catch {
          // Still out of descriptors, or the port is taken: try again after a longer pause.
        }
      }
    }
  })();
  return {
    addr,
    finished,
    async shutdown() {
      stopping = true;
      const deadline = Date.now() + resolved.shutdownTimeout;
      await hubbub.closeAll();
      await withTimeout(server.shutdown(), deadline - Date.now());
    },
  };
}

function startRaw(core: Core): Running {
  const { resolved, logger, hub } = core;
  const raw = serveRaw({
    port: resolved.port,
    hostname: resolved.hostname,
    cert: resolved.cert,
    key: resolved.key,
    hub,
    logger,
    maxMessageBytes: resolved.maxMessageBytes,
    maxBufferedBytes: resolved.maxBufferedBytes,
    maxConnectionsPerIp: resolved.maxConnectionsPerIp,
    idleTimeout: resolved.idleTimeout,
    handshakeTimeout: resolved.handshakeTimeout,
    reusePort: resolved.reusePort,
    createHandler: core.handler,
  });
  return {
    addr: raw.addr,
    finished: raw.finished,
    async shutdown() {
      hub.closeAll(CLOSE_CODE.GoingAway, SHUTDOWN_REASON);
      await raw.shutdown(CLOSE_CODE.GoingAway, SHUTDOWN_REASON, resolved.shutdownTimeout);
    },
  };
}

function displayHost(hostname: string): string {
  if (hostname === "0.0.0.0" || hostname === "::") return "localhost";
  return hostname.includes(":") ? `[${hostname}]` : hostname;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits for `promise`, or for `ms` to pass, whichever comes first; clears its timer either way. */
async function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([promise, new Promise<void>((resolve) => timer = setTimeout(resolve, Math.max(0, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `done` every 10 ms until it is true or `timeoutMs` passed; leaves no timer behind. */
async function waitFor(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await delay(10);
}
