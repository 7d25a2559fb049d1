/**
 * The expiry queue behind token deadlines: one timer over a heap, run in deadline order, cancellable, and gone once
 * nothing waits (the leak sanitizers check that every test leaves no timer behind).
 *
 * @module
 */

import assert from "node:assert/strict";
import { ExpiryQueue, watchExpiry } from "../lib/auth/expiry.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function test(name: string, fn: () => Promise<void> | void): void {
  Deno.test({ name, sanitizeOps: true, sanitizeResources: true, fn });
}

test("ExpiryQueue runs actions in deadline order, whatever order they were added in", async () => {
  const queue = new ExpiryQueue();
  const ran: number[] = [];
  const start = Date.now();
  // A shuffled order, with ties, so the heap is exercised on the way in and out.
  const delays = [40, 5, 30, 5, 20, 60, 10, 50, 0, 30, 15, 45];
  for (const [i, delay] of delays.entries()) queue.add(start + delay, () => ran.push(i));
  assert.equal(queue.size, delays.length);
  while (queue.size > 0) await sleep(10);
  const byDeadline = [...delays.keys()].sort((a, b) => delays[a] - delays[b] || 0);
  assert.deepEqual(ran.map((i) => delays[i]), byDeadline.map((i) => delays[i]));
  assert.equal(new Set(ran).size, delays.length, "each ran once");
});

test("ExpiryQueue never runs an action before its deadline", async () => {
  const queue = new ExpiryQueue();
  const late: number[] = [];
  const start = Date.now();
  for (const delay of [15, 30, 45]) queue.add(start + delay, () => late.push(Date.now() - (start + delay)));
  while (queue.size > 0) await sleep(10);
  assert.equal(late.length, 3);
  // Timers round to the millisecond; an action is never a whole tick early.
  for (const ms of late) assert.ok(ms >= -1, `ran ${-ms} ms early`);
});

test("ExpiryQueue cancels: a cancelled action never runs, and cancelling twice or after it ran does nothing", async () => {
  const queue = new ExpiryQueue();
  const ran: string[] = [];
  const start = Date.now();
  const first = queue.add(start + 10, () => ran.push("first"));
  const middle = queue.add(start + 20, () => ran.push("middle"));
  queue.add(start + 30, () => ran.push("last"));
  const done = queue.add(start + 5, () => ran.push("done"));
  first(); // the earliest but one: the heap's top changes
  first();
  middle();
  assert.equal(queue.size, 2);
  while (queue.size > 0) await sleep(10);
  done();
  assert.deepEqual(ran, ["done", "last"]);
});

test("ExpiryQueue drops its timer once everything is cancelled", () => {
  const queue = new ExpiryQueue();
  const cancels = Array.from({ length: 100 }, (_, i) => queue.add(Date.now() + 60_000 + i, () => {}));
  for (const cancel of cancels.reverse()) cancel();
  assert.equal(queue.size, 0);
  // Ending here with a timer still set fails the op sanitizer.
});

test("ExpiryQueue runs a past deadline soon, and lets an action add and cancel others", async () => {
  const queue = new ExpiryQueue();
  const ran: string[] = [];
  let cancelLater: () => void = () => {};
  queue.add(Date.now() - 1000, () => {
    ran.push("past");
    queue.add(Date.now(), () => ran.push("added by an action"));
    cancelLater();
  });
  cancelLater = queue.add(Date.now() + 1, () => ran.push("cancelled by an action"));
  queue.add(Date.now() + 2, () => {
    throw new Error("one failing action");
  });
  queue.add(Date.now() + 3, () => ran.push("after a failing action"));
  while (queue.size > 0) await sleep(5);
  assert.equal(ran[0], "past");
  // What the action added runs on a later pass, so under load it may come after the others.
  assert.deepEqual(ran.toSorted(), ["added by an action", "after a failing action", "past"]);
});

test("ExpiryQueue waits for a deadline beyond setTimeout's range instead of running it at once", async () => {
  const queue = new ExpiryQueue();
  let ran = false;
  const cancel = queue.add(Date.now() + 40 * 86_400_000, () => ran = true);
  await sleep(20);
  assert.equal(ran, false);
  cancel();
  assert.throws(() => queue.add(NaN, () => {}), RangeError);
});

test("ExpiryQueue measures deadlines with the injected clock", async () => {
  const hourAhead = () => Date.now() + 3_600_000;
  const queue = new ExpiryQueue({ now: hourAhead });
  let ran = false;
  // Due 10 ms from now by the injected clock; by Date.now it would be an hour away.
  queue.add(hourAhead() + 10, () => ran = true);
  while (queue.size > 0) await sleep(5);
  assert.equal(ran, true);
});

test("watchExpiry() schedules once opened and cancels on release; released first, nothing is scheduled", async () => {
  const queue = new ExpiryQueue();
  let released = 0;
  const expired: string[] = [];
  const plain = watchExpiry(queue, undefined, () => released++, () => {});
  assert.equal(plain.opened, undefined, "no deadline: nothing to schedule");
  plain.release();
  assert.equal(released, 1);

  const gone = watchExpiry<string>(queue, Date.now() + 5, () => released++, (c) => expired.push(c));
  gone.opened!("gone");
  gone.release();
  assert.equal(queue.size, 0, "released: its deadline went with it");

  const abandoned = watchExpiry<string>(queue, Date.now() + 5, () => released++, (c) => expired.push(c));
  abandoned.release();
  abandoned.opened!("abandoned");
  assert.equal(queue.size, 0, "an upgrade given up before it opened schedules nothing");

  const kept = watchExpiry<string>(queue, Date.now() + 5, () => released++, (c) => expired.push(c));
  kept.opened!("kept");
  kept.opened!("kept twice");
  assert.equal(queue.size, 1);
  while (queue.size > 0) await sleep(5);
  kept.release();
  assert.deepEqual(expired, ["kept"]);
  assert.equal(released, 4);
});
