/**
 * The web-standard `Request → Response` handler every engine shares: plain HTTP routes, handshake checks, access
 * control, and the hand-off to the engine's upgrade.
 *
 * @module
 */

import { checkOrigin, checkToken, type ConnectionLimiter } from "./access.ts";
import type { ResolvedOptions } from "./config.ts";
import { checkHandshake, isWebSocketAttempt, type Refusal } from "./ws/handshake.ts";
import type { Endpoint, Hub } from "./hub/hub.ts";
import type { Logger } from "./log.ts";
import { METRICS_CONTENT_TYPE, renderMetrics } from "./metrics.ts";
import { renderPage } from "./page.ts";
import { MAIN_ROOM, parseRoomName, parseRoute } from "./route.ts";

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
}

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
}

const TEXT = "text/plain; charset=utf-8";
const JSON_TYPE = "application/json; charset=utf-8";

/** Per-request overrides for an app that mounts Hubbub under its own paths. */
export interface RouteOptions {
  /** Route as if the request were for this path (e.g. `/rooms/lobby` for your `/ws/lobby`). */
  path?: string;
}

/** The shared handler's signature. */
export type Handler = (request: Request, info: ClientInfo, route?: RouteOptions) => Response;

/** Builds the `Request → Response` handler for one server. */
export function createHandler(options: HandlerOptions): Handler {
  const { hub, logger, limiter, upgrade } = options;
  const config = options.options;
  const memory = options.memory ?? (() => Deno.memoryUsage());
  const stats = hub.stats;
  // Rendered once: the page tells a refused browser whether a token or origin rule is on (never the token).
  const origins = config.allowedOrigins;
  const page = renderPage({
    tokenRequired: config.token !== "",
    originRestricted: origins.length > 0 && !origins.includes("*"),
  });
  const refuse = (refusal: Refusal, path: string, ip: string): Response => {
    stats.countRefusal(refusal.label);
    logger.log(refusal.status >= 500 || refusal.status === 429 ? "warn" : "info", "handshake refused", {
      status: refusal.status,
      reason: refusal.label,
      path,
      ip,
    });
    return new Response(refusal.reason + "\n", {
      status: refusal.status,
      headers: { "content-type": TEXT, ...refusal.headers },
    });
  };

  return (request, info, route) => {
    const url = new URL(request.url);
    const path = route?.path ?? url.pathname;
    const ip = info.remoteAddr.hostname;
    const target = parseRoute(path, { mode: config.mode });

    if (isWebSocketAttempt(request.headers)) {
      if (target.kind === "error") return refuse(target, path, ip);
      if (target.kind !== "socket") {
        return refuse(
          { status: 404, reason: `No WebSocket endpoint at ${path}`, label: "not_found" },
          path,
          ip,
        );
      }
      const refusal = checkHandshake(request.method, request.headers) ??
        checkOrigin(request.headers.get("origin"), config) ??
        (config.token ? checkToken({ headers: request.headers, url }, config.token) : undefined);
      if (refusal) return refuse(refusal, path, ip);
      const slot = limiter.acquire(ip);
      if (typeof slot !== "function") return refuse(slot, path, ip);
      try {
        const response = upgrade({ request, endpoint: target.endpoint, release: slot, ip, path });
        stats.upgrades++;
        return response;
      } catch (error) {
        slot();
        return refuse(
          { status: 400, reason: `WebSocket upgrade failed: ${(error as Error).message}`, label: "upgrade_failed" },
          path,
          ip,
        );
      }
    }

    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response(`Method ${request.method.slice(0, 16)} not allowed: use GET\n`, {
        status: 405,
        headers: { "content-type": TEXT, allow: "GET, HEAD" },
      });
    }
    const body = (text: string, type: string, status = 200) =>
      new Response(request.method === "HEAD" ? null : text, {
        status,
        headers: { "content-type": type, "cache-control": "no-store" },
      });
    switch (target.kind) {
      case "error":
        return body(target.reason + "\n", TEXT, target.status);
      case "healthz":
        return body(
          JSON.stringify({ status: "ok", connections: hub.connections, rooms: hub.roomCount }),
          JSON_TYPE,
        );
      case "stats": {
        const param = url.searchParams.get("room");
        if (param === null || param === "" || param === MAIN_ROOM) {
          return body(JSON.stringify({ room: MAIN_ROOM, members: hub.members(MAIN_ROOM) }), JSON_TYPE);
        }
        const parsed = parseRoomName(encodeURIComponent(param));
        if ("error" in parsed) return body(parsed.error + "\n", TEXT, 400);
        return body(JSON.stringify({ room: parsed.name, members: hub.members(parsed.name) }), JSON_TYPE);
      }
      case "metrics":
        return body(renderMetrics({ hub, memory: memory() }), METRICS_CONTENT_TYPE);
      case "socket":
        return body(page, "text/html; charset=utf-8");
    }
  };
}
