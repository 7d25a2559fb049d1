/**
 * URL paths → what Hubbub serves there.
 *
 * @module
 */

import type { Endpoint } from "./hub/hub.ts";

/** How `/` behaves: the broadcast chat room (default) or the tutorial's echo server. */
export type Mode = "broadcast" | "echo";
/** Every accepted {@linkcode Mode}. */
export const MODES: readonly Mode[] = ["broadcast", "echo"];

/** The hub's key for the room at `/`; no named room can take it, since names never contain `/`. */
export const MAIN_ROOM = "/";

/** Allowed room names: 1–64 characters of `A–Z a–z 0–9 . _ -`, after percent-decoding; never `.` or `..`. */
export const ROOM_NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** What a path resolves to. */
export type Route =
  | { readonly kind: "socket"; readonly endpoint: Endpoint }
  | { readonly kind: "history" | "presence"; readonly room: string }
  | { readonly kind: "healthz" | "metrics" | "stats" | "dashboard" | "dashboard.json" }
  | { readonly kind: "error"; readonly status: 400 | 404; readonly reason: string; readonly label: string };

const ECHO: Endpoint = { kind: "echo" };
const MAIN: Endpoint = { kind: "room", room: MAIN_ROOM };

/**
 * Validates a room name given as it appears in a URL (percent-encoded) and returns the decoded name, or an error.
 *
 * @example
 * ```ts
 * import { parseRoomName } from "./route.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(parseRoomName("lobby%2D1"), { name: "lobby-1" });
 * assert.equal("error" in parseRoomName("no spaces"), true);
 * assert.equal("error" in parseRoomName("%2e%2e"), true);
 * ```
 */
export function parseRoomName(encoded: string): { name: string } | { error: string } {
  let name: string;
  try {
    name = decodeURIComponent(encoded);
  } catch {
    return { error: `Room name is not valid percent-encoding: ${encoded.slice(0, 80)}` };
  }
  if (!ROOM_NAME.test(name)) {
    return {
      error: `Room name must be 1-64 characters of A-Z a-z 0-9 . _ - : ${JSON.stringify(name.slice(0, 80))}`,
    };
  }
  // A proxy or client library would fold these into the parent path, so such a room could never be reached by name.
  if (name === "." || name === "..") return { error: `Room name cannot be . or ..: ${JSON.stringify(name)}` };
  return { name };
}

/**
 * Resolves a raw request path (as sent, see `splitTarget`) under `mode`: a path is exactly a known route, a room, or
 * 404; nothing is normalised.
 */
export function parseRoute(pathname: string, options: { mode?: Mode } = {}): Route {
  switch (pathname) {
    case "/":
      return { kind: "socket", endpoint: options.mode === "echo" ? ECHO : MAIN };
    case "/echo":
      return { kind: "socket", endpoint: ECHO };
    case "/healthz":
      return { kind: "healthz" };
    case "/metrics":
      return { kind: "metrics" };
    case "/stats":
      return { kind: "stats" };
    case "/history":
      return { kind: "history", room: MAIN_ROOM };
    case "/presence":
      return { kind: "presence", room: MAIN_ROOM };
    case "/dashboard":
    case "/dashboard.json":
      return { kind: pathname.slice(1) as "dashboard" | "dashboard.json" };
  }
  for (const kind of ["history", "presence"] as const) {
    if (pathname.startsWith("/rooms/") && pathname.endsWith(`/${kind}`)) {
      const parsed = parseRoomName(pathname.slice("/rooms/".length, -(kind.length + 1)));
      if ("error" in parsed) return { kind: "error", status: 400, reason: parsed.error, label: "bad_room" };
      return { kind, room: parsed.name };
    }
  }
  if (pathname === "/rooms" || pathname.startsWith("/rooms/")) {
    const parsed = parseRoomName(pathname.slice("/rooms/".length));
    if ("error" in parsed) return { kind: "error", status: 400, reason: parsed.error, label: "bad_room" };
    return { kind: "socket", endpoint: { kind: "room", room: parsed.name } };
  }
  return {
    kind: "error",
    status: 404,
    reason: `No such path: ${pathname.slice(0, 80)} (try /, /echo or /rooms/<name>)`,
    label: "not_found",
  };
}
