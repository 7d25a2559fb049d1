import assert from "node:assert/strict";
import { BufferPool, concatBytes, GrowableBytes } from "../lib/bytes.ts";

Deno.test("BufferPool.take() hands back a buffer given back, as the same view", () => {
  const pool = new BufferPool({ bufferBytes: 64, maxKept: 4 });
  const first = pool.take();
  assert.equal(first.length, 64);
  pool.give(first.subarray(3, 10));
  assert.equal(pool.kept, 1);
  assert.equal(pool.take(), first);
  assert.notEqual(pool.take(), first, "an empty pool allocates");
});

Deno.test("BufferPool.give() ignores views of buffers it did not make, even of the same size", () => {
  const pool = new BufferPool({ bufferBytes: 64, maxKept: 4 });
  pool.give(new Uint8Array(64));
  pool.give(new Uint8Array(128).subarray(0, 64));
  pool.give(new Uint8Array(10));
  assert.equal(pool.kept, 0);
});

Deno.test("BufferPool keeps a buffer given twice once, so two takers never share it", () => {
  const pool = new BufferPool({ bufferBytes: 16, maxKept: 4 });
  const buffer = pool.take();
  pool.give(buffer);
  pool.give(buffer.subarray(1));
  assert.equal(pool.kept, 1);
  const a = pool.take();
  const b = pool.take();
  assert.notEqual(a.buffer, b.buffer);
});

Deno.test("BufferPool keeps at most maxKept buffers", () => {
  const pool = new BufferPool({ bufferBytes: 8, maxKept: 2 });
  const buffers = [pool.take(), pool.take(), pool.take()];
  for (const buffer of buffers) pool.give(buffer);
  assert.equal(pool.kept, 2);
});

Deno.test("BufferPool refuses sizes that are not safe integers", () => {
  assert.throws(() => new BufferPool({ bufferBytes: 0, maxKept: 1 }), RangeError);
  assert.throws(() => new BufferPool({ bufferBytes: 1.5, maxKept: 1 }), RangeError);
  assert.throws(() => new BufferPool({ bufferBytes: 8, maxKept: -1 }), RangeError);
});

Deno.test("GrowableBytes keeps every byte across growth; concatBytes joins in order", () => {
  const bytes = new GrowableBytes(1);
  const expected: number[] = [];
  for (let i = 0; i < 300; i++) {
    const chunk = new Uint8Array(i % 7).map((_, j) => (i + j) & 0xff);
    bytes.append(chunk);
    expected.push(...chunk);
  }
  assert.deepEqual(Array.from(bytes.view()), expected);
  assert.deepEqual(
    concatBytes(new Uint8Array([1]), new Uint8Array(0), new Uint8Array([2, 3])),
    new Uint8Array([1, 2, 3]),
  );
});
