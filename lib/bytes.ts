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

/** Options for {@linkcode BufferPool}. */
export interface BufferPoolOptions {
  /** Size of every buffer, in bytes. */
  bufferBytes: number;
  /** Buffers kept for reuse at most; more given back are left to the garbage collector. */
  maxKept: number;
}

/**
 * Fixed-size byte buffers for reuse. Allocating an `ArrayBuffer` costs Deno ~250 ns and a zero fill, more than filling
 * a small one, so a hot path takes a recycled buffer instead. {@linkcode BufferPool.give} takes any view: it returns
 * the buffer behind it when it came from this pool, and ignores anything else.
 *
 * @example
 * ```ts
 * import { BufferPool } from "./bytes.ts";
 * import assert from "node:assert/strict";
 * const pool = new BufferPool({ bufferBytes: 16, maxKept: 4 });
 * const buffer = pool.take();
 * pool.give(buffer.subarray(0, 3)); // a view of it, as a transport writes it
 * assert.equal(pool.take(), buffer);
 * ```
 */
export class BufferPool {
  readonly #bufferBytes: number;
  readonly #maxKept: number;
  readonly #free: Uint8Array[] = [];
  // Each buffer's full view by its ArrayBuffer, so a view given back recycles the view object too.
  readonly #owned = new WeakMap<ArrayBufferLike, Uint8Array>();

  /** Creates an empty pool; throws a `RangeError` for sizes that are not positive safe integers. */
  constructor(options: BufferPoolOptions) {
    const { bufferBytes, maxKept } = options;
    if (!Number.isSafeInteger(bufferBytes) || bufferBytes <= 0) {
      throw new RangeError(`bufferBytes must be a positive safe integer: ${bufferBytes}`);
    }
    if (!Number.isSafeInteger(maxKept) || maxKept < 0) {
      throw new RangeError(`maxKept must be a non-negative safe integer: ${maxKept}`);
    }
    this.#bufferBytes = bufferBytes;
    this.#maxKept = maxKept;
  }

  /** Buffers waiting for reuse. */
  get kept(): number {
    return this.#free.length;
  }

  /** A buffer of `bufferBytes`: a recycled one (its old bytes still in it) or a new one. */
  take(): Uint8Array {
    const reused = this.#free.pop();
    if (reused !== undefined) return reused;
    const buffer = new Uint8Array(this.#bufferBytes);
    this.#owned.set(buffer.buffer, buffer);
    return buffer;
  }

  /**
   * Gives back the buffer behind `view` if it came from {@linkcode BufferPool.take}; the caller must hold no other
   * view of it. Views of other buffers are ignored, so a queue may give back everything it wrote; a buffer given
   * back twice is kept once (two takers must never share one).
   */
  give(view: Uint8Array): void {
    // Most views given back are of other buffers: the size tells without a lookup.
    if (view.buffer.byteLength !== this.#bufferBytes) return;
    const buffer = this.#owned.get(view.buffer);
    if (buffer === undefined || this.#free.length >= this.#maxKept || this.#free.includes(buffer)) return;
    this.#free.push(buffer);
  }
}
