/**
 * Room permissions from a token's `hubbub` claim: which rooms its bearer may subscribe to and publish in.
 *
 * The claim is `{"subscribe": [patterns], "publish": [patterns]}`. A pattern is a room name (1–64 characters of
 * `A-Z a-z 0-9 . _ -`) in which `*` matches any run of those characters, possibly empty, or exactly `/` for the
 * main room (hub key {@linkcode MAIN_ROOM}); `*` never matches the main room, since `/` is not a name character.
 * With no claim every room is allowed both ways. Once the claim is present, a missing list allows nothing that way.
 *
 * @module
 */

import { MAIN_ROOM, ROOM_NAME } from "../route.ts";

/** What a token's bearer may do in which rooms. */
export interface RoomPermissions {
  /** Whether the bearer may join `room` (a hub key: a room name, or `/` for the main room) to receive. */
  canSubscribe(room: string): boolean;
  /** Whether the bearer may send to `room` (a hub key: a room name, or `/` for the main room). */
  canPublish(room: string): boolean;
}

/** The permissions of a token without a `hubbub` claim: every room, both ways. */
export const ALL_ROOMS: RoomPermissions = Object.freeze({ canSubscribe: () => true, canPublish: () => true });

/**
 * Patterns in one list. 100 is far more than a real grant needs (use `*`) and caps the work each room check does;
 * the token's size limit would cap it anyway, but only at about 2,000.
 */
export const MAX_PATTERNS = 100;

const PATTERN = /^[A-Za-z0-9._*-]{1,64}$/;
const LISTS = ["subscribe", "publish"] as const;

/**
 * Compiles one pattern into a matcher without regular expressions built from it: the text between stars is found
 * left to right with `indexOf`, which for `*`-only globs is exact and never backtracks (at most 64 × 64 steps).
 */
function compile(pattern: string): (room: string) => boolean {
  if (pattern === MAIN_ROOM || !pattern.includes("*")) return (room) => room === pattern;
  const parts = pattern.split("*");
  const first = parts[0];
  const last = parts[parts.length - 1];
  const middle = parts.slice(1, -1).filter((part) => part !== "");
  return (room) => {
    if (!ROOM_NAME.test(room) || room.length < first.length + last.length) return false;
    if (!room.startsWith(first) || !room.endsWith(last)) return false;
    const stop = room.length - last.length;
    let at = first.length;
    for (const part of middle) {
      const found = room.indexOf(part, at);
      if (found === -1 || found + part.length > stop) return false;
      at = found + part.length;
    }
    return true;
  };
}

function compileList(list: unknown, name: string): ((room: string) => boolean) | { error: string } {
  if (list === undefined) return () => false;
  if (!Array.isArray(list)) return { error: `hubbub.${name} must be an array of room patterns` };
  if (list.length > MAX_PATTERNS) return { error: `hubbub.${name} has more than ${MAX_PATTERNS} patterns` };
  const exact = new Set<string>();
  const wildcards: ((room: string) => boolean)[] = [];
  for (const [index, pattern] of list.entries()) {
    if (typeof pattern !== "string" || (pattern !== MAIN_ROOM && !PATTERN.test(pattern))) {
      return { error: `hubbub.${name}[${index}] is not a room pattern (1-64 of A-Z a-z 0-9 . _ - *, or /)` };
    }
    if (pattern.includes("*")) wildcards.push(compile(pattern));
    else exact.add(pattern);
  }
  return (room) => exact.has(room) || wildcards.some((matches) => matches(room));
}

/**
 * Parses a `hubbub` claim (`undefined` when the token has none) into {@linkcode RoomPermissions}, or an error saying
 * what is wrong with it (without echoing its values).
 *
 * @example
 * ```ts
 * import { parseRoomPermissions } from "./permissions.ts";
 * import assert from "node:assert/strict";
 * const parsed = parseRoomPermissions({ subscribe: ["lobby", "team-*"], publish: ["lobby"] });
 * if ("error" in parsed) throw new Error(parsed.error);
 * assert.equal(parsed.permissions.canSubscribe("team-red"), true);
 * assert.equal(parsed.permissions.canPublish("team-red"), false);
 * assert.equal("error" in parseRoomPermissions({ publish: "lobby" }), true);
 * ```
 */
export function parseRoomPermissions(claim: unknown): { permissions: RoomPermissions } | { error: string } {
  if (claim === undefined) return { permissions: ALL_ROOMS };
  if (typeof claim !== "object" || claim === null || Array.isArray(claim)) {
    return { error: "hubbub claim must be an object with subscribe and publish lists" };
  }
  // An unknown key is most likely a typo ("publsh"); refusing it beats silently granting less than meant.
  if (Object.keys(claim).some((key) => !(LISTS as readonly string[]).includes(key))) {
    return { error: "hubbub claim may only have the keys subscribe and publish" };
  }
  const record = claim as Record<string, unknown>;
  const subscribe = compileList(record.subscribe, "subscribe");
  if (typeof subscribe !== "function") return subscribe;
  const publish = compileList(record.publish, "publish");
  if (typeof publish !== "function") return publish;
  return { permissions: Object.freeze({ canSubscribe: subscribe, canPublish: publish }) };
}
