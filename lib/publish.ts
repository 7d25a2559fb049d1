/**
 * HTTP publish: `POST /rooms/<name>` (and `POST /`) sends the request body into the room as one message — how a
 * backend pushes into a room without holding a WebSocket (`curl -d 'deploy done' localhost:8765/rooms/ops`).
 *
 * @module
 */

import { GrowableBytes } from "./bytes.ts";
import type { Message } from "./hub/peer.ts";

/** Bytes read at a time from a request body. */
const READ_BYTES = 4096;

/** What {@linkcode readPublishedMessage} found: the message to publish, or the HTTP error to answer. */
export type PublishedMessage =
  | { readonly ok: true; readonly data: Message; readonly bytes: number; readonly kind: "text" | "binary" }
  | { readonly ok: false; readonly status: 400 | 408 | 413; readonly reason: string };

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
 * reading for a body without one), within `timeoutMs` (a body that trickles or never comes is a 408, not a request
 * held for ever), as text or binary by its `Content-Type`. Text must be valid UTF-8.
 */
export async function readPublishedMessage(
  request: Request,
  options: { maxBytes: number; timeoutMs: number },
): Promise<PublishedMessage> {
  const { maxBytes } = options;
  const tooLarge = { ok: false, status: 413, reason: `Message too large: at most ${maxBytes} bytes` } as const;
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) {
    await request.body?.cancel();
    return tooLarge;
  }
  const received = new GrowableBytes(READ_BYTES);
  if (request.body !== null) {
    // A bring-your-own-buffer reader with a small buffer: a default reader lets the runtime allocate 64 KiB or more
    // per pending read, which a thousand requests whose body never comes turn into a hundred megabytes. (Bodies that
    // are not byte streams, e.g. one already in memory, are read the default way.)
    const read = bodyReader(request.body);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), options.timeoutMs));
    try {
      for (;;) {
        const chunk = await Promise.race([read.next(), late]);
        if (chunk === "late") {
          read.cancel();
          return { ok: false, status: 408, reason: `The body did not arrive within ${options.timeoutMs} ms` };
        }
        if (chunk === undefined) break;
        if (received.length + chunk.length > maxBytes) {
          read.cancel();
          return tooLarge;
        }
        received.append(chunk);
      }
    } catch {
      return { ok: false, status: 400, reason: "The request body ended before it was complete" };
    } finally {
      clearTimeout(timer);
    }
  }
  const length = received.length;
  const body = received.view().slice();
  if (!isTextContentType(request.headers.get("content-type"))) {
    return { ok: true, data: body.buffer, bytes: length, kind: "binary" };
  }
  try {
    return { ok: true, data: decoder.decode(body), bytes: length, kind: "text" };
  } catch {
    return { ok: false, status: 400, reason: "The body is not valid UTF-8, as its text Content-Type says it is" };
  }
}

/** Reads a body chunk by chunk (`undefined` at its end), with one small buffer of ours when the stream allows it. */
function bodyReader(body: ReadableStream<Uint8Array>): { next(): Promise<Uint8Array | undefined>; cancel(): void } {
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = body.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream.
  }
  if (byob !== undefined) {
    const reader = byob;
    let buffer = new Uint8Array(READ_BYTES);
    return {
      async next() {
        const { value, done } = await reader.read(buffer);
        if (done || value === undefined) return undefined;
        // The read took the buffer over: the next one reuses what it gave back, after the caller copied it.
        buffer = new Uint8Array(value.buffer);
        return value;
      },
      cancel: () => void reader.cancel().catch(() => {}),
    };
  }
  const reader = body.getReader();
  return {
    async next() {
      const { value, done } = await reader.read();
      return done ? undefined : value;
    },
    cancel: () => void reader.cancel().catch(() => {}),
  };
}
