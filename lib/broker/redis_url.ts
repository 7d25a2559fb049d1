/**
 * Redis connection URLs: `redis://[user:password@]host[:port][/db]`, and `rediss://` for TLS. The password never
 * appears in an error message or in {@linkcode describeRedisUrl}.
 *
 * @example
 * ```ts
 * import { describeRedisUrl, parseRedisUrl } from "./redis_url.ts";
 * import assert from "node:assert/strict";
 * const url = parseRedisUrl("rediss://hub:s%40cret@redis.internal:6380/2");
 * assert.deepEqual(
 *   { ...url },
 *   { tls: true, hostname: "redis.internal", port: 6380, username: "hub", password: "s@cret", db: 2 },
 * );
 * assert.equal(describeRedisUrl(url), "rediss://redis.internal:6380/2");
 * ```
 *
 * @module
 */

/** Where and how to reach one Redis server. */
export interface RedisUrl {
  /** Whether to speak TLS (`rediss://`). */
  readonly tls: boolean;
  /** Host name or IP address (an IPv6 address without its brackets). */
  readonly hostname: string;
  /** TCP port. */
  readonly port: number;
  /** ACL user name for `AUTH user password`; none for `AUTH password`. */
  readonly username: string | undefined;
  /** The password sent with AUTH; none to skip AUTH. */
  readonly password: string | undefined;
  /** Database index sent with SELECT (0 skips it). */
  readonly db: number;
}

/** Redis's port, for both `redis://` and `rediss://` (Redis itself has no separate default TLS port). */
export const REDIS_DEFAULT_PORT = 6379;
/** Highest database index accepted: Redis ships with `databases 16` (and Redis Cluster has only database 0). */
export const REDIS_MAX_DB = 15;

const SHAPE = "redis://[user:password@]host[:port][/db] or rediss://...";

/** The URL with everything before its last `@` after the scheme replaced, so a password cannot leak into a message. */
function redacted(url: string): string {
  const at = url.lastIndexOf("@");
  const scheme = url.indexOf("://");
  if (at === -1) return url;
  return `${scheme === -1 ? "" : url.slice(0, scheme + 3)}***${url.slice(at)}`;
}

function decodeUserInfo(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    // The value itself must not be shown: it may be the password.
    throw new TypeError(`Redis URL ${what} has an invalid percent-encoding; encode '%' as %25`);
  }
}

/**
 * Parses a Redis URL. Throws `TypeError` naming what is wrong (the password replaced by `***`) for another scheme, a
 * missing host, a query or fragment, a user without a password, or a database outside 0–{@linkcode REDIS_MAX_DB}.
 */
export function parseRedisUrl(url: string): RedisUrl {
  if (typeof url !== "string") throw new TypeError(`Redis URL must be a string: ${typeof url}`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`Redis URL is not a URL (expected ${SHAPE}): ${redacted(url)}`);
  }
  const shown = redacted(url);
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new TypeError(`Redis URL must start with redis:// or rediss://: ${shown}`);
  }
  const hostname = parsed.hostname.startsWith("[") ? parsed.hostname.slice(1, -1) : parsed.hostname;
  if (hostname === "") throw new TypeError(`Redis URL has no host (expected ${SHAPE}): ${shown}`);
  if (parsed.search !== "" || parsed.hash !== "") {
    throw new TypeError(`Redis URL takes no query or fragment (expected ${SHAPE}): ${redacted(url.split(/[?#]/)[0])}`);
  }
  const path = parsed.pathname;
  let db = 0;
  if (path !== "" && path !== "/") {
    const digits = path.slice(1);
    db = /^\d{1,2}$/.test(digits) ? Number(digits) : NaN;
    if (!(db <= REDIS_MAX_DB)) {
      throw new TypeError(`Redis URL database must be a number from 0 to ${REDIS_MAX_DB}: ${digits}`);
    }
  }
  const username = parsed.username === "" ? undefined : decodeUserInfo(parsed.username, "user name");
  const password = parsed.password === "" ? undefined : decodeUserInfo(parsed.password, "password");
  if (username !== undefined && password === undefined) {
    throw new TypeError(`Redis URL has a user name but no password; write redis://user:password@host: ${shown}`);
  }
  return {
    tls: parsed.protocol === "rediss:",
    hostname,
    port: parsed.port === "" ? REDIS_DEFAULT_PORT : Number(parsed.port),
    username,
    password,
    db,
  };
}

/** `host:port` for messages and logs, IPv6 in brackets; never a user name or password. */
export function redisAddress(url: Pick<RedisUrl, "hostname" | "port">): string {
  return url.hostname.includes(":") ? `[${url.hostname}]:${url.port}` : `${url.hostname}:${url.port}`;
}

/** The URL without its credentials, e.g. `rediss://redis.internal:6380/2`, safe to log. */
export function describeRedisUrl(url: RedisUrl): string {
  return `${url.tls ? "rediss" : "redis"}://${redisAddress(url)}${url.db === 0 ? "" : `/${url.db}`}`;
}
