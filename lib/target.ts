/**
 * What a request asked for, read as the client sent it: the Host check (RFC 9112 §3.2) and the request target's path
 * and query, never normalised. Routing on anything else lets a client steer it: a `Host: x/rooms/secret?` spliced
 * into `new URL(request.url)` changes the path, and the URL parser folds `/rooms/%2e%2e/metrics` and `\` into paths
 * that a proxy in front never saw.
 *
 * @module
 */

/** A request target split into its raw path and query (without the `?`). */
export interface Target {
  /** The path as sent: not percent-decoded, dot segments and backslashes left as they are. */
  readonly path: string;
  /** The query as sent, without the leading `?`; empty when there is none. */
  readonly query: string;
}

// RFC 3986 §3.2.2 reg-name without percent-encoding (unreserved and sub-delims), or an IP literal in brackets, then an
// optional port. An empty host is allowed (RFC 9112 §3.2: a target URI without an authority).
const HOST = /^(?:[A-Za-z0-9._~!$&'()*+,;=-]*|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?$/;

/**
 * Whether `value` is a valid `Host` header: a host name, IPv4 address or bracketed IPv6 address, then an optional
 * port up to 65535. Anything else (spaces, `/`, `?`, `#`, `@`, a port out of range) is a 400.
 *
 * @example
 * ```ts
 * import { isValidHost } from "./target.ts";
 * import assert from "node:assert/strict";
 * assert.equal(isValidHost("localhost:8765"), true);
 * assert.equal(isValidHost("[::1]:8765"), true);
 * assert.equal(isValidHost("x/rooms/secret?"), false);
 * assert.equal(isValidHost("x:99999"), false);
 * ```
 */
export function isValidHost(value: string): boolean {
  const match = HOST.exec(value);
  return match !== null && (match[1] === undefined || Number(match[1]) <= 65535);
}

// scheme "://" authority, as an absolute-form target or a request URL begins (RFC 3986 §3).
const SCHEME_AND_AUTHORITY = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/;

/**
 * Splits a request target into its raw path and query. Accepts origin-form (`/path?query`) and absolute-form
 * (`http://host/path?query`, RFC 9112 §3.2.2, whose authority is then ignored); anything else — a target not starting
 * with `/`, or one carrying a `#` fragment — is an error.
 *
 * `Deno.serve` builds `request.url` as the scheme, the Host header (already checked with {@linkcode isValidHost}, so it
 * holds no `/`) and the target as sent, so the same function reads the target back from it.
 *
 * @example
 * ```ts
 * import { splitTarget } from "./target.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(splitTarget("/rooms/lobby?token=a%2Bb"), { path: "/rooms/lobby", query: "token=a%2Bb" });
 * assert.deepEqual(splitTarget("http://127.0.0.1:8765/healthz"), { path: "/healthz", query: "" });
 * assert.deepEqual(splitTarget("/rooms/%2e%2e"), { path: "/rooms/%2e%2e", query: "" });
 * assert.equal("error" in splitTarget("healthz"), true);
 * ```
 */
export function splitTarget(target: string): Target | { error: string } {
  let rest = target;
  if (!rest.startsWith("/")) {
    const authority = SCHEME_AND_AUTHORITY.exec(rest);
    if (authority === null) return { error: `Malformed request target: ${clip(target)}` };
    rest = rest.slice(authority[0].length);
    if (rest === "" || rest.startsWith("?")) rest = "/" + rest;
    if (!rest.startsWith("/")) return { error: `Malformed request target: ${clip(target)}` };
  }
  if (rest.includes("#")) return { error: `Malformed request target: a fragment (#) is not sent: ${clip(target)}` };
  const question = rest.indexOf("?");
  return question < 0 ? { path: rest, query: "" } : { path: rest.slice(0, question), query: rest.slice(question + 1) };
}

function clip(text: string): string {
  return JSON.stringify(text.slice(0, 80));
}
