/**
 * Validation of a WebSocket opening handshake (RFC 6455 §4.2.1), shared by every engine.
 *
 * @module
 */

/** Why a request is refused before the upgrade: an HTTP status, a one-line reason, and a metrics label. */
export interface Refusal {
  /** HTTP status to answer. */
  readonly status: number;
  /** One line for the client: what was wrong and what to do. */
  readonly reason: string;
  /** Short label for metrics and logs (`bad_key`, `origin`…). */
  readonly label: string;
  /** Extra response headers (`Retry-After`, `WWW-Authenticate`, `Allow`…). */
  readonly headers?: Readonly<Record<string, string>>;
}

function hasToken(value: string | null, token: string): boolean {
  if (value === null) return false;
  for (const part of value.split(",")) {
    if (part.trim().toLowerCase() === token) return true;
  }
  return false;
}

/**
 * Whether `headers` ask for a WebSocket: an `Upgrade: websocket`, or any `Sec-WebSocket-Key`/`-Version` header
 * (a broken client attempt still deserves a handshake error rather than the page).
 */
export function isWebSocketAttempt(headers: Headers): boolean {
  return hasToken(headers.get("upgrade"), "websocket") || headers.has("sec-websocket-key") ||
    headers.has("sec-websocket-version");
}

const KEY = /^[A-Za-z0-9+/]{22}==$/;

/**
 * Checks the method and the handshake headers; returns the refusal, or `undefined` when the upgrade may go ahead.
 *
 * @example
 * ```ts
 * import { checkHandshake } from "./handshake.ts";
 * import assert from "node:assert/strict";
 * const headers = new Headers({ upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "13" });
 * assert.equal(checkHandshake("GET", headers)?.label, "bad_key");
 * ```
 */
export function checkHandshake(method: string, headers: Headers): Refusal | undefined {
  if (method !== "GET") {
    return {
      status: 405,
      reason: `WebSocket upgrades must use GET, not ${method.slice(0, 16)}`,
      label: "bad_method",
      headers: { allow: "GET" },
    };
  }
  if (!hasToken(headers.get("upgrade"), "websocket")) {
    return {
      status: 400,
      reason: "Missing or invalid Upgrade header: expected Upgrade: websocket",
      label: "bad_upgrade",
    };
  }
  if (!hasToken(headers.get("connection"), "upgrade")) {
    return {
      status: 400,
      reason: "Missing or invalid Connection header: expected Connection: Upgrade",
      label: "bad_connection",
    };
  }
  const version = headers.get("sec-websocket-version");
  if (version?.trim() !== "13") {
    // RFC 6455 §4.2.2: answer with the versions we speak, so a client can retry with one of them.
    return {
      status: 400,
      reason: version === null
        ? "Missing Sec-WebSocket-Version header: expected 13"
        : `Unsupported Sec-WebSocket-Version: expected 13, got ${version.slice(0, 16)}`,
      label: "bad_version",
      headers: { "sec-websocket-version": "13" },
    };
  }
  const key = headers.get("sec-websocket-key");
  if (key === null || !KEY.test(key.trim())) {
    return {
      status: 400,
      reason: key === null
        ? "Missing Sec-WebSocket-Key header"
        : "Invalid Sec-WebSocket-Key: expected 16 random bytes in base64 (24 characters)",
      label: "bad_key",
    };
  }
  return undefined;
}
