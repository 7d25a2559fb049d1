/**
 * The counters every engine and the hub update, read by `/healthz` and `/metrics`.
 *
 * @module
 */

/**
 * Why a message was not delivered to a peer, or a peer was dropped; `broker_unavailable` counts messages dropped
 * because the broker was down longer than its buffer lasts.
 */
export const DROP_REASONS = [
  "slow_consumer",
  "send_error",
  "too_big",
  "rate_limit",
  "not_allowed",
  "broker_unavailable",
] as const;
/** One of {@linkcode DROP_REASONS}. */
export type DropReason = typeof DROP_REASONS[number];

/** Plain counters; cheap to bump on the hot path (no maps touched per delivery). */
export class Stats {
  /** Messages received from clients. */
  messagesReceived = 0;
  /** Messages handed to a peer's `send`. */
  messagesDelivered = 0;
  /** Payload bytes received. */
  bytesIn = 0;
  /** Payload bytes handed to peers' `send`. */
  bytesOut = 0;
  /** Messages (or peers) dropped, by reason. */
  readonly dropped: Record<DropReason, number> = {
    slow_consumer: 0,
    send_error: 0,
    too_big: 0,
    rate_limit: 0,
    not_allowed: 0,
    broker_unavailable: 0,
  };
  /** Connections closed, by the close code the server observed. */
  readonly closes: Map<number, number> = new Map();
  /** Handshakes refused, by reason label (e.g. `not_found`, `bad_key`, `origin`). */
  readonly refused: Map<string, number> = new Map();
  /** WebSocket upgrades accepted. */
  upgrades = 0;
  /** Accepted upgrades whose socket never opened (the client left right after its request), slot freed. */
  upgradesAborted = 0;
  /** Connections the listener failed to accept, by reason (`emfile`, `reset`…); the server keeps accepting. */
  readonly acceptErrors: Map<string, number> = new Map();

  /** Counts one close with `code`. */
  countClose(code: number): void {
    this.closes.set(code, (this.closes.get(code) ?? 0) + 1);
  }

  /** Counts one refused handshake under `label`. */
  countRefusal(label: string): void {
    this.refused.set(label, (this.refused.get(label) ?? 0) + 1);
  }

  /** Reconnections with `?since=` by result: every missed message delivered, or not (history too short, new epoch). */
  readonly recoveries: { recovered: number; lost: number } = { recovered: 0, lost: 0 };

  /** Counts one recovery attempt. */
  countRecovery(result: "recovered" | "lost"): void {
    this.recoveries[result]++;
  }

  /** Counts one failed accept under `reason`. */
  countAcceptError(reason: string): void {
    this.acceptErrors.set(reason, (this.acceptErrors.get(reason) ?? 0) + 1);
  }

  /** Adds `other`'s counts into these (to sum the workers of one process). */
  add(other: Stats): void {
    this.messagesReceived += other.messagesReceived;
    this.messagesDelivered += other.messagesDelivered;
    this.bytesIn += other.bytesIn;
    this.bytesOut += other.bytesOut;
    this.upgrades += other.upgrades;
    this.upgradesAborted += other.upgradesAborted;
    for (const reason of DROP_REASONS) this.dropped[reason] += other.dropped[reason];
    this.recoveries.recovered += other.recoveries.recovered;
    this.recoveries.lost += other.recoveries.lost;
    for (const [code, n] of other.closes) this.closes.set(code, (this.closes.get(code) ?? 0) + n);
    for (const [label, n] of other.refused) this.refused.set(label, (this.refused.get(label) ?? 0) + n);
    for (const [reason, n] of other.acceptErrors) {
      this.acceptErrors.set(reason, (this.acceptErrors.get(reason) ?? 0) + n);
    }
  }
}
