/**
 * The seam between the hub and whatever sequences a room's messages. Without a broker the hub fans a message out to
 * its own members at once (one process is one hub). With one, the hub hands every room message to the broker, and the
 * broker hands it back — on every node, this one included, once, in the room's one order — through
 * {@linkcode BrokerTarget.deliver}. The hub stays free of I/O; a broker owns the network.
 *
 * @module
 */

import type { Message } from "../hub/peer.ts";
import type { Stats } from "../hub/stats.ts";
import type { HistoryPage } from "./history.ts";

/** What a broker delivers to: the hub's fan-out to this node's members of a room. */
export interface BrokerTarget {
  /**
   * Hands `data` to every local member of `room`, unchanged; `size` is its byte size, `offset` its place in the room
   * under `epoch`. Returns the peers reached.
   */
  deliver(room: string, data: Message, size: number, offset: number, epoch: string): number;
  /** A user's first connection joined `room` somewhere in the cluster, or its last one left. */
  presence(room: string, type: "join" | "leave", sub: string): void;
}

/** A whole server's counts, summed over its hubs. */
export interface ServerTotals {
  /** Open connections over every hub. */
  readonly connections: number;
  /** Rooms with a member in some hub. */
  readonly roomCount: number;
  /** The hubs' counters, added up. */
  readonly stats: Stats;
  /** Messages and bytes kept for replay. */
  readonly history: { readonly messages: number; readonly bytes: number };
}

/** A room's identified users across the cluster, with their connection counts. */
export interface PresenceCounts {
  /** Members, anonymous ones included. */
  readonly members: number;
  /** Identified users and their connections, sorted by name. */
  readonly users: { sub: string; connections: number }[];
}

/** Which part of a room's history to read: the messages after an offset, or the newest few. */
export interface HistoryQuery {
  /** Messages after this offset. */
  readonly after?: number;
  /** Only the newest this many. */
  readonly last?: number;
}

/** Where a broker stands: `ok` when messages flow, `down` while they cannot (they are buffered meanwhile). */
export type BrokerState = "ok" | "down";

/** Cluster-wide counts, as a broker knows them. */
export interface ClusterCounts {
  /** Open connections on every live node. */
  readonly connections: number;
  /** Distinct rooms with a member on some live node. */
  readonly rooms: number;
  /** Live nodes (this one included). */
  readonly nodes: number;
}

/** One node of the cluster, as its heartbeat describes it. */
export interface NodeInfo {
  /** Random id, new at every start. */
  readonly id: string;
  /** Where it listens, as it says (`http://host:port`). */
  readonly address: string;
  /** Open connections. */
  readonly connections: number;
  /** Milliseconds since the epoch when it started. */
  readonly startedAt: number;
  /** Milliseconds since the epoch of its last heartbeat. */
  readonly heartbeatAt: number;
  /** Its broker state at that heartbeat. */
  readonly broker: BrokerState;
}

/**
 * A message sequencer shared by several hubs. The hub calls {@linkcode Broker.attach} once, then
 * {@linkcode Broker.publish} for every message to a room and {@linkcode Broker.membership} whenever its member count of
 * a room changes, so the broker can subscribe to exactly the rooms this node has members in.
 */
export interface Broker {
  /** Where messages go when they come back; called once by the hub that owns the broker. */
  attach(target: BrokerTarget): void;
  /** Sends `data` to `room` on every node. Never throws: while the broker is down it buffers, bounded, or drops. */
  publish(room: string, data: Message, size: number): void;
  /** This node's member count of `room` is now `members` (1 after the first join, 0 once the last left). */
  membership(room: string, members: number): void;
  /** `ok` while messages flow. */
  readonly state: BrokerState;
  /** One line for people: where the broker is and who this node is (never a password). */
  readonly description: string;
  /** Open connections and rooms across the cluster (this node included). */
  counts(): Promise<ClusterCounts>;
  /** Members of `room` across the cluster. */
  members(room: string): Promise<number>;
  /** The live nodes. */
  nodes(): Promise<NodeInfo[]>;
  /** This node's connections of user `sub` in `room` changed by `delta` (the broker announces cluster-wide joins/leaves). */
  presence(room: string, sub: string, delta: 1 | -1): void;
  /** Members and identified users of `room` across the cluster. */
  roomPresence(room: string): Promise<PresenceCounts>;
  /**
   * Counters of the whole server when it is made of several hubs in one process (workers): summed connections, rooms
   * and stats for `/metrics`. Brokers that span machines leave it out: each node reports its own. @default {undefined}
   */
  serverTotals?(): Promise<ServerTotals>;
  /** The room's epoch, latest offset and kept messages (none when history is off), from the shared store. */
  history(room: string, query: HistoryQuery): Promise<HistoryPage>;
  /** Stops: unsubscribes, removes this node from the cluster's counts, closes connections and timers. */
  close(): Promise<void>;
}
