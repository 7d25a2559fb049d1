/**
 * Hubbub as a library: start a server with {@linkcode serve}, or mount the hub in your own `Deno.serve` handler
 * with {@linkcode createHubbub}; the {@linkcode Hub} itself works over any {@linkcode Peer}.
 *
 * @example
 * ```ts
 * import { serve } from "./mod.ts";
 * const server = serve({ port: 0, hostname: "127.0.0.1", logLevel: "warn" });
 * const socket = new WebSocket(`${server.wsUrl}/rooms/lobby`);
 * await new Promise((resolve) => socket.onopen = resolve);
 * socket.send("Hello World!");
 * const echo = await new Promise((resolve) => socket.onmessage = (event) => resolve(event.data));
 * if (echo !== "Hello World!") throw new Error("the room did not deliver");
 * socket.close();
 * await new Promise((resolve) => socket.onclose = resolve);
 * await server.shutdown();
 * ```
 *
 * @module
 */

export { createHubbub, type Hubbub, type HubbubServer, serve, SHUTDOWN_REASON } from "./lib/server.ts";
export {
  type CatchUpPlan,
  type Connection,
  type Endpoint,
  Hub,
  HUB_DEFAULTS,
  type HubOptions,
  type JoinOptions,
  planCatchUp,
} from "./lib/hub/hub.ts";
export {
  type HistoryEntry,
  type HistoryPage,
  ROOM_LOG_DEFAULTS,
  RoomLog,
  type RoomLogOptions,
  type Sequenced,
} from "./lib/broker/history.ts";
export type { Message, Peer } from "./lib/hub/peer.ts";
export { CLOSE_CODE, type CloseCode } from "./lib/ws/close_code.ts";
export { DEFAULTS, type Engine, type ResolvedOptions, type ServerOptions } from "./lib/config.ts";
export {
  createLogger,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFields,
  type LogFormat,
  type Logger,
  type LoggerOptions,
  type LogLevel,
  SILENT_LOGGER,
} from "./lib/log.ts";
export { DROP_REASONS, type DropReason, Stats } from "./lib/hub/stats.ts";
export { MAIN_ROOM, type Mode } from "./lib/route.ts";
export {
  createJwtVerifier,
  type HmacAlgorithm,
  JWT_REFUSAL,
  type JwtAlgorithm,
  type JwtClaims,
  type JwtResult,
  type JwtVerifier,
  type JwtVerifierOptions,
  signJwt,
  type SignJwtOptions,
} from "./lib/auth/jwt.ts";
export { ALL_ROOMS, type RoomPermissions } from "./lib/auth/permissions.ts";
export { type AuthOptions, authorize, type Identity, type RoomAction } from "./lib/auth/authorize.ts";
export { HUBBUB_PROTOCOL } from "./lib/ws/subprotocol.ts";
export type { Refusal } from "./lib/ws/handshake.ts";
export type { ClientInfo, Handler, RouteOptions } from "./lib/handler.ts";
export type {
  Broker,
  BrokerState,
  BrokerTarget,
  ClusterCounts,
  HistoryQuery,
  NodeInfo,
  PresenceCounts,
  ServerTotals,
} from "./lib/broker/broker.ts";
export type { RoomSummary } from "./lib/hub/room.ts";
export type { DashboardCluster, DashboardRoom, DashboardSnapshot } from "./lib/dashboard.ts";
export type { AdminAccess } from "./lib/auth/admin.ts";
