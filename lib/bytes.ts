/**
 * Byte helpers shared by the raw engine and the client transport.
 *
 * @module
 */

/**
 * The concatenation of `parts`, in one new array.
 *
 * @example
 * ```ts
 * import { concatBytes } from "./bytes.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(concatBytes(new Uint8Array([1]), new Uint8Array([2, 3])), new Uint8Array([1, 2, 3]));
 * ```
 */
export function concatBytes(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Bytes that arrive in pieces, kept in one buffer that doubles when full: appending n bytes costs O(n) amortised,
 * where concatenating each piece onto the last would copy everything again (quadratic under a 1-byte trickle).
 *
 * @example
 * ```ts
 * import { GrowableBytes } from "./bytes.ts";
 * import assert from "node:assert/strict";
 * const bytes = new GrowableBytes(2);
 * bytes.append(new Uint8Array([1, 2]));
 * bytes.append(new Uint8Array([3]));
 * assert.deepEqual(bytes.view(), new Uint8Array([1, 2, 3]));
 * ```
 */
export class GrowableBytes {
  #buffer: Uint8Array;
  #length = 0;

  /** Starts with room for `capacity` bytes. */
  constructor(capacity = 1024) {
    this.#buffer = new Uint8Array(capacity);
  }

  /** Bytes held. */
  get length(): number {
    return this.#length;
  }

  /** Appends a copy of `chunk`. */
  append(chunk: Uint8Array): void {
    const needed = this.#length + chunk.length;
    if (needed > this.#buffer.length) {
      const grown = new Uint8Array(Math.max(needed, 2 * this.#buffer.length));
      grown.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = grown;
    }
    this.#buffer.set(chunk, this.#length);
    this.#length = needed;
  }

  /** A view of the bytes held (valid until the next `append`). */
  view(): Uint8Array {
    return this.#buffer.subarray(0, this.#length);
  }
}

/** Writes all of `bytes`, going on from where a short write stopped; rejects when the connection fails. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(offset === 0 ? bytes : bytes.subarray(offset));
}
