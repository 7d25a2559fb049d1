import assert from "node:assert/strict";
import { CLOSE_CODE } from "../lib/ws/close_code.ts";
import { Hub } from "../lib/hub/hub.ts";
import { FakePeer } from "./_fake_peer.ts";

const room = (name: string) => ({ kind: "room", room: name }) as const;

// Lifecycle contract, sentence 1: a peer joins its endpoint's room on connect.
Deno.test("Hub.connect() joins the endpoint's room", () => {
  const hub = new Hub();
  const peer = new FakePeer();
  hub.connect(peer, room("lobby"));
  assert.equal(hub.connections, 1);
  assert.equal(hub.members("lobby"), 1);
  assert.deepEqual(hub.roomsOf(peer), ["lobby"]);
});

Deno.test("Hub.connect() twice with the same peer keeps one membership", () => {
  const hub = new Hub();
  const peer = new FakePeer();
  const first = hub.connect(peer, room("lobby"));
  const second = hub.connect(peer, room("lobby"));
  assert.equal(first, second);
  assert.equal(hub.members("lobby"), 1);
});

// Sentence 2: it leaves every room exactly once, even when close is reported twice.
Deno.test("Hub.disconnect() leaves every room and deletes rooms that empty", () => {
  const hub = new Hub();
  const peer = new FakePeer();
  const other = new FakePeer();
  hub.connect(peer, room("a"));
  hub.join(peer, "b");
  hub.connect(other, room("a"));
  assert.equal(hub.roomCount, 2);
  assert.equal(hub.disconnect(peer), true);
  assert.deepEqual(hub.roomsOf(peer), []);
  assert.equal(hub.members("a"), 1);
  assert.equal(hub.members("b"), 0);
  assert.equal(hub.roomCount, 1);
  assert.equal(hub.connections, 1);
});

Deno.test("Hub.disconnect() a second time (Deno's double close event) changes nothing", () => {
  const hub = new Hub();
  const peer = new FakePeer();
  const stays = new FakePeer();
  const connection = hub.connect(peer, room("a"));
  hub.connect(stays, room("a"));
  connection.disconnect();
  assert.equal(hub.disconnect(peer), false);
  connection.disconnect();
  assert.equal(hub.members("a"), 1);
  assert.equal(hub.connections, 1);
});

// Sentence 3: an evicted peer is out of every room at once, closed with a code that says why, never sent to again.
Deno.test("Hub.publish() evicts a peer over its buffer limit with 1013 and skips it from then on", () => {
  const hub = new Hub({ maxBufferedBytes: 100 });
  const slow = new FakePeer();
  const fast = new FakePeer();
  const sender = hub.connect(fast, room("r"));
  hub.connect(slow, room("r"));
  hub.join(slow, "other");
  slow.bufferedAmount = 101;
  sender.receive("one");
  sender.receive("two");
  assert.deepEqual(fast.sent, ["one", "two"]);
  assert.deepEqual(slow.sent, []);
  assert.deepEqual(slow.closes, [{ code: CLOSE_CODE.TryAgainLater, reason: "slow consumer" }]);
  assert.deepEqual(hub.roomsOf(slow), []);
  assert.equal(hub.members("other"), 0);
  assert.equal(hub.connections, 1);
  assert.equal(hub.stats.dropped.slow_consumer, 1);
  // The engine's close event arrives later: nothing happens twice.
  assert.equal(hub.disconnect(slow), false);
  assert.equal(slow.closes.length, 1);
});

Deno.test("Hub.publish() still sends to a peer exactly at its buffer limit", () => {
  const hub = new Hub({ maxBufferedBytes: 100 });
  const peer = new FakePeer();
  hub.connect(peer, room("r"));
  peer.bufferedAmount = 100;
  assert.equal(hub.publish("r", "x"), 1);
  assert.deepEqual(peer.closes, []);
});

Deno.test("Hub.publish() goes on to every other peer when one peer's send throws", () => {
  const hub = new Hub();
  const peers = [new FakePeer(), new FakePeer(), new FakePeer()];
  for (const peer of peers) hub.connect(peer, room("r"));
  peers[1].onSend = () => {
    throw new Error("socket is broken");
  };
  assert.equal(hub.publish("r", "hello"), 2);
  assert.deepEqual(peers[0].sent, ["hello"]);
  assert.deepEqual(peers[2].sent, ["hello"]);
  assert.deepEqual(peers[1].closes, [{ code: CLOSE_CODE.InternalError, reason: "internal error" }]);
  assert.equal(hub.members("r"), 2);
  assert.equal(hub.stats.dropped.send_error, 1);
});

Deno.test("Hub.receive() closes a sender over maxMessageBytes with 1009 and delivers nothing", () => {
  const hub = new Hub({ maxMessageBytes: 10 });
  const sender = new FakePeer();
  const other = new FakePeer();
  hub.connect(sender, room("r"));
  hub.connect(other, room("r"));
  hub.receive(sender, "ünïcödé!!"); // 9 characters, 13 bytes: the limit counts bytes
  hub.receive(sender, "late");
  assert.deepEqual(other.sent, []);
  assert.deepEqual(sender.closes, [{ code: CLOSE_CODE.MessageTooBig, reason: "message too big" }]);
  assert.equal(hub.stats.dropped.too_big, 1);
  hub.receive(other, new ArrayBuffer(10));
  assert.equal(other.sent.length, 1);
});

Deno.test("Hub.receive() enforces the rate limit with a burst of twice the rate", () => {
  let now = 0;
  const hub = new Hub({ rateLimit: 5, now: () => now });
  const sender = new FakePeer();
  const listener = new FakePeer();
  hub.connect(sender, room("r"));
  hub.connect(listener, room("r"));
  for (let i = 0; i < 10; i++) hub.receive(sender, `burst ${i}`);
  assert.equal(listener.sent.length, 10);
  now += 1000; // refills 5 tokens
  for (let i = 0; i < 5; i++) hub.receive(sender, `steady ${i}`);
  assert.equal(listener.sent.length, 15);
  assert.deepEqual(sender.closes, []);
  hub.receive(sender, "one too many");
  assert.equal(listener.sent.length, 15);
  assert.deepEqual(sender.closes, [{ code: CLOSE_CODE.PolicyViolation, reason: "rate limit exceeded" }]);
  assert.equal(hub.members("r"), 1);
  assert.equal(hub.stats.dropped.rate_limit, 1);
});

Deno.test("Hub.receive() closes a subscribe-only sender (publish: false) with 1008 and delivers nothing", () => {
  const hub = new Hub();
  const ticker = new FakePeer();
  const audience = new FakePeer();
  hub.connect(ticker, room("ticker"));
  hub.connect(audience, { kind: "room", room: "ticker", publish: false });
  hub.receive(ticker, "price 1");
  assert.deepEqual(audience.sent, ["price 1"], "a subscribe-only member receives the room");
  hub.receive(audience, "spam");
  assert.deepEqual(ticker.sent, ["price 1"]);
  assert.deepEqual(audience.sent, ["price 1"]);
  assert.deepEqual(audience.closes, [{ code: CLOSE_CODE.PolicyViolation, reason: "not allowed to publish" }]);
  assert.equal(hub.members("ticker"), 1);
  assert.equal(hub.stats.dropped.not_allowed, 1);
  hub.receive(ticker, "price 2");
  assert.deepEqual(audience.sent, ["price 1"], "an evicted member is never sent to again");
});

// Sentence 4: nobody joins or leaves a room in the middle of its fan-out.
Deno.test("Hub.publish() defers joins and leaves made during its fan-out", () => {
  const hub = new Hub();
  const first = new FakePeer();
  const second = new FakePeer();
  const late = new FakePeer();
  hub.connect(first, room("r"));
  hub.connect(second, room("r"));
  first.onSend = (data) => {
    if (data !== "during") return;
    hub.connect(late, room("r")); // joins only after this fan-out
    hub.disconnect(second); // gone at once for sends, leaves after the fan-out
    assert.equal(hub.members("r"), 2);
  };
  hub.publish("r", "during");
  assert.deepEqual(late.sent, []);
  assert.deepEqual(second.sent, []);
  assert.equal(hub.members("r"), 2);
  hub.publish("r", "after");
  assert.deepEqual(late.sent, ["after"]);
  assert.deepEqual(first.sent, ["during", "after"]);
});

Deno.test("Hub.publish() lets a peer evicted mid-fan-out leave once the fan-out ends", () => {
  const hub = new Hub({ maxBufferedBytes: 10 });
  const peers = [new FakePeer(), new FakePeer(), new FakePeer()];
  for (const peer of peers) hub.connect(peer, room("r"));
  peers[0].onSend = () => peers[2].bufferedAmount = 11;
  hub.publish("r", "x");
  assert.deepEqual(peers.map((peer) => peer.sent.length), [1, 1, 0]);
  assert.equal(hub.members("r"), 2);
});

// Sentence 5: the hub holds no timer (the sanitizers would fail this test if one outlived it).
Deno.test({
  name: "Hub leaves no timer or op behind after a full lifecycle with every limit on",
  sanitizeOps: true,
  sanitizeResources: true,
  fn() {
    const hub = new Hub({ rateLimit: 1, maxBufferedBytes: 1, maxMessageBytes: 5 });
    const peer = new FakePeer();
    hub.connect(peer, room("r"));
    hub.receive(peer, "hi");
    hub.disconnect(peer);
    assert.equal(hub.roomCount, 0);
  },
});

Deno.test("Hub.receive() in a room sends to every member, the sender included, in order and unchanged", () => {
  const hub = new Hub();
  const alice = new FakePeer();
  const bob = new FakePeer();
  const a = hub.connect(alice, room("chat"));
  const b = hub.connect(bob, room("chat"));
  const bytes = new Uint8Array([0, 1, 2, 255]).buffer;
  a.receive("Hello World!");
  b.receive(bytes);
  a.receive("🎉 ünïcode");
  for (const peer of [alice, bob]) {
    assert.equal(peer.sent.length, 3);
    assert.equal(peer.sent[0], "Hello World!");
    assert.equal(peer.sent[1], bytes, "binary is relayed as the same ArrayBuffer, not a copy");
    assert.equal(peer.sent[2], "🎉 ünïcode");
  }
  assert.equal(hub.stats.messagesReceived, 3);
  assert.equal(hub.stats.messagesDelivered, 6);
});

Deno.test("Hub keeps rooms isolated from each other", () => {
  const hub = new Hub();
  const inA = new FakePeer();
  const inB = new FakePeer();
  const sender = hub.connect(inA, room("a"));
  hub.connect(inB, room("b"));
  sender.receive("only for a");
  assert.deepEqual(inA.sent, ["only for a"]);
  assert.deepEqual(inB.sent, []);
});

Deno.test("Hub.receive() on an echo endpoint answers the sender only", () => {
  const hub = new Hub();
  const echo = new FakePeer();
  const bystander = new FakePeer();
  const connection = hub.connect(echo, { kind: "echo" });
  hub.connect(bystander, room("r"));
  connection.receive("ping");
  assert.deepEqual(echo.sent, ["ping"]);
  assert.deepEqual(bystander.sent, []);
  assert.equal(hub.roomCount, 1);
});

Deno.test("Hub.join() refuses a peer that is not connected", () => {
  const hub = new Hub();
  assert.throws(() => hub.join(new FakePeer(), "r"), /not connected/);
});

Deno.test("Hub rejects limits that are not whole numbers in range", () => {
  assert.throws(() => new Hub({ maxMessageBytes: 0 }), RangeError);
  assert.throws(() => new Hub({ maxBufferedBytes: 1.5 }), RangeError);
  assert.throws(() => new Hub({ rateLimit: -1 }), RangeError);
});

Deno.test("Hub.publish() to a room that does not exist delivers nothing", () => {
  const hub = new Hub();
  assert.equal(hub.publish("nowhere", "x"), 0);
});
