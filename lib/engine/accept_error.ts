/**
 * What a failed `accept()` means for a listener. Every engine keeps accepting after one: a client that resets before
 * it is accepted (`NotConnected`, `ConnectionAborted`) is its own problem, and running out of file descriptors passes
 * once connections close. Only a listener we closed ends the accept loop.
 *
 * @module
 */

/** First pause after an accept failed for lack of file descriptors; it doubles up to {@linkcode ACCEPT_BACKOFF_MAX_MS}. */
export const ACCEPT_BACKOFF_MIN_MS = 50;
/** Longest pause between accept attempts while file descriptors are exhausted. */
export const ACCEPT_BACKOFF_MAX_MS = 1000;

/** A failed accept, classified: the label it is counted under, and whether the process is out of descriptors. */
export interface AcceptError {
  /** Metrics label: `emfile`, `enfile`, `reset`, or `other`. */
  readonly reason: "emfile" | "enfile" | "reset" | "other";
  /** True for EMFILE/ENFILE: accepting again at once would fail again, so back off. */
  readonly exhausted: boolean;
}

/**
 * Classifies an error thrown by `Listener.accept()` (or by `Deno.serve` stopping on one).
 *
 * @example
 * ```ts
 * import { classifyAcceptError } from "./accept_error.ts";
 * import assert from "node:assert/strict";
 * const error = Object.assign(new Error("Too many open files (os error 24)"), { code: "EMFILE" });
 * assert.deepEqual(classifyAcceptError(error), { reason: "emfile", exhausted: true });
 * assert.deepEqual(classifyAcceptError(new Deno.errors.NotConnected("os error 107")), { reason: "reset", exhausted: false });
 * ```
 */
export function classifyAcceptError(error: unknown): AcceptError {
  const code = (error as { code?: unknown })?.code;
  const message = String((error as Error)?.message ?? error);
  if (code === "EMFILE" || /os error 24\b/.test(message)) return { reason: "emfile", exhausted: true };
  if (code === "ENFILE" || /os error 23\b/.test(message)) return { reason: "enfile", exhausted: true };
  if (
    error instanceof Deno.errors.NotConnected || error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.ConnectionReset
  ) return { reason: "reset", exhausted: false };
  return { reason: "other", exhausted: false };
}
