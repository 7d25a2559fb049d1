/**
 * A named set of members; one side of the hub's two-way index.
 *
 * @module
 */

/** A broadcast room: the members that receive what is published to `name`. */
export class Room<M> {
  /** The room's key in the hub. */
  readonly name: string;
  /** Members in join order; a `Set` so leaving is O(1) and iteration keeps order. */
  readonly members: Set<M> = new Set();
  /** Identified users (a JWT's `sub`) among the members, with how many connections each has here. */
  readonly users: Map<string, number> = new Map();
  /** Messages fanned out here since the room was made: one increment per message, not per member (for dashboards). */
  messages = 0;

  /** Creates an empty room called `name`. */
  constructor(name: string) {
    this.name = name;
  }

  /** Number of members. */
  get size(): number {
    return this.members.size;
  }
}

/** A room as the dashboard sees it: a copy, so no caller can touch the hub's members. */
export interface RoomSummary {
  /** The room's key (`/` for the main room). */
  readonly name: string;
  /** Members on this node. */
  readonly members: number;
  /** Messages fanned out to this node's members since the room was made (it is deleted when it empties). */
  readonly messages: number;
}
