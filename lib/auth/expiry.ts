/**
 * Deadlines for connections whose token expires: one timer per server over a min-heap of deadlines, rather than a
 * timer per connection. The hub holds no timer (its lifecycle contract), so the server layer schedules these, and
 * every connection cancels its own deadline on whatever path it ends.
 *
 * @module
 */

/**
 * The longest delay `setTimeout` takes (2^31 - 1 ms, about 24.8 days); a later deadline is waited for in steps, since
 * a longer delay fires at once.
 */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Entry {
  readonly at: number;
  readonly action: () => void;
  /** Position in the heap; -1 once taken off it (due, or cancelled). */
  index: number;
  /** Set by cancelling: a due action cancelled by an earlier one in the same pass does not run. */
  cancelled: boolean;
}

/** Options for {@linkcode ExpiryQueue}. */
export interface ExpiryQueueOptions {
  /** The clock, in milliseconds since the epoch. @default {Date.now} */
  now?: () => number;
}

/**
 * Runs each action at its deadline, with one timer for all of them. The timer exists only while an action is waiting,
 * so a queue whose connections are all gone holds nothing (Deno's test sanitizers see no leak).
 *
 * @example
 * ```ts
 * import { ExpiryQueue } from "./expiry.ts";
 * import assert from "node:assert/strict";
 * const queue = new ExpiryQueue();
 * const ran: string[] = [];
 * queue.add(Date.now() + 20, () => ran.push("b"));
 * const cancel = queue.add(Date.now() + 10, () => ran.push("cancelled"));
 * queue.add(Date.now() + 5, () => ran.push("a"));
 * cancel();
 * await new Promise((resolve) => setTimeout(resolve, 60));
 * assert.deepEqual(ran, ["a", "b"]);
 * assert.equal(queue.size, 0);
 * ```
 */
export class ExpiryQueue {
  readonly #heap: Entry[] = [];
  readonly #now: () => number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** The deadline the timer is set for; a new earlier one resets it. */
  #timerAt = Infinity;
  /** Set while due actions are taken off the heap, so the timer is set once afterwards, not once per action. */
  #firing = false;

  /** Creates an empty queue. */
  constructor(options: ExpiryQueueOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** Actions waiting. */
  get size(): number {
    return this.#heap.length;
  }

  /**
   * Runs `action` once at `at` (milliseconds since the epoch; soon, if already past). Returns a function that cancels
   * it; calling that after the action ran, or twice, does nothing.
   */
  add(at: number, action: () => void): () => void {
    if (Number.isNaN(at)) throw new RangeError(`at must be a time in milliseconds: ${at}`);
    const entry: Entry = { at, action, index: this.#heap.length, cancelled: false };
    this.#heap.push(entry);
    this.#up(entry.index);
    this.#schedule();
    return () => {
      entry.cancelled = true;
      this.#remove(entry);
    };
  }

  #remove(entry: Entry): void {
    const index = entry.index;
    if (index < 0) return;
    entry.index = -1;
    const last = this.#heap.pop()!;
    if (last !== entry) {
      this.#heap[index] = last;
      last.index = index;
      this.#down(index);
      this.#up(last.index);
    }
    this.#schedule();
  }

  /** Points the timer at the earliest deadline, or clears it when nothing waits. */
  #schedule(): void {
    if (this.#firing) return;
    const next = this.#heap[0]?.at ?? Infinity;
    if (next === this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = next;
    if (next === Infinity) return;
    const delay = Math.min(Math.max(0, next - this.#now()), MAX_TIMER_MS);
    this.#timer = setTimeout(() => this.#fire(), delay);
  }

  #fire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = this.#now();
    const due: Entry[] = [];
    this.#firing = true;
    while (this.#heap.length > 0 && this.#heap[0].at <= now) {
      const entry = this.#heap[0];
      this.#remove(entry);
      due.push(entry);
    }
    // Run once the heap is consistent: an action may add or cancel deadlines itself (what it adds runs on a later
    // turn, even when already due, so an action that keeps adding cannot hold the event loop).
    for (const entry of due) {
      if (entry.cancelled) continue;
      try {
        entry.action();
      } catch {
        // One connection's failure to close must not keep the others open; the engine logs its own errors.
      }
    }
    this.#firing = false;
    this.#schedule();
  }

  #up(index: number): void {
    const heap = this.#heap;
    const entry = heap[index];
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (heap[parent].at <= entry.at) break;
      heap[index] = heap[parent];
      heap[index].index = index;
      index = parent;
    }
    heap[index] = entry;
    entry.index = index;
  }

  #down(index: number): void {
    const heap = this.#heap;
    const entry = heap[index];
    const length = heap.length;
    for (;;) {
      let child = 2 * index + 1;
      if (child >= length) break;
      if (child + 1 < length && heap[child + 1].at < heap[child].at) child++;
      if (heap[child].at >= entry.at) break;
      heap[index] = heap[child];
      heap[index].index = index;
      index = child;
    }
    heap[index] = entry;
    entry.index = index;
  }
}

/**
 * Ties a connection's credential deadline to its lifecycle: `opened` (call it once the connection is open) schedules
 * `expire` at `closeAt` on `queue`, and the returned `release` (call it, as the engines do, exactly once when the
 * connection is gone, on every path) cancels it before calling the given one. Without a deadline, `release` is
 * returned as it is and there is no `opened`.
 */
export function watchExpiry<T>(
  queue: ExpiryQueue,
  closeAt: number | undefined,
  release: () => void,
  expire: (connection: T) => void,
): { release: () => void; opened?: (connection: T) => void } {
  if (closeAt === undefined) return { release };
  let cancel: (() => void) | undefined;
  let released = false;
  return {
    release() {
      released = true;
      cancel?.();
      release();
    },
    opened(connection) {
      // An upgrade given up before it opened must not schedule anything: nobody would cancel it.
      if (!released && cancel === undefined) cancel = queue.add(closeAt, () => expire(connection));
    },
  };
}
