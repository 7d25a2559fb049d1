/**
 * The web-standard `Request → Response` handler every engine shares: plain HTTP routes, handshake checks, access
 * control, and the hand-off to the engine's upgrade.
 *
 * @module
 */

import { checkOrigin, type ConnectionLimiter } from "./access.ts";
import { isAdminRequest } from "./auth/admin.ts";
import { ANONYMOUS, authorize } from "./auth/authorize.ts";
import { ExpiryQueue, watchExpiry } from "./auth/expiry.ts";
import type { Broker } from "./broker/broker.ts";
import type { ResolvedOptions } from "./config.ts";
import { createDashboard } from "./dashboard.ts";
import { CLOSE_CODE } from "./ws/close_code.ts";
import { checkHandshake, isWebSocketAttempt, type Refusal } from "./ws/handshake.ts";
import { HUBBUB_PROTOCOL, negotiateSubprotocol } from "./ws/subprotocol.ts";
import type { Connection, Endpoint, Hub, JoinOptions } from "./hub/hub.ts";
import type { Logger } from "./log.ts";
import { METRICS_CONTENT_TYPE, renderMetrics } from "./metrics.ts";
import { renderPage } from "./page.ts";
import { readPublishedMessage } from "./publish.ts";
import { RoomLog } from "./broker/history.ts";
import { envelopeMessage } from "./hub/envelope.ts";
import { MAIN_ROOM, parseRoomName, parseRoute } from "./route.ts";
import { isValidHost, splitTarget } from "./target.ts";

/** What an engine needs to upgrade one accepted request. */
export interface UpgradeRequest {
  /** The original request, untouched. */
  readonly request: Request;
  /** Where the connection's messages go. */
  readonly endpoint: Endpoint;
  /** Frees the connection's slot in the limiter; call exactly once when the socket is gone (extra calls no-op). */
  readonly release: () => void;
  /** Client address, for logs. */
  readonly ip: string;
  /** Request path without the query string (which may hold a token), for logs. */
  readonly path: string;
  /** The subprotocol selected (`Sec-WebSocket-Protocol` in the answer); none when the client offered none. */
  readonly protocol?: string;
  /** Who connects (a JWT's `sub`), for logs. */
  readonly sub?: string;
  /** Call once the connection has joined the hub (its credential's deadline starts then). */
  readonly opened?: (connection: Connection) => void;
}

/** The reason a connection whose token expired is closed with (3000). */
export const TOKEN_EXPIRED_REASON = "token expired";

/** Upgrades an accepted request and returns the `101` response; throws when the engine cannot. */
export type Upgrade = (upgrade: UpgradeRequest) => Response;

/** Connection info as `Deno.serve` passes it; `remoteAddr.hostname` is the client IP. */
export interface ClientInfo {
  /** The client's address. */
  readonly remoteAddr: { readonly hostname: string };
}

/** The handler's collaborators. */
export interface HandlerOptions {
  /** The hub connections are handed to. */
  hub: Hub;
  /** Validated server options. */
  options: ResolvedOptions;
  /** Where refusals are logged. */
  logger: Logger;
  /** Connection caps. */
  limiter: ConnectionLimiter;
  /** The engine's upgrade. */
  upgrade: Upgrade;
  /** Process memory for `/metrics`. @default {Deno.memoryUsage} */
  memory?: () => { rss: number; heapUsed: number; heapTotal: number; external: number };
  /** The broker, when the hub spans several nodes: `/healthz` and `/stats` then count across all of them. */
  broker?: Broker;
  /** This node's history, served by `GET /rooms/<name>/history` when there is no broker. @default {an empty log} */
  log?: RoomLog;
}

/**
 * Publishes whose body is being read at once, at most: a backend pushing into rooms needs a handful; a client that
 * opens many and trickles (or never sends) their bodies gets 503 beyond, so what slow bodies can pin is bounded.
 */
const MAX_PUBLISHES_IN_FLIGHT = 256;

const HISTORY_OFF = "This server keeps no history: start it with --history N to replay and recover messages";

/** A whole-number query parameter: its value, `undefined` when absent, `null` when malformed. */
function wholeParam(params: URLSearchParams, name: string): number | undefined | null {
  const value = params.get(name);
  if (value === null) return undefined;
  return /^\d{1,15}$/.test(value) ? Number(value) : null;
}

/** The replay or recovery a joining client asks for (`?replay=N`, `?since=OFFSET&epoch=E`), checked. */
function parseJoin(params: URLSearchParams, historySize: number): { join?: JoinOptions } | { error: string } {
  const replay = wholeParam(params, "replay");
  const since = wholeParam(params, "since");
  const epoch = params.get("epoch");
  if (replay === null) return { error: `replay must be a whole number: ${JSON.stringify(params.get("replay"))}` };
  if (since === null) {
    return { error: `since must be a whole number (an offset): ${JSON.stringify(params.get("since"))}` };
  }
  if (epoch !== null && !/^[0-9a-f]{1,32}$/.test(epoch)) return { error: `epoch is not one this server gave out` };
  if (replay === undefined && since === undefined) {
    return epoch === null ? {} : { error: "epoch goes with since=<offset>" };
  }
  if (historySize === 0) return { error: HISTORY_OFF };
  if (replay !== undefined && since !== undefined) return { error: "ask for replay or since, not both" };
  return { join: { replay, since, epoch: epoch ?? undefined } };
}

const TEXT = "text/plain; charset=utf-8";
const JSON_HEADERS = { "content-type": "application/json; charset=utf-8" };

/**
 * Per-request overrides. An app that mounts Hubbub under its own paths passes `path`; an engine whose `Request` cannot
 * carry the request line as sent (the fetch `Request` upper-cases `get` and normalises `/a/../b`) passes all three.
 */
export interface RouteOptions {
  /** Route as if the request were for this path (e.g. `/rooms/lobby` for your `/ws/lobby`), taken as it is. */
  path?: string;
  /** The query string as sent, without `?`. @default {the query of `request.url`} */
  query?: string;
  /** The method as sent (methods are case-sensitive). @default {request.method} */
  method?: string;
}

/** The shared handler's signature; upgrades and some HTTP routes are answered asynchronously (tokens are checked with Web Crypto). */
export type Handler = (request: Request, info: ClientInfo, route?: RouteOptions) => Response | Promise<Response>;

/** Builds the `Request → Response` handler for one server. */
export function createHandler(options: HandlerOptions): Handler {
  const { hub, logger, limiter, upgrade, broker } = options;
  const log = options.log ?? new RoomLog();
  const config = options.options;
  const memory = options.memory ?? (() => Deno.memoryUsage());
  const stats = hub.stats;
  // Rendered once: the page tells a refused browser whether a token or origin rule is on (never the token), and
  // whether the server keeps history to replay and recover.
  const origins = config.allowedOrigins;
  const page = renderPage({
    tokenRequired: config.token !== "" || config.jwt !== undefined,
    originRestricted: origins.length > 0 && !origins.includes("*"),
    historySize: config.historySize,
  });
  const refuse = (refusal: Refusal, path: string, ip: string): Response => {
    stats.countRefusal(refusal.label);
    logger.log(refusal.status >= 500 || refusal.status === 429 ? "warn" : "info", "handshake refused", {
      status: refusal.status,
      reason: refusal.label,
      path,
      ip,
    });
    return plain(refusal.status, refusal.reason + "\n", refusal.headers);
  };
  /** Publishes whose body is still being read. */
  let publishing = 0;
  // One timer for every connection whose token expires (the hub holds none).
  const expiries = new ExpiryQueue();
  // Kept messages per room, when they are kept here (with a broker they live in Redis or the workers' sequencer).
  const kept = config.historySize > 0 && broker === undefined ? (room: string) => log.count(room) : undefined;
  const dashboard = createDashboard({ hub, options: config, memory, broker, history: kept, kept: log });

  /** Checks the credential, takes a slot and hands the request to the engine. */
  async function accept(
    request: Request,
    params: URLSearchParams,
    endpoint: Endpoint,
    protocol: string | undefined,
    where: { path: string; ip: string },
  ): Promise<Response> {
    const { path, ip } = where;
    const room = endpoint.kind === "room" ? endpoint.room : undefined;
    const need = room === undefined ? undefined : { room, action: "subscribe" as const };
    const identity = await authorize({ headers: request.headers, params }, config, need);
    if ("status" in identity) return refuse(identity, path, ip);
    const slot = limiter.acquire(ip);
    if (typeof slot !== "function") return refuse(slot, path, ip);
    const { sub, permissions } = identity;
    const { release, opened } = watchExpiry(expiries, identity.closeAt, slot, (connection: Connection) => {
      logger.log("info", "closing connection: " + TOKEN_EXPIRED_REASON, { peer: connection.peer.id, sub });
      connection.disconnect();
      connection.peer.close(CLOSE_CODE.Unauthorized, TOKEN_EXPIRED_REASON);
    });
    // A subscribe-only identity joins unable to send: the hub closes it with 1008 if it tries. An identified member
    // counts in the room's presence.
    let joined = endpoint;
    if (endpoint.kind === "room") {
      if (!permissions.canPublish(endpoint.room)) joined = { ...endpoint, publish: false };
      if (sub !== undefined) joined = { ...joined, sub } as Endpoint;
    }
    try {
      const response = upgrade({ request, endpoint: joined, release, ip, path, protocol, sub, opened });
      stats.upgrades++;
      return response;
    } catch (error) {
      release();
      return refuse(
        { status: 400, reason: `WebSocket upgrade failed: ${(error as Error).message}`, label: "upgrade_failed" },
        path,
        ip,
      );
    }
  }

  return (request, info, route) => {
    const ip = info.remoteAddr.hostname;
    const method = route?.method ?? request.method;
    const upgrading = isWebSocketAttempt(request.headers);
    // A refusal for an upgrade attempt is counted and logged; a plain HTTP error is just answered.
    const fail = (status: 400 | 404, reason: string, label: string, path: string) =>
      upgrading ? refuse({ status, reason, label }, path, ip) : plain(status, reason + "\n");

    const host = request.headers.get("host");
    if (host !== null && !isValidHost(host)) {
      return fail(400, `Invalid Host header: ${JSON.stringify(host.slice(0, 80))}`, "bad_host", "");
    }
    const target = splitTarget(request.url);
    if ("error" in target) return fail(400, target.error, "bad_target", "");
    const path = route?.path ?? target.path;
    const params = new URLSearchParams(route?.query ?? target.query);
    const where = parseRoute(path, { mode: config.mode });

    if (upgrading) {
      if (where.kind === "error") return refuse(where, path, ip);
      if (where.kind !== "socket") {
        return refuse(
          { status: 404, reason: `No WebSocket endpoint at ${path.slice(0, 80)}`, label: "not_found" },
          path,
          ip,
        );
      }
      const refusal = checkHandshake(method, request.headers) ?? checkOrigin(request.headers.get("origin"), config);
      if (refusal) return refuse(refusal, path, ip);
      const protocol = negotiateSubprotocol(request.headers.get("sec-websocket-protocol"), config.subprotocols);
      if (typeof protocol === "object") return refuse(protocol, path, ip);
      let endpoint = where.endpoint;
      if (endpoint.kind === "room") {
        const join = parseJoin(params, config.historySize);
        if ("error" in join) return refuse({ status: 400, reason: join.error, label: "bad_join" }, path, ip);
        const envelope = protocol === HUBBUB_PROTOCOL;
        const presence = params.get("presence");
        if (presence !== null && presence !== "1" && presence !== "0") {
          return refuse({ status: 400, reason: "presence must be 1 or 0", label: "bad_join" }, path, ip);
        }
        if (join.join !== undefined || envelope) {
          endpoint = { ...endpoint, join: join.join, envelope, presence: envelope && presence === "1" };
        }
      }
      return accept(request, params, endpoint, protocol, { path, ip });
    }

    const room = where.kind === "socket" && where.endpoint.kind === "room" ? where.endpoint.room : undefined;
    if (method === "POST" && room !== undefined) return publish(request, room, params, path, ip);
    if (method !== "GET" && method !== "HEAD") {
      const allow = room === undefined ? "GET, HEAD" : "GET, HEAD, POST";
      return plain(405, `Method ${method.slice(0, 16)} not allowed: use ${allow}\n`, { allow });
    }
    // HEAD gets the same response as GET; the server sends its headers (with the real Content-Length) and no body.
    switch (where.kind) {
      case "error":
        return plain(where.status, where.reason + "\n");
      case "healthz":
        return health();
      case "stats": {
        const param = params.get("room");
        if (param === null || param === "" || param === MAIN_ROOM) return roomStats(MAIN_ROOM);
        const parsed = parseRoomName(encodeURIComponent(param));
        if ("error" in parsed) return plain(400, parsed.error + "\n");
        return roomStats(parsed.name);
      }
      case "metrics":
        return metrics();
      case "history":
        return history(request, where.room, params, path, ip);
      case "presence":
        return presence(request, where.room, params, path, ip);
      case "dashboard":
        return dashboard.page(request, ip);
      case "dashboard.json":
        return dashboard.data(request, params, ip);
      case "socket":
        return plain(200, page, { "content-type": "text/html; charset=utf-8" });
    }
  };

  /** `/metrics`: this hub's counters, or the whole process's when it is made of workers. */
  async function metrics(): Promise<Response> {
    let totals: Parameters<typeof renderMetrics>[0]["hub"] = hub;
    let kept: { messages: number; bytes: number } = log;
    if (broker?.serverTotals !== undefined) {
      try {
        const server = await broker.serverTotals();
        totals = server;
        kept = server.history;
      } catch {
        // The sequencer is gone (shutting down): this worker's own counters are better than none.
      }
    }
    const text = renderMetrics({ hub: totals, memory: memory(), log: kept });
    return plain(200, text, { "content-type": METRICS_CONTENT_TYPE });
  }

  /** `/healthz`: this node's counts, and with a broker the cluster's too; 503 while the broker is down. */
  async function health(): Promise<Response> {
    const node = { connections: hub.connections, rooms: hub.roomCount };
    if (broker === undefined) return plain(200, JSON.stringify({ status: "ok", ...node }), JSON_HEADERS);
    const down = () => plain(503, JSON.stringify({ status: "down", ...node, node, broker: "down" }), JSON_HEADERS);
    if (broker.state !== "ok") return down();
    try {
      const cluster = await broker.counts();
      return plain(200, JSON.stringify({ status: "ok", ...cluster, node, broker: "ok" }), JSON_HEADERS);
    } catch {
      return down();
    }
  }

  /** `/stats?room=`: members of `room` here, and with a broker across every node. */
  async function roomStats(room: string): Promise<Response> {
    const local = hub.members(room);
    if (broker === undefined) return plain(200, JSON.stringify({ room, members: local }), JSON_HEADERS);
    try {
      const members = await broker.members(room);
      return plain(200, JSON.stringify({ room, members, node: { members: local } }), JSON_HEADERS);
    } catch {
      return plain(
        503,
        JSON.stringify({ room, members: local, node: { members: local }, broker: "down" }),
        JSON_HEADERS,
      );
    }
  }

  /**
   * Reading about a room over HTTP (its history, its presence) needs what joining it needs: the token, or a JWT that
   * may subscribe to it. Returns the refusal, logged, or `undefined` when allowed.
   */
  async function mayRead(
    request: Request,
    params: URLSearchParams,
    room: string,
    where: { what: string; path: string; ip: string },
  ): Promise<Response | undefined> {
    const identity = await authorize({ headers: request.headers, params }, config, { room, action: "subscribe" });
    if (!("status" in identity)) return undefined;
    const { what, path, ip } = where;
    logger.log("info", `${what} refused`, { status: identity.status, reason: identity.label, path, ip });
    return plain(identity.status, identity.reason + "\n", identity.headers);
  }

  /** `GET /rooms/<name>/history?since=&limit=`: the kept messages as envelope objects, newest last. */
  async function history(
    request: Request,
    room: string,
    params: URLSearchParams,
    path: string,
    ip: string,
  ): Promise<Response> {
    if (config.historySize === 0) return plain(404, HISTORY_OFF + "\n");
    const refusal = await mayRead(request, params, room, { what: "history", path, ip });
    if (refusal !== undefined) return refusal;
    const since = wholeParam(params, "since");
    const limit = wholeParam(params, "limit");
    if (since === null || limit === null) return plain(400, "since and limit must be whole numbers\n");
    const query = since === undefined ? { last: limit ?? config.historySize } : { after: since };
    let page;
    try {
      page = broker === undefined ? log.read(room, query) : await broker.history(room, query);
    } catch {
      return plain(503, "The history is unavailable while the broker is down\n");
    }
    const entries = limit === undefined ? page.entries : page.entries.slice(0, limit);
    const body = `[${entries.map((entry) => envelopeMessage(room, entry.offset, page.epoch, entry.data)).join(",")}]`;
    return plain(200, body, JSON_HEADERS);
  }

  /** `GET /rooms/<name>/presence`: members, and identified users with their connection counts, across the cluster. */
  async function presence(
    request: Request,
    room: string,
    params: URLSearchParams,
    path: string,
    ip: string,
  ): Promise<Response> {
    const refusal = await mayRead(request, params, room, { what: "presence", path, ip });
    if (refusal !== undefined) return refusal;
    if (broker === undefined) {
      const body = { room, members: hub.members(room), users: hub.users(room).sort((a, b) => a.sub < b.sub ? -1 : 1) };
      return plain(200, JSON.stringify(body), JSON_HEADERS);
    }
    try {
      return plain(200, JSON.stringify({ room, ...await broker.roomPresence(room) }), JSON_HEADERS);
    } catch {
      return plain(503, "Presence is unavailable while the broker is down\n");
    }
  }

  /** `POST /rooms/<name>`: the body goes into the room as one message (text for text and JSON types). */
  async function publish(
    request: Request,
    room: string,
    params: URLSearchParams,
    path: string,
    ip: string,
  ): Promise<Response> {
    // The same credentials as a WebSocket (the shared token, or a JWT whose `publish` grants the room), and the admin
    // token, so the dashboard's publish form needs no second secret.
    const identity = isAdminRequest(request.headers, config.adminToken)
      ? ANONYMOUS
      : await authorize({ headers: request.headers, params }, config, { room, action: "publish" });
    if ("status" in identity) {
      await request.body?.cancel();
      logger.log("info", "publish refused", { status: identity.status, reason: identity.label, path, ip });
      return plain(identity.status, identity.reason + "\n", identity.headers);
    }
    if (publishing >= MAX_PUBLISHES_IN_FLIGHT) {
      await request.body?.cancel();
      stats.countRefusal("publish_busy");
      logger.log("warn", "publish refused", { status: 503, reason: "publish_busy", path, ip });
      return plain(503, `Too many publishes in progress (${MAX_PUBLISHES_IN_FLIGHT}): retry shortly\n`, {
        "retry-after": "1",
      });
    }
    publishing++;
    let message;
    try {
      message = await readPublishedMessage(request, {
        maxBytes: config.maxMessageBytes,
        timeoutMs: config.handshakeTimeout * 1000,
      });
    } finally {
      publishing--;
    }
    if (!message.ok) {
      logger.log("info", "publish refused", { status: message.status, path, ip });
      return plain(message.status, message.reason + "\n");
    }
    stats.messagesReceived++;
    stats.bytesIn += message.bytes;
    hub.publish(room, message.data);
    return plain(202, JSON.stringify({ room, bytes: message.bytes, type: message.kind }), JSON_HEADERS);
  }
}

/** A response with `text` as its body, `no-store`, plain text unless `headers` say otherwise. */
function plain(status: number, text: string, headers: Readonly<Record<string, string>> = {}): Response {
  return new Response(text, { status, headers: { "content-type": TEXT, "cache-control": "no-store", ...headers } });
}
