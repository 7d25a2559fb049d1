/**
 * The seam between the hub and a transport: everything the hub may do to a connection.
 *
 * @module
 */

/** A WebSocket message as the hub relays it: text stays a `string`, binary stays an `ArrayBuffer`. */
export type Message = string | ArrayBuffer;

/**
 * One connected client, as the hub sees it. Each engine wraps its sockets into this; the hub never touches a socket.
 *
 * Contract for implementers: `send` and `close` never throw for a socket that is closing or closed (they drop
 * silently), and `bufferedAmount` counts the bytes accepted by `send` that have not yet reached the kernel.
 */
export interface Peer {
  /** A process-unique id, for logs and metrics. */
  readonly id: number;
  /** Bytes queued for this peer and not yet written to the network. */
  readonly bufferedAmount: number;
  /** Queues one message, unchanged: a `string` as a text frame, an `ArrayBuffer` as a binary frame. */
  send(data: Message): void;
  /** Starts the closing handshake with `code` and a `reason` of at most 123 UTF-8 bytes. */
  close(code: number, reason: string): void;
}

let lastPeerId = 0;

/** Returns a new process-unique peer id. */
export function nextPeerId(): number {
  return ++lastPeerId;
}
