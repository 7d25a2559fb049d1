/**
 * Subprotocol negotiation (RFC 6455 §4.2.2, `Sec-WebSocket-Protocol`), shared by every engine.
 *
 * Hubbub relays bytes, so the clients of a room speak their own protocol to each other through it: a server that was
 * not told which subprotocols it speaks selects the client's first offer, since answering none makes Node's `ws`
 * and browsers fail the connection. A server told its subprotocols selects the first offer among them, or refuses.
 * An offer `bearer.<token>` carries a credential for browsers, which cannot set headers; it is never selected, so the
 * token is never echoed back.
 *
 * @module
 */

import type { Refusal } from "./handshake.ts";

/** The subprotocol of Hubbub's own JSON envelope: always understood, whatever else is configured. */
export const HUBBUB_PROTOCOL = "hubbub.v1";

/** The prefix of an offer that carries a bearer token instead of naming a subprotocol. */
export const BEARER_PROTOCOL_PREFIX = "bearer.";

/** RFC 9110 §5.6.2 token: what a subprotocol name may be. */
export const SUBPROTOCOL_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Splits a `Sec-WebSocket-Protocol` value into its offers, in the client's order of preference: commas with optional
 * whitespace around them (`a,b` and `a, b` alike; Deno's own parser knows only `", "`), empty elements skipped
 * (RFC 9110 §5.6.1). Returns a 400 refusal when an offer is not a token.
 *
 * @example
 * ```ts
 * import { parseSubprotocolOffer } from "./subprotocol.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(parseSubprotocolOffer("chat,superchat"), ["chat", "superchat"]);
 * assert.deepEqual(parseSubprotocolOffer(" chat ,\tsuperchat, "), ["chat", "superchat"]);
 * assert.deepEqual(parseSubprotocolOffer(null), []);
 * assert.equal("status" in parseSubprotocolOffer("chat v2"), true);
 * ```
 */
export function parseSubprotocolOffer(header: string | null): string[] | Refusal {
  if (header === null) return [];
  const offers: string[] = [];
  for (const part of header.split(",")) {
    const offer = part.trim();
    if (offer === "") continue;
    if (!SUBPROTOCOL_NAME.test(offer)) {
      return {
        status: 400,
        // The bad offer is not echoed: it may be a mangled bearer token.
        reason: "Invalid Sec-WebSocket-Protocol: expected comma-separated names like chat.v1",
        label: "bad_subprotocol",
      };
    }
    offers.push(offer);
  }
  return offers;
}

/**
 * Chooses the subprotocol to answer with, from a `Sec-WebSocket-Protocol` value: `undefined` (no header in the answer)
 * when the client offered none but credentials; the first offer when `supported` is empty; otherwise the first offer
 * in `supported` or {@linkcode HUBBUB_PROTOCOL}, or a 400 refusal listing what the server speaks.
 *
 * @example
 * ```ts
 * import { negotiateSubprotocol } from "./subprotocol.ts";
 * import assert from "node:assert/strict";
 * assert.equal(negotiateSubprotocol("chat, superchat", []), "chat");
 * assert.equal(negotiateSubprotocol("chat,superchat", ["superchat"]), "superchat");
 * assert.equal(negotiateSubprotocol("bearer.eyJ, chat", []), "chat");
 * assert.equal(negotiateSubprotocol("bearer.eyJ", []), undefined);
 * assert.equal(negotiateSubprotocol(null, ["chat"]), undefined);
 * const refusal = negotiateSubprotocol("mqtt", ["chat"]);
 * assert.equal(typeof refusal === "object" && refusal.reason, "No supported subprotocol offered: this server speaks chat, hubbub.v1");
 * ```
 */
export function negotiateSubprotocol(
  header: string | null,
  supported: readonly string[],
): string | undefined | Refusal {
  const parsed = parseSubprotocolOffer(header);
  if (!Array.isArray(parsed)) return parsed;
  const offers = parsed.filter((offer) => !offer.startsWith(BEARER_PROTOCOL_PREFIX));
  if (offers.length === 0) return undefined;
  if (supported.length === 0) return offers[0];
  const selected = offers.find((offer) => offer === HUBBUB_PROTOCOL || supported.includes(offer));
  if (selected !== undefined) return selected;
  const speaks = supported.includes(HUBBUB_PROTOCOL) ? supported : [...supported, HUBBUB_PROTOCOL];
  return {
    status: 400,
    reason: `No supported subprotocol offered: this server speaks ${speaks.join(", ")}`,
    label: "bad_subprotocol",
  };
}

/** The token of the first `bearer.<token>` offer in a `Sec-WebSocket-Protocol` value, or `null`. */
export function bearerFromSubprotocol(header: string | null): string | null {
  if (header === null) return null;
  for (const part of header.split(",")) {
    const offer = part.trim();
    if (offer.startsWith(BEARER_PROTOCOL_PREFIX)) return offer.slice(BEARER_PROTOCOL_PREFIX.length);
  }
  return null;
}
