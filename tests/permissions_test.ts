/**
 * Room permissions from the `hubbub` claim: parsing, refusal of malformed claims, `*` matching checked against a
 * reference over every short name, the main room, and matching time that stays flat on adversarial patterns.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ALL_ROOMS, MAX_PATTERNS, parseRoomPermissions, type RoomPermissions } from "../lib/auth/permissions.ts";
import { MAIN_ROOM } from "../lib/route.ts";

function parse(claim: unknown): RoomPermissions {
  const parsed = parseRoomPermissions(claim);
  if ("error" in parsed) throw new Error(parsed.error);
  return parsed.permissions;
}

Deno.test("parseRoomPermissions() without a claim allows every room both ways, the main room included", () => {
  const permissions = parse(undefined);
  assert.equal(permissions, ALL_ROOMS);
  for (const room of [MAIN_ROOM, "lobby", "x".repeat(64)]) {
    assert.equal(permissions.canSubscribe(room), true, room);
    assert.equal(permissions.canPublish(room), true, room);
  }
});

Deno.test("parseRoomPermissions() grants each list its own rooms; team-* matches any run, empty included", () => {
  const permissions = parse({ subscribe: ["lobby", "team-*"], publish: ["lobby"] });
  const cases: [room: string, subscribe: boolean, publish: boolean][] = [
    ["lobby", true, true],
    ["team-red", true, false],
    ["team-", true, false],
    ["team-a.b_c-d", true, false],
    ["team", false, false],
    ["xteam-red", false, false],
    ["Lobby", false, false],
    ["lobby2", false, false],
    [MAIN_ROOM, false, false],
  ];
  for (const [room, subscribe, publish] of cases) {
    assert.equal(permissions.canSubscribe(room), subscribe, `subscribe ${room}`);
    assert.equal(permissions.canPublish(room), publish, `publish ${room}`);
  }
});

Deno.test("parseRoomPermissions(): / is the main room, and * never matches it", () => {
  const main = parse({ subscribe: ["/"], publish: ["*"] });
  assert.equal(main.canSubscribe(MAIN_ROOM), true);
  assert.equal(main.canSubscribe("lobby"), false);
  assert.equal(main.canPublish(MAIN_ROOM), false);
  assert.equal(main.canPublish("lobby"), true);
});

Deno.test("parseRoomPermissions(): a missing list allows nothing that way; an empty claim allows nothing", () => {
  const subscribeOnly = parse({ subscribe: ["*", "/"] });
  assert.equal(subscribeOnly.canSubscribe("lobby"), true);
  assert.equal(subscribeOnly.canPublish("lobby"), false);
  assert.equal(subscribeOnly.canPublish(MAIN_ROOM), false);
  const nothing = parse({});
  assert.equal(nothing.canSubscribe("lobby"), false);
  assert.equal(nothing.canPublish(MAIN_ROOM), false);
});

Deno.test("parseRoomPermissions(): names that are not rooms never match, not even *", () => {
  const permissions = parse({ subscribe: ["*"], publish: ["*a*"] });
  for (const room of ["", "a b", "a/b", "lobby\n", "é", "x".repeat(65), "a".repeat(65), "*"]) {
    assert.equal(permissions.canSubscribe(room), false, JSON.stringify(room));
    assert.equal(permissions.canPublish(room), false, JSON.stringify(room));
  }
});

/** Every string over `alphabet` of length `min` to `max`. */
function strings(alphabet: string, min: number, max: number): string[] {
  let level = [""];
  const all: string[] = min === 0 ? [""] : [];
  for (let length = 1; length <= max; length++) {
    level = level.flatMap((prefix) => [...alphabet].map((char) => prefix + char));
    if (length >= min) all.push(...level);
  }
  return all;
}

Deno.test("parseRoomPermissions(): * matching agrees with a regular-expression reference on every short case", () => {
  // The reference builds a regex from the pattern, which is fine for these short test strings and nothing else.
  const reference = (pattern: string, room: string) =>
    new RegExp(`^${pattern.replaceAll(".", "\\.").replaceAll("*", "[A-Za-z0-9._-]*")}$`).test(room);
  const patterns = strings("ab.*", 1, 4);
  const rooms = strings("ab.", 1, 5);
  let matches = 0;
  for (const pattern of patterns) {
    const permissions = parse({ subscribe: [pattern] });
    for (const room of rooms) {
      const expected = reference(pattern, room);
      assert.equal(permissions.canSubscribe(room), expected, `${pattern} ~ ${room}`);
      if (expected) matches++;
    }
  }
  // Both outcomes were exercised in bulk.
  assert.ok(matches > 1000 && matches < patterns.length * rooms.length / 2, `${matches}`);
});

Deno.test("parseRoomPermissions(): overlapping prefix and suffix need room for both", () => {
  const permissions = parse({ subscribe: ["ab*ba", "a*a"] });
  assert.equal(permissions.canSubscribe("aba"), true); // a*a
  assert.equal(permissions.canSubscribe("abba"), true);
  assert.equal(permissions.canSubscribe("a"), false);
  assert.equal(parse({ subscribe: ["ab*ba"] }).canSubscribe("aba"), false);
});

Deno.test("parseRoomPermissions() refuses a malformed claim with a reason that does not echo it", () => {
  const cases: [claim: unknown, reason: string][] = [
    [null, "hubbub claim must be an object with subscribe and publish lists"],
    [["lobby"], "hubbub claim must be an object with subscribe and publish lists"],
    ["lobby", "hubbub claim must be an object with subscribe and publish lists"],
    [42, "hubbub claim must be an object with subscribe and publish lists"],
    [{ subscribe: "lobby" }, "hubbub.subscribe must be an array of room patterns"],
    [{ publish: { lobby: true } }, "hubbub.publish must be an array of room patterns"],
    [{ subscribe: null }, "hubbub.subscribe must be an array of room patterns"],
    [{ subscribe: ["lobby", 7] }, "hubbub.subscribe[1] is not a room pattern (1-64 of A-Z a-z 0-9 . _ - *, or /)"],
    [{ subscribe: [""] }, "hubbub.subscribe[0] is not a room pattern (1-64 of A-Z a-z 0-9 . _ - *, or /)"],
    [{ publish: ["ok", "a b"] }, "hubbub.publish[1] is not a room pattern (1-64 of A-Z a-z 0-9 . _ - *, or /)"],
    [{ publish: ["a/b"] }, "hubbub.publish[0] is not a room pattern (1-64 of A-Z a-z 0-9 . _ - *, or /)"],
    [{ publish: ["//"] }, "hubbub.publish[0] is not a room pattern (1-64 of A-Z a-z 0-9 . _ - *, or /)"],
    [{ publish: ["x".repeat(65)] }, "hubbub.publish[0] is not a room pattern (1-64 of A-Z a-z 0-9 . _ - *, or /)"],
    [{ publish: ["team-(.*)"] }, "hubbub.publish[0] is not a room pattern (1-64 of A-Z a-z 0-9 . _ - *, or /)"],
    [{ subscribe: ["lobby"], publsh: ["lobby"] }, "hubbub claim may only have the keys subscribe and publish"],
    [JSON.parse('{"__proto__": []}'), "hubbub claim may only have the keys subscribe and publish"],
    [{ subscribe: Array(MAX_PATTERNS + 1).fill("a") }, `hubbub.subscribe has more than ${MAX_PATTERNS} patterns`],
  ];
  for (const [claim, reason] of cases) assert.deepEqual(parseRoomPermissions(claim), { error: reason });
  assert.ok("permissions" in parseRoomPermissions({ subscribe: Array(MAX_PATTERNS).fill("a") }));
});

Deno.test("parseRoomPermissions(): matching time stays flat on patterns that make a backtracking regex explode", () => {
  // As a regex with [A-Za-z0-9._-]* for each star, this backtracks through ~63^30 ways to split the a's before
  // giving up on the missing c; the compiled matcher finds each gap's text once and stops at the c.
  const pattern = "a*".repeat(30) + "c*b";
  const evil = parse({ subscribe: [pattern] });
  const plain = parse({ subscribe: ["lob*"] });
  const room = "a".repeat(63) + "b";
  assert.equal(pattern.length, 63);
  const time = (run: () => void) => {
    const start = performance.now();
    for (let i = 0; i < 20_000; i++) run();
    return performance.now() - start;
  };
  time(() => evil.canSubscribe(room)); // warm up both
  time(() => plain.canSubscribe("lobby"));
  const evilTime = time(() => assert.equal(evil.canSubscribe(room), false));
  const plainTime = time(() => assert.equal(plain.canSubscribe("lobby"), true));
  // 64 characters scanned instead of 5, plus the room check: tens of times slower at most, never exponential.
  assert.ok(evilTime < plainTime * 200, `adversarial ${evilTime.toFixed(1)} ms vs plain ${plainTime.toFixed(1)} ms`);
});
