/**
 * A recording {@linkcode Peer} for hub unit tests: no network, everything it is asked to do is kept.
 *
 * @module
 */

import type { Message, Peer } from "../lib/hub/peer.ts";

let lastId = 1000;

/** A peer that records sends and closes; `bufferedAmount` and `onSend` are set by the test. */
export class FakePeer implements Peer {
  /** Unique id. */
  readonly id: number = ++lastId;
  /** Settable to simulate a slow reader. */
  bufferedAmount = 0;
  /** Every message handed to `send`, in order. */
  readonly sent: Message[] = [];
  /** Every `close` call. */
  readonly closes: { code: number; reason: string }[] = [];
  /** Called inside `send` before recording; may throw to simulate a broken socket. */
  onSend?: (data: Message) => void;

  /** Records `data`. */
  send(data: Message): void {
    this.onSend?.(data);
    this.sent.push(data);
  }

  /** Records the close. */
  close(code: number, reason: string): void {
    this.closes.push({ code, reason });
  }
}
