/**
 * HTTP publish: `POST /rooms/<name>` (and `POST /`) sends the request body into the room as one message — how a
 * backend pushes into a room without holding a WebSocket (`curl -d 'deploy done' localhost:8765/rooms/ops`).
 *
 * @module
 */

import type { Message } from "./hub/peer.ts";

/** What {@linkcode readPublishedMessage} found: the message to publish, or the HTTP error to answer. */
export type PublishedMessage =
  | { readonly ok: true; readonly data: Message; readonly bytes: number; readonly kind: "text" | "binary" }
  | { readonly ok: false; readonly status: 400 | 413; readonly reason: string };

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Whether a body of this `Content-Type` becomes a text frame: `text/*`, JSON (`application/json`, `…+json`), and
 * `application/x-www-form-urlencoded` — what `curl -d` sends by default, and text by definition. Anything else, or
 * none, is binary.
 *
 * @example
 * ```ts
 * import { isTextContentType } from "./publish.ts";
 * import assert from "node:assert/strict";
 * assert.equal(isTextContentType("text/plain; charset=utf-8"), true);
 * assert.equal(isTextContentType("application/vnd.api+json"), true);
 * assert.equal(isTextContentType("application/octet-stream"), false);
 * assert.equal(isTextContentType(null), false);
 * ```
 */
export function isTextContentType(contentType: string | null): boolean {
  if (contentType === null) return false;
  const type = contentType.split(";")[0].trim().toLowerCase();
  return type.startsWith("text/") || type === "application/json" || type.endsWith("+json") ||
    type === "application/x-www-form-urlencoded";
}

/**
 * Reads a publish request's body, at most `maxBytes` (checked against `Content-Length` before reading, and while
 * reading for a body without one), as text or binary by its `Content-Type`. Text must be valid UTF-8.
 */
export async function readPublishedMessage(
  request: Request,
  options: { maxBytes: number },
): Promise<PublishedMessage> {
  const { maxBytes } = options;
  const tooLarge = { ok: false, status: 413, reason: `Message too large: at most ${maxBytes} bytes` } as const;
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) {
    await request.body?.cancel();
    return tooLarge;
  }
  const chunks: Uint8Array[] = [];
  let length = 0;
  if (request.body !== null) {
    const reader = request.body.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        length += value.length;
        if (length > maxBytes) {
          await reader.cancel();
          return tooLarge;
        }
        chunks.push(value);
      }
    } catch {
      return { ok: false, status: 400, reason: "The request body ended before it was complete" };
    }
  }
  const body = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.length;
  }
  if (!isTextContentType(request.headers.get("content-type"))) {
    return { ok: true, data: body.buffer, bytes: length, kind: "binary" };
  }
  try {
    return { ok: true, data: decoder.decode(body), bytes: length, kind: "text" };
  } catch {
    return { ok: false, status: 400, reason: "The body is not valid UTF-8, as its text Content-Type says it is" };
  }
}
