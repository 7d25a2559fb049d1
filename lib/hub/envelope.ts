/**
 * The `hubbub.v1` envelope (`HUBBUB_PROTOCOL`): what a client that offers that subprotocol receives instead of bare messages — one JSON
 * text frame per delivery, carrying the room, the message's offset and the room's epoch, so that the client can
 * reconnect with `?since=<offset>&epoch=<epoch>` and miss nothing. What such a client sends is still plain text or
 * binary, as for every client.
 *
 * @module
 */

import type { Message } from "./peer.ts";

/** A message in the envelope, as the client parses it. */
export type EnvelopeMessage =
  & { type: "message"; room: string; offset: number; epoch: string }
  & ({ data: string } | { binary: string });

/** The first frame an envelope client receives after joining a room. */
export interface EnvelopeJoined {
  type: "joined";
  room: string;
  /** The room's latest offset when the client joined (0 before its first message). */
  offset: number;
  epoch: string;
  /** Whether every message after `since` was delivered (never a partial replay). */
  recovered: boolean;
  /** How many messages the room had after `since` (0 without `since`). */
  missed: number;
}

/** A presence change, for envelope clients that asked for them: a user's first connection joined, or last left. */
export interface EnvelopePresence {
  type: "join" | "leave";
  room: string;
  sub: string;
}

/** Base64 of an ArrayBuffer, in slices so that `String.fromCharCode` never gets too many arguments. */
function base64(data: ArrayBuffer): string {
  const bytes = new Uint8Array(data);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000) as unknown as number[]);
  }
  return btoa(binary);
}

/**
 * The envelope of one message: text as `data`, binary as base64 in `binary`.
 *
 * @example
 * ```ts
 * import { envelopeMessage } from "./envelope.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(JSON.parse(envelopeMessage("lobby", 42, "e1", "hello")), {
 *   type: "message",
 *   room: "lobby",
 *   offset: 42,
 *   epoch: "e1",
 *   data: "hello",
 * });
 * assert.equal(JSON.parse(envelopeMessage("lobby", 43, "e1", new Uint8Array([1, 2]).buffer)).binary, "AQI=");
 * ```
 */
export function envelopeMessage(room: string, offset: number, epoch: string, data: Message): string {
  const payload = typeof data === "string" ? `"data":${JSON.stringify(data)}` : `"binary":"${base64(data)}"`;
  return `{"type":"message","room":${JSON.stringify(room)},"offset":${offset},"epoch":${
    JSON.stringify(epoch)
  },${payload}}`;
}

/** The `joined` frame. */
export function envelopeJoined(joined: Omit<EnvelopeJoined, "type">): string {
  return JSON.stringify({ type: "joined", ...joined });
}

/** A presence frame. */
export function envelopePresence(presence: EnvelopePresence): string {
  return JSON.stringify(presence);
}
