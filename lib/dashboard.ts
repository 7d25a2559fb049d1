/**
 * The operator's dashboard: `GET /dashboard` (the page, {@linkcode DASHBOARD_PAGE}) and `GET /dashboard.json` (one
 * {@linkcode DashboardSnapshot}, polled by the page once a second), both behind the admin guard of `auth/admin.ts`.
 *
 * The snapshot holds counters, not rates: the page divides the difference of two snapshots by the difference of their
 * `uptimeMs`, so the server keeps no state and no timer for it, and every counter is the one `/metrics` shows.
 *
 * @module
 */

import { type AdminAccess, adminAccess, checkAdmin, isLoopbackHost } from "./auth/admin.ts";
import type { Broker, BrokerState, NodeInfo } from "./broker/broker.ts";
import type { Engine, ResolvedOptions } from "./config.ts";
import { DASHBOARD_PAGE } from "./dashboard_page.ts";
import type { Hub } from "./hub/hub.ts";
import type { RoomSummary } from "./hub/room.ts";
import { DROP_REASONS, type DropReason } from "./hub/stats.ts";
import type { Mode } from "./route.ts";

/**
 * Rooms a snapshot lists, the largest first. 100: a screenful for a person, and a few kilobytes of JSON a second
 * however many rooms the hub has; the filter finds the others.
 */
export const DASHBOARD_ROOM_LIMIT = 100;
/** Longest filter accepted (a room name is at most 64 characters, so a longer filter matches nothing). */
export const DASHBOARD_FILTER_MAX = 64;
/**
 * How long a snapshot waits for the broker's node table. 1 s: Redis answers in a millisecond when it is well; a
 * frozen Redis must not stall the page, which polls once a second.
 */
export const DASHBOARD_CLUSTER_TIMEOUT_MS = 1000;

/** One row of the rooms table. */
export interface DashboardRoom extends RoomSummary {
  /** Messages the room's history keeps, or `null` while history is off. */
  readonly history: number | null;
}

/** The cluster as the broker sees it; `null` counts when it could not be asked. */
export interface DashboardCluster {
  /** This node's broker: `ok` while messages flow. */
  readonly broker: BrokerState;
  /** Open connections on every live node, or `null` when the broker could not answer. */
  readonly connections: number | null;
  /** Distinct rooms with a member on some node, or `null`. */
  readonly rooms: number | null;
  /** The live nodes by address (empty when the broker could not answer). */
  readonly nodes: readonly NodeInfo[];
  /** Why the broker could not answer, or `null`. */
  readonly error: string | null;
}

/** What `/dashboard.json` answers. */
export interface DashboardSnapshot {
  /** The server: how it runs, how the dashboard is guarded, and its clocks. */
  readonly server: {
    readonly engine: Engine;
    readonly mode: Mode;
    /** The interface it listens on (`--hostname`). */
    readonly hostname: string;
    /** Whether that interface is loopback only. */
    readonly loopback: boolean;
    /** How the dashboard is guarded. */
    readonly access: AdminAccess;
    /** When the server started, in milliseconds since the epoch. */
    readonly startedAt: number;
    /** Milliseconds since the start on a monotonic clock: divide counter differences by its differences. */
    readonly uptimeMs: number;
    /** The server's wall clock now, in milliseconds since the epoch (to age heartbeats without the browser's clock). */
    readonly now: number;
  };
  /** This node's counters, named as in `Stats` (lib/hub/stats.ts); each equals its `/metrics` series. */
  readonly totals: {
    readonly connections: number;
    readonly rooms: number;
    readonly upgrades: number;
    readonly upgradesAborted: number;
    readonly messagesReceived: number;
    readonly messagesDelivered: number;
    readonly bytesIn: number;
    readonly bytesOut: number;
    readonly dropped: Readonly<Record<DropReason, number>>;
    readonly refused: Readonly<Record<string, number>>;
    readonly closes: Readonly<Record<string, number>>;
    readonly acceptErrors: Readonly<Record<string, number>>;
    /** Messages and bytes kept for replay in this node's memory (0 when the history lives in a broker). */
    readonly historyMessages: number;
    readonly historyBytes: number;
    /** Reconnections with `?since=`, by result. */
    readonly recoveries: { readonly recovered: number; readonly lost: number };
  };
  /** Process memory in bytes, from `Deno.memoryUsage()`. */
  readonly memory: {
    readonly rss: number;
    readonly heapUsed: number;
    readonly heapTotal: number;
    readonly external: number;
  };
  /** This node's rooms: those whose name contains `filter` (any case), most members first, at most `limit`. */
  readonly rooms: {
    readonly filter: string;
    /** Rooms matching the filter, listed or not. */
    readonly matched: number;
    readonly limit: number;
    readonly list: readonly DashboardRoom[];
  };
  /** With a broker, the cluster; else `null`. */
  readonly cluster: DashboardCluster | null;
}

/** What a snapshot is taken from. */
export interface SnapshotOptions {
  /** The hub. */
  hub: Hub;
  /** The server's options. */
  options: Pick<ResolvedOptions, "engine" | "mode" | "hostname" | "adminToken" | "token" | "jwt">;
  /** Process memory now. */
  memory: { rss: number; heapUsed: number; heapTotal: number; external: number };
  /** When the server started (ms since the epoch) and how long ago on a monotonic clock. */
  clock: { startedAt: number; uptimeMs: number; now: number };
  /** The broker, when the hub spans several nodes. @default {undefined} */
  broker?: Broker;
  /** This node's kept history, for its totals. @default {nothing kept} */
  kept?: { readonly messages: number; readonly bytes: number };
  /** Only rooms whose name contains this (any case). @default {""} */
  filter?: string;
  /** Messages a room's history keeps, or `null` when history is off. @default {() => null} */
  history?: (room: string) => number | null;
}

/**
 * Takes one snapshot; asks the broker (if any) for the node table, waiting at most
 * {@linkcode DASHBOARD_CLUSTER_TIMEOUT_MS}.
 *
 * @example
 * ```ts
 * import { Hub } from "./hub/hub.ts";
 * import { resolveOptions } from "./config.ts";
 * import { dashboardSnapshot } from "./dashboard.ts";
 * import assert from "node:assert/strict";
 * const hub = new Hub();
 * const peer = { id: 1, bufferedAmount: 0, send() {}, close() {} };
 * hub.connect(peer, { kind: "room", room: "lobby" }).receive("hi");
 * const snapshot = await dashboardSnapshot({
 *   hub,
 *   options: resolveOptions({}),
 *   memory: { rss: 1, heapUsed: 1, heapTotal: 1, external: 0 },
 *   clock: { startedAt: 0, uptimeMs: 1000, now: 1000 },
 * });
 * assert.deepEqual(snapshot.rooms.list, [{ name: "lobby", members: 1, messages: 1, history: null }]);
 * ```
 */
export async function dashboardSnapshot(options: SnapshotOptions): Promise<DashboardSnapshot> {
  const { hub, memory, clock, broker } = options;
  const config = options.options;
  const stats = hub.stats;
  const access = adminAccess(config);
  return {
    server: {
      engine: config.engine,
      mode: config.mode,
      hostname: config.hostname,
      loopback: isLoopbackHost(config.hostname),
      access: typeof access === "string" ? access : "admin_token",
      startedAt: clock.startedAt,
      uptimeMs: clock.uptimeMs,
      now: clock.now,
    },
    totals: {
      connections: hub.connections,
      rooms: hub.roomCount,
      upgrades: stats.upgrades,
      upgradesAborted: stats.upgradesAborted,
      messagesReceived: stats.messagesReceived,
      messagesDelivered: stats.messagesDelivered,
      bytesIn: stats.bytesIn,
      bytesOut: stats.bytesOut,
      dropped: Object.fromEntries(DROP_REASONS.map((reason) => [reason, stats.dropped[reason]])) as Record<
        DropReason,
        number
      >,
      refused: Object.fromEntries(stats.refused),
      closes: Object.fromEntries(stats.closes),
      acceptErrors: Object.fromEntries(stats.acceptErrors),
      historyMessages: options.kept?.messages ?? 0,
      historyBytes: options.kept?.bytes ?? 0,
      recoveries: { ...stats.recoveries },
    },
    memory: { rss: memory.rss, heapUsed: memory.heapUsed, heapTotal: memory.heapTotal, external: memory.external },
    rooms: topRooms(hub.rooms(), options.filter ?? "", options.history ?? (() => null)),
    cluster: broker === undefined ? null : await clusterOf(broker),
  };
}

function topRooms(
  rooms: Iterable<RoomSummary>,
  filter: string,
  history: (room: string) => number | null,
): DashboardSnapshot["rooms"] {
  const needle = filter.toLowerCase();
  const matched: RoomSummary[] = [];
  for (const room of rooms) if (needle === "" || room.name.toLowerCase().includes(needle)) matched.push(room);
  // Most members first; equal rooms by name, so rows keep their places between polls.
  matched.sort((a, b) => b.members - a.members || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const list = matched.slice(0, DASHBOARD_ROOM_LIMIT).map((room) => ({ ...room, history: history(room.name) }));
  return { filter, matched: matched.length, limit: DASHBOARD_ROOM_LIMIT, list };
}

async function clusterOf(broker: Broker): Promise<DashboardCluster> {
  const down = (error: string): DashboardCluster => ({
    broker: "down",
    connections: null,
    rooms: null,
    nodes: [],
    error,
  });
  if (broker.state !== "ok") return down("The broker is down: messages are buffered until it is back");
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const [counts, nodes] = await Promise.race([
      Promise.all([broker.counts(), broker.nodes()]),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`The broker did not answer within ${DASHBOARD_CLUSTER_TIMEOUT_MS} ms`)),
          DASHBOARD_CLUSTER_TIMEOUT_MS,
        );
      }),
    ]);
    const byAddress = [...nodes].sort((a, b) => a.address < b.address ? -1 : a.address > b.address ? 1 : 0);
    return {
      broker: broker.state,
      connections: counts.connections,
      rooms: counts.rooms,
      nodes: byAddress,
      error: null,
    };
  } catch (error) {
    return down((error as Error).message);
  } finally {
    clearTimeout(timer);
  }
}

/** What the dashboard routes need from the server. */
export interface DashboardOptions {
  /** The hub. */
  hub: Hub;
  /** The server's options. */
  options: ResolvedOptions;
  /** Process memory. */
  memory: () => { rss: number; heapUsed: number; heapTotal: number; external: number };
  /** The broker, when the hub spans several nodes. @default {undefined} */
  broker?: Broker;
  /** Messages a room's history keeps, or `null` when history is off. @default {() => null} */
  history?: (room: string) => number | null;
  /** This node's kept history, for the totals. @default {nothing kept} */
  kept?: { readonly messages: number; readonly bytes: number };
}

/** The dashboard's two routes, as the handler calls them. */
export interface Dashboard {
  /** `GET /dashboard`: the page (it holds no data), or 403 when no credential could open it from here. */
  page(request: Request, ip: string): Response;
  /** `GET /dashboard.json`: a snapshot, or 401/403 with the reason. */
  data(request: Request, params: URLSearchParams, ip: string): Promise<Response>;
}

const NO_STORE = { "cache-control": "no-store" };
/** The page runs only its own inline code, talks only to its own server, and is never framed (clickjacking). */
const PAGE_HEADERS = {
  ...NO_STORE,
  "content-type": "text/html; charset=utf-8",
  "content-security-policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
    "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
};

/** Builds the dashboard's routes for one server; its start time is now. */
export function createDashboard(options: DashboardOptions): Dashboard {
  const { hub, memory, broker, history } = options;
  const config = options.options;
  const startedAt = Date.now();
  const started = performance.now();
  const refuse = (refusal: { status: number; reason: string; headers?: Record<string, string> }) =>
    new Response(refusal.reason + "\n", {
      status: refusal.status,
      headers: { ...NO_STORE, "content-type": "text/plain; charset=utf-8", ...refusal.headers },
    });
  return {
    page(request, ip) {
      const refusal = checkAdmin({ headers: request.headers, ip }, config);
      // A missing or wrong admin token is asked for by the page itself; nothing else can be helped from here.
      if (refusal !== undefined && refusal.status !== 401) return refuse(refusal);
      return new Response(DASHBOARD_PAGE, { headers: PAGE_HEADERS });
    },
    async data(request, params, ip) {
      const refusal = checkAdmin({ headers: request.headers, ip }, config);
      if (refusal !== undefined) return refuse(refusal);
      const filter = (params.get("filter") ?? "").trim();
      if (filter.length > DASHBOARD_FILTER_MAX) {
        return refuse({ status: 400, reason: `Filter too long: at most ${DASHBOARD_FILTER_MAX} characters` });
      }
      const snapshot = await dashboardSnapshot({
        hub,
        options: config,
        memory: memory(),
        clock: { startedAt, uptimeMs: Math.round(performance.now() - started), now: Date.now() },
        broker,
        filter,
        history,
        kept: options.kept,
      });
      return new Response(JSON.stringify(snapshot), {
        headers: { ...NO_STORE, "content-type": "application/json; charset=utf-8" },
      });
    },
  };
}
