/**
 * Who may connect: origin checks, the constant-time comparison behind the shared token (checked with JWTs in
 * `auth/authorize.ts`), and connection caps (total and per IP).
 *
 * @module
 */

import type { Refusal } from "./ws/handshake.ts";

/** Origin policy: exact origins (or `*`), and whether a request without `Origin` is refused. */
export interface OriginPolicy {
  /** Exact `Origin` values allowed, or `*` for any; empty allows any. */
  readonly allowedOrigins: readonly string[];
  /** Refuse requests that carry no `Origin` header (browsers always send one). */
  readonly requireOrigin: boolean;
}

/** Checks the request's `Origin` against `policy`; returns a 403 refusal or `undefined`. */
export function checkOrigin(origin: string | null, policy: OriginPolicy): Refusal | undefined {
  if (origin === null) {
    return policy.requireOrigin
      ? { status: 403, reason: "Missing Origin header: this server requires one", label: "origin" }
      : undefined;
  }
  const allowed = policy.allowedOrigins;
  if (allowed.length === 0 || allowed.includes("*") || allowed.includes(origin)) return undefined;
  return { status: 403, reason: `Origin not allowed: ${origin.slice(0, 100)}`, label: "origin" };
}

const encoder = new TextEncoder();

/**
 * Compares two strings in time that depends only on `expected`'s length, never on where they differ.
 *
 * @example
 * ```ts
 * import { timingSafeEqual } from "./access.ts";
 * import assert from "node:assert/strict";
 * assert.equal(timingSafeEqual("s3cret", "s3cret"), true);
 * assert.equal(timingSafeEqual("s3cret", "s3cre"), false);
 * ```
 */
export function timingSafeEqual(expected: string, given: string): boolean {
  const a = encoder.encode(expected);
  const b = encoder.encode(given);
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ (b[i % (b.length || 1)] ?? 0);
  return diff === 0;
}

/** Counts open connections, in total and per client IP, and refuses new ones over the caps. */
export class ConnectionLimiter {
  readonly #max: number;
  readonly #maxPerIp: number;
  readonly #perIp: Map<string, number> = new Map();
  #total = 0;

  /** Creates a limiter allowing `max` connections in total and `maxPerIp` from one address. */
  constructor(options: { max: number; maxPerIp: number }) {
    this.#max = options.max;
    this.#maxPerIp = options.maxPerIp;
  }

  /**
   * Reserves a slot for `ip`; returns a 503 or 429 refusal, or a release function to call exactly once when the
   * connection ends (extra calls do nothing).
   */
  acquire(ip: string): Refusal | (() => void) {
    if (this.#total >= this.#max) {
      return {
        status: 503,
        reason: `Server full: ${this.#max} connections open; retry later`,
        label: "max_connections",
        headers: { "retry-after": "5" },
      };
    }
    const count = this.#perIp.get(ip) ?? 0;
    if (count >= this.#maxPerIp) {
      return {
        status: 429,
        reason: `Too many connections from your address: at most ${this.#maxPerIp}`,
        label: "max_connections_per_ip",
        headers: { "retry-after": "5" },
      };
    }
    this.#perIp.set(ip, count + 1);
    this.#total++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#total--;
      const left = (this.#perIp.get(ip) ?? 1) - 1;
      if (left === 0) this.#perIp.delete(ip);
      else this.#perIp.set(ip, left);
    };
  }
}
