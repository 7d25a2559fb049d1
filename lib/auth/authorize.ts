/**
 * Who is asking and what they may do: the shared `--token` and JWTs, one check for WebSocket upgrades and HTTP routes
 * alike.
 *
 * The credential is read from `Authorization: Bearer …`, else `?token=…`, else a subprotocol offer `bearer.<token>`
 * (for browsers, which can set neither headers on a WebSocket nor keep tokens out of URLs otherwise); the first one
 * present is the credential, so a wrong header is not rescued by a right query. With a shared token and a JWT
 * verifier both on, either admits.
 *
 * @module
 */

import { timingSafeEqual } from "../access.ts";
import type { Refusal } from "../ws/handshake.ts";
import { bearerFromSubprotocol } from "../ws/subprotocol.ts";
import type { JwtVerifier } from "./jwt.ts";
import { ALL_ROOMS, type RoomPermissions } from "./permissions.ts";

/** Who a request comes from and what they may do. */
export interface Identity {
  /** The JWT's `sub`, for logs; none for the shared token, a token without `sub`, or an open server. */
  readonly sub?: string;
  /** The rooms it may subscribe to and publish in. */
  readonly permissions: RoomPermissions;
  /**
   * When a connection made with this credential must end: the JWT's `exp` plus the verifier's leeway, in
   * milliseconds since the epoch; none when the credential does not expire.
   */
  readonly closeAt?: number;
}

/** The access rules in force; with neither on, everyone may do everything. */
export interface AuthOptions {
  /** The shared secret every request must present; empty is off. */
  readonly token: string;
  /** Verifies JWTs; none is off. */
  readonly jwt?: JwtVerifier;
}

/** What a request wants to do in a room. */
export type RoomAction = "subscribe" | "publish";

/** The identity of a request when no credential is asked for, or when the shared token was presented. */
export const ANONYMOUS: Identity = Object.freeze({ permissions: ALL_ROOMS });

const REALM = 'Bearer realm="hubbub"';
const BEARER = /^bearer\s+/i;

/** The request's credential (see the module doc for the order), or `null` when it carries none. */
export function credentialOf(request: { headers: Headers; params: URLSearchParams }): string | null {
  const header = request.headers.get("authorization");
  if (header !== null && BEARER.test(header)) return header.replace(BEARER, "").trim();
  return request.params.get("token") ?? bearerFromSubprotocol(request.headers.get("sec-websocket-protocol"));
}

function unauthorized(reason: string, error: boolean): Refusal {
  return {
    status: 401,
    reason,
    label: "unauthorized",
    // RFC 6750 §3: no error code when no credential was sent; invalid_token when one was and failed.
    headers: { "www-authenticate": error ? `${REALM}, error="invalid_token"` : REALM },
  };
}

/**
 * Checks a request's credential against `options` and, with `need`, that it may do `need.action` in `need.room` (a
 * hub key: a room name, or `/` for the main room). Resolves to the {@linkcode Identity}, or to a refusal: 401 with
 * `WWW-Authenticate: Bearer` and the reason (never any part of the token) for a missing or bad credential, 403 for a
 * room its token does not grant. HTTP routes call it with their request's headers and query, e.g. `{ room, action:
 * "publish" }` for a publish and `"subscribe"` for reading a room's history.
 *
 * @example
 * ```ts
 * import { authorize } from "./authorize.ts";
 * import { createJwtVerifier, signJwt } from "./jwt.ts";
 * import assert from "node:assert/strict";
 * const secret = "a secret of at least thirty-two bytes";
 * const options = { token: "", jwt: await createJwtVerifier({ secret }) };
 * const token = await signJwt({ secret, claims: { sub: "ada", hubbub: { subscribe: ["lobby"] } } });
 * const headers = new Headers({ authorization: `Bearer ${token}` });
 * const request = { headers, params: new URLSearchParams() };
 * const identity = await authorize(request, options, { room: "lobby", action: "subscribe" });
 * assert.equal("sub" in identity && identity.sub, "ada");
 * const refusal = await authorize(request, options, { room: "lobby", action: "publish" });
 * assert.equal("status" in refusal && refusal.status, 403);
 * ```
 */
export async function authorize(
  request: { headers: Headers; params: URLSearchParams },
  options: AuthOptions,
  need?: { room: string; action: RoomAction },
): Promise<Identity | Refusal> {
  const { token, jwt } = options;
  if (token === "" && jwt === undefined) return ANONYMOUS;
  const given = credentialOf(request);
  if (given === null) {
    return unauthorized(
      "Missing token: send Authorization: Bearer <token>, ?token=<token> or subprotocol bearer.<token>",
      false,
    );
  }
  if (token !== "" && timingSafeEqual(token, given)) return ANONYMOUS;
  if (jwt === undefined) return unauthorized("Invalid token", true);
  const result = await jwt.verify(given);
  if (!result.ok) return unauthorized(result.reason, true);
  const { sub, permissions, expiresAt } = result;
  if (need !== undefined) {
    const allowed = need.action === "subscribe"
      ? permissions.canSubscribe(need.room)
      : permissions.canPublish(need.room);
    if (!allowed) {
      return {
        status: 403,
        reason: `Token does not allow ${
          need.action === "subscribe" ? "subscribing to" : "publishing in"
        } room: ${need.room}`,
        label: "forbidden",
        headers: { "www-authenticate": `${REALM}, error="insufficient_scope"` },
      };
    }
  }
  return {
    permissions,
    ...(sub === undefined ? {} : { sub }),
    ...(expiresAt === undefined ? {} : { closeAt: expiresAt + jwt.leewaySeconds * 1000 }),
  };
}
