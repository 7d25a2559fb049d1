/**
 * One hub over several Deno workers of one process (`--workers N`): every worker serves the same port (the kernel
 * spreads connections over them, SO_REUSEPORT), and a {@linkcode WorkerSequencer} on the main thread is their broker's
 * other end: it gives each room message its offset (one order per room, whichever worker it came from), keeps the
 * history, counts members and users, and hands each message to the workers that have members in its room.
 * {@linkcode WorkerBroker} is the {@linkcode Broker} a worker's hub talks to. Messages cross threads through
 * `MessagePort`s (which never drop a message, unlike `BroadcastChannel`: ENGINE_NOTES), batched per turn.
 *
 * @module
 */

import type { Message } from "../hub/peer.ts";
import type {
  Broker,
  BrokerState,
  BrokerTarget,
  ClusterCounts,
  HistoryQuery,
  NodeInfo,
  PresenceCounts,
  ServerTotals,
} from "./broker.ts";
import { type HistoryPage, RoomLog, type RoomLogOptions } from "./history.ts";
import { Stats } from "../hub/stats.ts";

/** What a worker sends to the sequencer. */
export type WorkerToSequencer =
  | { readonly t: "publish"; readonly room: string; readonly data: Message; readonly size: number }
  | { readonly t: "membership"; readonly room: string; readonly members: number }
  | { readonly t: "presence"; readonly room: string; readonly sub: string; readonly delta: 1 | -1 }
  | { readonly t: "report"; readonly connections: number; readonly stats: Stats }
  | { readonly t: "ask"; readonly id: number; readonly question: Question };

/** What the sequencer sends to a worker. */
export type SequencerToWorker =
  | {
    readonly t: "deliver";
    readonly room: string;
    readonly data: Message;
    readonly size: number;
    readonly offset: number;
    readonly epoch: string;
  }
  | { readonly t: "presence"; readonly room: string; readonly type: "join" | "leave"; readonly sub: string }
  | { readonly t: "answer"; readonly id: number; readonly answer: unknown };

/** The questions a worker can ask the sequencer, answered asynchronously. */
export type Question =
  | { readonly q: "counts" }
  | { readonly q: "members"; readonly room: string }
  | { readonly q: "presence"; readonly room: string }
  | { readonly q: "history"; readonly room: string; readonly query: HistoryQuery }
  | { readonly q: "nodes" }
  | { readonly q: "totals" };

/** Messages for a port, sent together at the end of the turn: one `postMessage` (one copy, one wake-up) per batch. */
class Outbox<T> {
  readonly #port: MessagePort;
  #batch: T[] = [];
  #scheduled = false;

  constructor(port: MessagePort) {
    this.#port = port;
  }

  push(message: T): void {
    this.#batch.push(message);
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      const batch = this.#batch;
      this.#batch = [];
      this.#port.postMessage(batch);
    });
  }
}

/** One worker as the sequencer sees it. */
interface WorkerRecord {
  readonly id: number;
  readonly port: MessagePort;
  readonly outbox: Outbox<SequencerToWorker>;
  readonly startedAt: number;
  connections: number;
  /** Its counters, as of its last report. */
  stats: Stats;
  /** Its member count per room. */
  readonly rooms: Map<string, number>;
  /** Its users' connections per room. */
  readonly users: Map<string, Map<string, number>>;
}

/**
 * The main thread's end: sequences every worker's room messages, keeps the history, and answers their questions.
 *
 * @example
 * ```ts
 * import { WorkerSequencer } from "./workers.ts";
 * const sequencer = new WorkerSequencer();
 * const { port1, port2 } = new MessageChannel();
 * sequencer.add(port1);
 * port2.close();
 * sequencer.close();
 * ```
 */
export class WorkerSequencer {
  readonly #log: RoomLog;
  readonly #workers = new Map<number, WorkerRecord>();
  /** Workers with members in each room. */
  readonly #rooms = new Map<string, Set<number>>();
  #nextId = 1;

  /** Creates the sequencer; `history` configures the kept messages (offsets are counted either way). */
  constructor(history: RoomLogOptions = {}) {
    this.#log = new RoomLog(history);
  }

  /** Its history, for the sweep timer and metrics. */
  get log(): RoomLog {
    return this.#log;
  }

  /** Starts serving the worker at the other end of `port`; returns its id. */
  add(port: MessagePort): number {
    const id = this.#nextId++;
    const record: WorkerRecord = {
      id,
      port,
      outbox: new Outbox(port),
      startedAt: Date.now(),
      connections: 0,
      stats: new Stats(),
      rooms: new Map(),
      users: new Map(),
    };
    this.#workers.set(id, record);
    port.onmessage = (event: MessageEvent<WorkerToSequencer[]>) => {
      for (const message of event.data) this.#handle(record, message);
    };
    return id;
  }

  /** Stops listening to every worker. */
  close(): void {
    for (const record of this.#workers.values()) record.port.close();
    this.#workers.clear();
  }

  #handle(record: WorkerRecord, message: WorkerToSequencer): void {
    switch (message.t) {
      case "publish": {
        const { room, data, size } = message;
        const { offset, epoch } = this.#log.append(room, data, size);
        for (const id of this.#rooms.get(room) ?? []) {
          this.#workers.get(id)?.outbox.push({ t: "deliver", room, data, size, offset, epoch });
        }
        break;
      }
      case "membership": {
        const { room, members } = message;
        let workers = this.#rooms.get(room);
        if (members > 0) {
          record.rooms.set(room, members);
          if (workers === undefined) this.#rooms.set(room, workers = new Set());
          if (workers.size === 0) this.#log.setActive(room, true);
          workers.add(record.id);
        } else {
          record.rooms.delete(room);
          workers?.delete(record.id);
          if (workers?.size === 0) {
            this.#rooms.delete(room);
            this.#log.setActive(room, false);
          }
        }
        break;
      }
      case "presence":
        this.#presence(record, message.room, message.sub, message.delta);
        break;
      case "report":
        record.connections = message.connections;
        record.stats = message.stats;
        break;
      case "ask":
        record.outbox.push({ t: "answer", id: message.id, answer: this.#answer(message.question) });
        break;
    }
  }

  /** Counts a user's connections across workers; a first join or last leave goes to every worker in the room. */
  #presence(record: WorkerRecord, room: string, sub: string, delta: 1 | -1): void {
    let users = record.users.get(room);
    if (users === undefined) record.users.set(room, users = new Map());
    const mine = (users.get(sub) ?? 0) + delta;
    if (mine > 0) users.set(sub, mine);
    else users.delete(sub);
    if (users.size === 0) record.users.delete(room);
    let total = 0;
    for (const worker of this.#workers.values()) total += worker.users.get(room)?.get(sub) ?? 0;
    if (total !== (delta > 0 ? 1 : 0)) return;
    const type = delta > 0 ? "join" : "leave";
    for (const id of this.#rooms.get(room) ?? []) {
      this.#workers.get(id)?.outbox.push({ t: "presence", room, type, sub });
    }
  }

  #answer(question: Question): unknown {
    switch (question.q) {
      case "counts": {
        let connections = 0;
        for (const worker of this.#workers.values()) connections += worker.connections;
        return { connections, rooms: this.#rooms.size, nodes: this.#workers.size } satisfies ClusterCounts;
      }
      case "members":
        return this.#members(question.room);
      case "presence": {
        const users = new Map<string, number>();
        for (const worker of this.#workers.values()) {
          for (const [sub, count] of worker.users.get(question.room) ?? []) {
            users.set(sub, (users.get(sub) ?? 0) + count);
          }
        }
        return {
          members: this.#members(question.room),
          users: [...users].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0).map(([sub, connections]) => ({
            sub,
            connections,
          })),
        } satisfies PresenceCounts;
      }
      case "history":
        return this.#log.read(question.room, question.query) satisfies HistoryPage;
      case "totals": {
        let connections = 0;
        const stats = new Stats();
        for (const worker of this.#workers.values()) {
          connections += worker.connections;
          stats.add(worker.stats);
        }
        // Across threads the Stats arrives as a plain object: the sum is built fresh, and sent back as one too.
        const history = { messages: this.#log.messages, bytes: this.#log.bytes };
        return { connections, roomCount: this.#rooms.size, stats, history } satisfies ServerTotals;
      }
      case "nodes":
        return [...this.#workers.values()].map((worker) => ({
          id: `worker-${worker.id}`,
          address: "",
          connections: worker.connections,
          startedAt: worker.startedAt,
          heartbeatAt: Date.now(),
          broker: "ok",
        })) satisfies NodeInfo[];
    }
  }

  #members(room: string): number {
    let members = 0;
    for (const worker of this.#workers.values()) members += worker.rooms.get(room) ?? 0;
    return members;
  }
}

/**
 * The {@linkcode Broker} of one worker's hub: its room messages go to the sequencer and come back, with their offsets,
 * in the room's one order.
 */
export class WorkerBroker implements Broker {
  readonly #port: MessagePort;
  readonly #outbox: Outbox<WorkerToSequencer>;
  #target: BrokerTarget | undefined;
  readonly #answers = new Map<number, (answer: unknown) => void>();
  #nextQuestion = 1;

  /** Talks to the sequencer over `port`. */
  constructor(port: MessagePort, options: { description?: string } = {}) {
    this.#port = port;
    this.#outbox = new Outbox(port);
    this.description = options.description ?? "workers of this process";
    port.onmessage = (event: MessageEvent<SequencerToWorker[]>) => {
      for (const message of event.data) this.#handle(message);
    };
  }

  /** Always `ok`: the sequencer is in this process. */
  readonly state: BrokerState = "ok";
  /** For the start-up banner. */
  readonly description: string;

  /** The hub this broker delivers to. */
  attach(target: BrokerTarget): void {
    this.#target = target;
  }

  /** Sends a room message to the sequencer. */
  publish(room: string, data: Message, size: number): void {
    this.#post({ t: "publish", room, data, size });
  }

  /** Reports this worker's member count of `room`. */
  membership(room: string, members: number): void {
    this.#post({ t: "membership", room, members });
  }

  /** Reports a user's connection joining or leaving here. */
  presence(room: string, sub: string, delta: 1 | -1): void {
    this.#post({ t: "presence", room, sub, delta });
  }

  /** Reports this worker's open connections and counters (the sequencer adds them up for `/healthz` and `/metrics`). */
  report(connections: number, stats: Stats): void {
    this.#post({ t: "report", connections, stats });
  }

  /** Connections, rooms and counters of every worker, as of their last reports (at most a quarter second old). */
  async serverTotals(): Promise<ServerTotals> {
    const totals = await this.#ask({ q: "totals" }) as ServerTotals;
    const stats = new Stats();
    stats.add(totals.stats);
    return { ...totals, stats };
  }

  /** Connections and rooms over every worker. */
  counts(): Promise<ClusterCounts> {
    return this.#ask({ q: "counts" }) as Promise<ClusterCounts>;
  }

  /** Members of `room` over every worker. */
  members(room: string): Promise<number> {
    return this.#ask({ q: "members", room }) as Promise<number>;
  }

  /** Members and users of `room` over every worker. */
  roomPresence(room: string): Promise<PresenceCounts> {
    return this.#ask({ q: "presence", room }) as Promise<PresenceCounts>;
  }

  /** The room's history, from the sequencer. */
  history(room: string, query: HistoryQuery): Promise<HistoryPage> {
    return this.#ask({ q: "history", room, query }) as Promise<HistoryPage>;
  }

  /** The workers, one row each. */
  nodes(): Promise<NodeInfo[]> {
    return this.#ask({ q: "nodes" }) as Promise<NodeInfo[]>;
  }

  /** Stops listening to the sequencer; unanswered questions reject. */
  close(): Promise<void> {
    this.#port.close();
    for (const answer of this.#answers.values()) answer(undefined);
    this.#answers.clear();
    return Promise.resolve();
  }

  #ask(question: Question): Promise<unknown> {
    const id = this.#nextQuestion++;
    return new Promise((resolve, reject) => {
      this.#answers.set(
        id,
        (answer) => answer === undefined ? reject(new Error("the sequencer is gone")) : resolve(answer),
      );
      this.#post({ t: "ask", id, question });
    });
  }

  #post(message: WorkerToSequencer): void {
    this.#outbox.push(message);
  }

  #handle(message: SequencerToWorker): void {
    switch (message.t) {
      case "deliver":
        this.#target?.deliver(message.room, message.data, message.size, message.offset, message.epoch);
        break;
      case "presence":
        this.#target?.presence(message.room, message.type, message.sub);
        break;
      case "answer": {
        const answer = this.#answers.get(message.id);
        this.#answers.delete(message.id);
        answer?.(message.answer);
        break;
      }
    }
  }
}
