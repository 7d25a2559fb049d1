/**
 * WebSocket close codes used by Hubbub, as one constant table (RFC 6455 §7.4.1 and the IANA registry).
 *
 * @module
 */

/** Close codes by name, each with the RFC 6455 section or registry entry that defines it. */
export const CLOSE_CODE = {
  /** 1000, §7.4.1: the purpose of the connection was fulfilled. */
  Normal: 1000,
  /** 1001, §7.4.1: the server is going away (shutdown) or the peer stopped answering pings. */
  GoingAway: 1001,
  /** 1002, §7.4.1: the peer broke the framing rules. */
  ProtocolError: 1002,
  /** 1003, §7.4.1: the endpoint cannot accept this kind of data. */
  UnsupportedData: 1003,
  /** 1005, §7.4.1: reserved; reported locally when a close frame carried no code. Never sent. */
  NoStatus: 1005,
  /** 1006, §7.4.1: reserved; reported locally when the connection dropped without a close frame. Never sent. */
  Abnormal: 1006,
  /** 1007, §7.4.1: a text message was not valid UTF-8. */
  InvalidPayload: 1007,
  /** 1008, §7.4.1: the peer broke a policy (rate limit, auth). */
  PolicyViolation: 1008,
  /** 1009, §7.4.1: a message was larger than the server accepts. */
  MessageTooBig: 1009,
  /** 1010, §7.4.1: the client wanted an extension the server did not offer. */
  MandatoryExtension: 1010,
  /** 1011, §7.4.1: the server hit an unexpected condition. */
  InternalError: 1011,
  /** 1012, IANA registry: the service is restarting. */
  ServiceRestart: 1012,
  /** 1013, IANA registry: try again later (Hubbub: slow consumer, reconnect). */
  TryAgainLater: 1013,
  /** 1014, IANA registry: bad gateway. */
  BadGateway: 1014,
  /** 1015, §7.4.1: reserved; reported locally when the TLS handshake failed. Never sent. */
  TlsHandshake: 1015,
  /** 3000, IANA registry "Unauthorized" (Hubbub: the token expired; reconnect with a fresh one). */
  Unauthorized: 3000,
} as const;

/** One of the codes in {@linkcode CLOSE_CODE}. */
export type CloseCode = typeof CLOSE_CODE[keyof typeof CLOSE_CODE];

/**
 * Whether `code` may appear in a Close frame on the wire (RFC 6455 §7.4): 1000–1003, 1007–1014, or 3000–4999.
 *
 * @example
 * ```ts
 * import { isSendableCloseCode } from "./close_code.ts";
 * import assert from "node:assert/strict";
 * assert.equal(isSendableCloseCode(1000), true);
 * assert.equal(isSendableCloseCode(1005), false);
 * ```
 */
export function isSendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

/** Longest close reason in UTF-8 bytes: a control frame payload is at most 125 bytes, two of them the code. */
export const MAX_CLOSE_REASON_BYTES = 123;
