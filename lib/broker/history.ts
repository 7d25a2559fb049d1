/**
 * A room's sequence and recent history on one node: every message gets the room's next offset (an integer that grows
 * by exactly one), under the room's epoch (a random id that changes when the room's history is lost: here, when the
 * process restarts or the room is forgotten), and with `--history N` the last N messages are kept, bounded by age and
 * bytes. With `--redis` the same roles are played by Redis (the room's stream and meta); this is the one-node
 * version, in memory, with no I/O and no timer (the server calls {@linkcode RoomLog.sweep} now and then).
 *
 * @module
 */

import type { Message } from "../hub/peer.ts";

/** Limits of a {@linkcode RoomLog}. */
export interface RoomLogOptions {
  /** Messages kept per room; 0 keeps none (offsets are still counted). @default {0} */
  size?: number;
  /** Seconds a message is kept. @default {300} */
  ttlSeconds?: number;
  /** Bytes of messages kept per room, at most. @default {4194304} */
  maxBytes?: number;
  /** Millisecond clock, injectable for tests. @default {Date.now} */
  now?: () => number;
}

/** The defaults behind {@linkcode RoomLogOptions}, with why each is sane. */
export const ROOM_LOG_DEFAULTS = {
  /** Off: history costs memory, and the tutorial's chat room needs none. */
  size: 0,
  /** Five minutes: a phone changing cell or a laptop waking comes back well within it. */
  ttlSeconds: 300,
  /** 4 MiB per room: four of the largest messages, or thousands of chat lines. */
  maxBytes: 4 * 1024 * 1024,
} as const;

/** One kept message. */
export interface HistoryEntry {
  /** Its offset in the room. */
  readonly offset: number;
  /** The message as it was published. */
  readonly data: Message;
  /** Its size in bytes. */
  readonly size: number;
  /** When it was published (ms since the epoch). */
  readonly time: number;
}

/** What a room's history holds, as {@linkcode RoomLog.read} returns it. */
export interface HistoryPage {
  /** The room's epoch (offsets are comparable only within one). */
  readonly epoch: string;
  /** The offset of the room's latest message (0 before the first). */
  readonly latest: number;
  /** The oldest offset still kept (`latest + 1` when none is). */
  readonly first: number;
  /** The entries asked for, oldest first. */
  readonly entries: HistoryEntry[];
}

/** What a new message got: its offset and the room's epoch. */
export interface Sequenced {
  /** The message's offset in its room. */
  readonly offset: number;
  /** The room's epoch. */
  readonly epoch: string;
}

/** One room's sequence and kept messages: a queue with a moving head, so trimming the oldest is O(1). */
class RoomRecord {
  readonly epoch: string = randomEpoch();
  offset = 0;
  entries: HistoryEntry[] = [];
  head = 0;
  bytes = 0;
  /** Whether the room has members here (an idle room with nothing kept is forgotten). */
  active = false;

  get count(): number {
    return this.entries.length - this.head;
  }

  dropOldest(): HistoryEntry {
    const entry = this.entries[this.head]!;
    this.entries[this.head++] = undefined as unknown as HistoryEntry;
    this.bytes -= entry.size;
    if (this.head > 64 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
    return entry;
  }
}

function randomEpoch(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function whole(name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`${name} must be a whole number >= ${min}: ${value}`);
  }
  return value;
}

/**
 * Offsets, epochs and kept messages for every room of one node.
 *
 * @example
 * ```ts
 * import { RoomLog } from "./history.ts";
 * import assert from "node:assert/strict";
 * const log = new RoomLog({ size: 2 });
 * log.append("lobby", "a", 1);
 * log.append("lobby", "b", 1);
 * const { offset } = log.append("lobby", "c", 1);
 * assert.equal(offset, 3);
 * assert.deepEqual(log.read("lobby", { after: 0 }).entries.map((entry) => entry.data), ["b", "c"]);
 * ```
 */
export class RoomLog {
  readonly #size: number;
  readonly #ttlMs: number;
  readonly #maxBytes: number;
  readonly #now: () => number;
  readonly #rooms = new Map<string, RoomRecord>();
  #messages = 0;
  #bytes = 0;

  /** Creates an empty log; throws `RangeError` on a bad limit. */
  constructor(options: RoomLogOptions = {}) {
    this.#size = whole("size", options.size ?? ROOM_LOG_DEFAULTS.size, 0);
    this.#ttlMs = whole("ttlSeconds", options.ttlSeconds ?? ROOM_LOG_DEFAULTS.ttlSeconds, 1) * 1000;
    this.#maxBytes = whole("maxBytes", options.maxBytes ?? ROOM_LOG_DEFAULTS.maxBytes, 1);
    this.#now = options.now ?? Date.now;
  }

  /** Whether messages are kept (`size` above 0). */
  get keeps(): boolean {
    return this.#size > 0;
  }

  /** Messages kept, over every room. */
  get messages(): number {
    return this.#messages;
  }

  /** Bytes of messages kept, over every room. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Rooms known (with members, or with kept messages). */
  get rooms(): number {
    return this.#rooms.size;
  }

  /** Messages kept in `room`. */
  count(room: string): number {
    return this.#rooms.get(room)?.count ?? 0;
  }

  /** Gives `data` the room's next offset, and keeps it when history is on. */
  append(room: string, data: Message, size: number): Sequenced {
    let record = this.#rooms.get(room);
    if (record === undefined) this.#rooms.set(room, record = new RoomRecord());
    const offset = ++record.offset;
    if (this.#size > 0) {
      const time = this.#now();
      record.entries.push({ offset, data, size, time });
      record.bytes += size;
      this.#messages++;
      this.#bytes += size;
      this.#trim(record, time);
    }
    return { offset, epoch: record.epoch };
  }

  /**
   * The room's epoch, latest offset, and its kept entries after offset `after` (all kept ones when omitted), or only
   * the newest `last` of them. An unknown room reads as a fresh one (a new epoch, nothing kept).
   */
  read(room: string, options: { after?: number; last?: number } = {}): HistoryPage {
    let record = this.#rooms.get(room);
    if (record === undefined) this.#rooms.set(room, record = new RoomRecord());
    this.#trim(record, this.#now());
    const all = record.entries;
    let from = record.head;
    if (options.after !== undefined) {
      // Offsets are consecutive, so the entry after `after` is found by arithmetic.
      const firstOffset = record.count > 0 ? all[record.head].offset : record.offset + 1;
      from = Math.max(from, record.head + (options.after + 1 - firstOffset));
    }
    if (options.last !== undefined) from = Math.max(from, all.length - options.last);
    return {
      epoch: record.epoch,
      latest: record.offset,
      first: record.count > 0 ? all[record.head].offset : record.offset + 1,
      entries: from >= all.length ? [] : all.slice(from),
    };
  }

  /** The hub says whether the room has members here: a room without members and without kept messages is forgotten. */
  setActive(room: string, active: boolean): void {
    const record = this.#rooms.get(room);
    if (record === undefined) return;
    record.active = active;
    if (!active && record.count === 0) this.#rooms.delete(room);
  }

  /** Drops expired messages everywhere and forgets idle rooms with none left; call it every few seconds. */
  sweep(): void {
    const now = this.#now();
    for (const [room, record] of this.#rooms) {
      this.#trim(record, now);
      if (!record.active && record.count === 0) this.#rooms.delete(room);
    }
  }

  #trim(record: RoomRecord, now: number): void {
    const oldest = now - this.#ttlMs;
    while (
      record.count > 0 &&
      (record.count > this.#size || record.bytes > this.#maxBytes || record.entries[record.head].time < oldest)
    ) {
      const dropped = record.dropOldest();
      this.#messages--;
      this.#bytes -= dropped.size;
    }
  }
}
