/**
 * Who may see the operator's dashboard: the admin token when one is set, else nobody once clients need a credential,
 * else this machine only.
 *
 * The admin token travels only as `Authorization: Bearer` — never in a query string, which proxies and browser
 * histories keep. "This machine" means a loopback peer that names a loopback host and came through no proxy: a reverse
 * proxy on the same box makes every client look like 127.0.0.1 (it says so in `Forwarded` or `X-Forwarded-For`), and a
 * page on another site can point its own host name at 127.0.0.1 (DNS rebinding; its requests then carry that name in
 * `Host`).
 *
 * @module
 */

import { timingSafeEqual } from "../access.ts";
import type { Refusal } from "../ws/handshake.ts";

/** The access rules the dashboard follows. */
export interface AdminOptions {
  /** The admin credential; empty is none. */
  readonly adminToken: string;
  /** The clients' shared token; empty is off. */
  readonly token: string;
  /** Whether clients need a JWT (any value is on). */
  readonly jwt?: unknown;
}

/** How the dashboard is guarded: by the admin token, or open to loopback because no credential is configured. */
export type AdminAccess = "admin_token" | "loopback";

/** What a request to the dashboard carries that the guard looks at. */
export interface AdminRequest {
  /** The request's headers (`Authorization`, `Host`, `Forwarded`, `X-Forwarded-For`, `X-Real-IP`). */
  readonly headers: Headers;
  /** The peer's address, as the listener saw it. */
  readonly ip: string;
}

const REALM = 'Bearer realm="hubbub-admin"';
const BEARER = /^bearer\s+/i;
/** Headers a proxy adds: their presence means the peer address is the proxy's, not the client's. */
const PROXY_HEADERS = ["forwarded", "x-forwarded-for", "x-real-ip"];

/** How the dashboard is guarded under `options`, or the reason it is refused to everyone. */
export function adminAccess(options: AdminOptions): AdminAccess | Refusal {
  if (options.adminToken !== "") return "admin_token";
  if (options.token !== "" || options.jwt !== undefined) {
    return {
      status: 403,
      reason: "The dashboard needs an admin token on a server that asks clients for one: start it with --admin-token " +
        "(or HUBBUB_ADMIN_TOKEN)",
      label: "admin_token_unset",
    };
  }
  return "loopback";
}

/** Whether `headers` carry `Authorization: Bearer <adminToken>` (compared in constant time); never with no token set. */
export function isAdminRequest(headers: Headers, adminToken: string): boolean {
  if (adminToken === "") return false;
  const header = headers.get("authorization");
  return header !== null && BEARER.test(header) && timingSafeEqual(adminToken, header.replace(BEARER, "").trim());
}

/** Whether `ip` is a loopback address: 127.0.0.0/8, `::1`, or 127.x mapped into IPv6. */
export function isLoopbackAddress(ip: string): boolean {
  const address = ip.replace(/^\[|\]$/g, "").toLowerCase();
  return address === "::1" || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address);
}

/** Whether a `Host` header (or a bind address) names this machine: `localhost`, `*.localhost` or a loopback IP. */
export function isLoopbackHost(host: string): boolean {
  // "[::1]:8765" and "localhost:8765" carry a port; a bare "::1" (a bind address) does not.
  const bare = host.startsWith("[")
    ? host.slice(0, host.indexOf("]") + 1)
    : host.split(":").length > 2
    ? host
    : host.replace(/:\d*$/, "");
  const name = bare.replace(/\.$/, "").toLowerCase();
  return name === "localhost" || name.endsWith(".localhost") || isLoopbackAddress(name);
}

/**
 * Checks a request for dashboard data: `undefined` when it may see it, else a refusal — 401 (with
 * `WWW-Authenticate`) for a missing or wrong admin token, 403 when no credential could help.
 *
 * @example
 * ```ts
 * import { checkAdmin } from "./admin.ts";
 * import assert from "node:assert/strict";
 * const options = { adminToken: "0p3n-s3same", token: "client-token" };
 * const ask = (authorization: string) => checkAdmin({ headers: new Headers({ authorization }), ip: "10.0.0.7" }, options);
 * assert.equal(ask("Bearer 0p3n-s3same"), undefined);
 * assert.equal(ask("Bearer client-token")?.status, 401);
 * ```
 */
export function checkAdmin(request: AdminRequest, options: AdminOptions): Refusal | undefined {
  const access = adminAccess(options);
  if (typeof access === "object") return access;
  const { headers } = request;
  if (access === "admin_token") {
    const header = headers.get("authorization");
    if (header === null || !BEARER.test(header)) {
      return {
        status: 401,
        reason: "Missing admin token: send Authorization: Bearer <admin token>",
        label: "unauthorized",
        headers: { "www-authenticate": REALM },
      };
    }
    if (isAdminRequest(headers, options.adminToken)) return undefined;
    return {
      status: 401,
      reason: "Invalid admin token",
      label: "unauthorized",
      headers: { "www-authenticate": `${REALM}, error="invalid_token"` },
    };
  }
  const proxied = PROXY_HEADERS.some((name) => headers.has(name));
  const host = headers.get("host");
  if (isLoopbackAddress(request.ip) && !proxied && (host === null || isLoopbackHost(host))) return undefined;
  const why = proxied
    ? "it came through a proxy"
    : !isLoopbackAddress(request.ip)
    ? `it came from ${request.ip.slice(0, 64)}`
    : `it names the host ${JSON.stringify(host!.slice(0, 80))}`;
  return {
    status: 403,
    reason: "Without --admin-token the dashboard answers this machine only (open it as http://localhost:<port>" +
      `/dashboard), and this request is not from it: ${why}`,
    label: "not_loopback",
  };
}
