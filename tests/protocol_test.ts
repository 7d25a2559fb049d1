import assert from "node:assert/strict";
import { encodeBinary, encodeClose, encodePing, encodeText, OPCODE } from "../lib/ws/frame.ts";
import { ServerProtocol, type ServerProtocolOptions } from "../lib/ws/protocol.ts";
import { clientFrame, type ClientFrameOptions, concatBytes, utf8 } from "./_ws_client_frames.ts";

type Event =
  | ["text", string]
  | ["binary", number[]]
  | ["ping", number[]]
  | ["pong", number[]]
  | ["close", number, string]
  | ["error", number]
  | ["write", number[]];

const { Continuation, Text, Binary, Close, Ping, Pong } = OPCODE;

/** A protocol whose callbacks record every event, in order, with plain arrays for bytes. */
function recorder(options: ServerProtocolOptions = {}): { protocol: ServerProtocol; events: Event[] } {
  const events: Event[] = [];
  const protocol = new ServerProtocol({
    ...options,
    onMessage(data) {
      if (typeof data === "string") {
        events.push(["text", data]);
      } else {
        assert.ok(data instanceof ArrayBuffer, "binary messages are ArrayBuffers");
        events.push(["binary", Array.from(new Uint8Array(data))]);
      }
    },
    onPing: (payload) => events.push(["ping", Array.from(payload)]),
    onPong: (payload) => events.push(["pong", Array.from(payload)]),
    onClose: (code, reason) => events.push(["close", code, reason]),
    onError: (code) => events.push(["error", code]),
    // A client's writes are recorded unmasked (after checking they were masked), so both roles share expectations.
    write: (bytes) => events.push(["write", options.role === "client" ? unmaskWritten(bytes) : Array.from(bytes)]),
  });
  return { protocol, events };
}

/** A frame as a server sends it: unmasked. */
function serverFrame(opcode: number, payload: Uint8Array | string = "", options: ClientFrameOptions = {}): Uint8Array {
  return clientFrame(opcode, payload, { ...options, mask: false });
}

/**
 * Checks that `frame` (one whole frame) is masked, and returns it as the same frame unmasked would be: mask bit
 * cleared, key removed, payload unmasked. Written byte by byte, independently of lib/frame.ts.
 */
function unmaskWritten(frame: Uint8Array): number[] {
  assert.equal(frame[1] & 0x80, 0x80, "a client's frame must be masked");
  const length = frame[1] & 0x7f;
  assert.ok(length < 126, "the protocol writes control frames only");
  assert.equal(frame.length, 2 + 4 + length);
  const key = frame.subarray(2, 6);
  const payload = Array.from(frame.subarray(6), (byte, i) => byte ^ key[i & 3]);
  return [frame[0], length, ...payload];
}

/**
 * Feeds `stream` cut at `cuts`, each piece copied into one reused buffer that is wiped after every call, so any event
 * data still aliasing the input would show up as zeros.
 */
function feed(stream: Uint8Array, cuts: number[] = [], options: ServerProtocolOptions = {}): Event[] {
  const { protocol, events } = recorder(options);
  const scratch = new Uint8Array(stream.length);
  let from = 0;
  for (const to of [...cuts, stream.length]) {
    const piece = scratch.subarray(0, to - from);
    piece.set(stream.subarray(from, to));
    protocol.receive(piece);
    scratch.fill(0);
    from = to;
  }
  return events;
}

function feedBytewise(stream: Uint8Array, options: ServerProtocolOptions = {}): Event[] {
  return feed(stream, Array.from({ length: stream.length - 1 }, (_, i) => i + 1), options);
}

function closeBytes(code: number, reason = ""): Uint8Array {
  return concatBytes(new Uint8Array([code >>> 8, code & 0xff]), utf8(reason));
}

function bytes(length: number, seed = 1): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);
}

const UNMASKED_CLOSE = [0x88, 18, 0x03, 0xea, ...utf8("Frame not masked")];

// §1 Framing

Deno.test("ServerProtocol.receive() delivers a masked text frame as a string", () => {
  assert.deepEqual(feed(clientFrame(Text, "Hello")), [["text", "Hello"]]);
});

Deno.test("ServerProtocol.receive() delivers a binary frame as an ArrayBuffer of exactly its bytes", () => {
  const payload = bytes(300);
  let received: unknown;
  const protocol = new ServerProtocol({ onMessage: (data) => (received = data) });
  protocol.receive(clientFrame(Binary, payload));
  assert.ok(received instanceof ArrayBuffer);
  assert.equal(received.byteLength, 300);
  assert.deepEqual(new Uint8Array(received), payload);
  assert.equal(protocol.closed, false);
});

Deno.test("ServerProtocol.receive() handles empty text and binary frames", () => {
  assert.deepEqual(feed(concatBytes(clientFrame(Text, ""), clientFrame(Binary, new Uint8Array(0)))), [
    ["text", ""],
    ["binary", []],
  ]);
});

Deno.test("ServerProtocol.receive() reads 7-, 16- and 64-bit lengths at their boundaries", () => {
  for (const length of [0, 1, 48, 49, 125, 126, 127, 65535, 65536, 100_000]) {
    const payload = bytes(length, length);
    assert.deepEqual(feed(clientFrame(Binary, payload)), [["binary", Array.from(payload)]], `length ${length}`);
    const text = "x".repeat(length);
    assert.deepEqual(feed(clientFrame(Text, text)), [["text", text]], `text length ${length}`);
  }
});

Deno.test("ServerProtocol.receive() accepts a length in a longer encoding than needed", () => {
  const stream = concatBytes(
    clientFrame(Text, "a", { lengthBits: 16 }),
    clientFrame(Text, "b", { lengthBits: 64 }),
  );
  assert.deepEqual(feed(stream), [["text", "a"], ["text", "b"]]);
});

Deno.test("ServerProtocol.receive() unmasks with any mask key and any chunk alignment", () => {
  const payload = bytes(1000, 7);
  for (const mask of [[0, 0, 0, 0], [0xff, 0xff, 0xff, 0xff], [1, 2, 3, 4], [0x80, 0x01, 0xfe, 0x7f]]) {
    const frame = clientFrame(Binary, payload, { mask: new Uint8Array(mask) });
    for (let offset = 0; offset < 4; offset++) {
      const backing = new Uint8Array(frame.length + offset);
      backing.set(frame, offset);
      let received: ArrayBuffer | undefined;
      new ServerProtocol({ onMessage: (data) => (received = data as ArrayBuffer) }).receive(backing.subarray(offset));
      assert.deepEqual(new Uint8Array(received!), payload, `mask ${mask} offset ${offset}`);
    }
  }
});

Deno.test("ServerProtocol.receive() parses many frames from one chunk in order", () => {
  const frames = Array.from({ length: 100 }, (_, i) => clientFrame(i % 2 ? Binary : Text, i % 2 ? bytes(i) : `m${i}`));
  const expected: Event[] = Array.from(
    { length: 100 },
    (_, i) => (i % 2 ? ["binary", Array.from(bytes(i))] : ["text", `m${i}`]) as Event,
  );
  assert.deepEqual(feed(concatBytes(...frames)), expected);
});

/** A stream touching every path: all length classes, fragmentation, controls, multi-byte text, and close. */
function mixedStream(frame: typeof clientFrame = clientFrame): Uint8Array {
  const clientFrame = frame;
  return concatBytes(
    clientFrame(Text, "héllo"),
    clientFrame(Binary, bytes(200)),
    clientFrame(Ping, "p1"),
    clientFrame(Text, "κό", { fin: false }),
    clientFrame(Ping, ""),
    clientFrame(Continuation, "σμε 𝄞", { fin: false }),
    clientFrame(Pong, "x"),
    clientFrame(Continuation, utf8("tail").subarray(0, 4)),
    clientFrame(Binary, bytes(40), { fin: false }),
    clientFrame(Continuation, bytes(3, 9)),
    clientFrame(Text, "16", { lengthBits: 16 }),
    clientFrame(Binary, bytes(70_000), { lengthBits: 64 }),
    clientFrame(Close, closeBytes(1000, "done")),
  );
}

function mixedEvents(): Event[] {
  return [
    ["text", "héllo"],
    ["binary", Array.from(bytes(200))],
    ["write", [0x8a, 2, 0x70, 0x31]],
    ["ping", [0x70, 0x31]],
    ["write", [0x8a, 0]],
    ["ping", []],
    ["pong", [0x78]],
    ["text", "κόσμε 𝄞tail"],
    ["binary", [...bytes(40), ...bytes(3, 9)]],
    ["text", "16"],
    ["binary", Array.from(bytes(70_000))],
    ["write", [0x88, 6, 0x03, 0xe8, ...utf8("done")]],
    ["close", 1000, "done"],
  ];
}

Deno.test("ServerProtocol.receive() gives the same events for a stream fed whole or one byte at a time", () => {
  const stream = mixedStream();
  assert.deepEqual(feed(stream), mixedEvents());
  assert.deepEqual(feedBytewise(stream), mixedEvents());
});

Deno.test("ServerProtocol.receive() gives the same events for a stream split at every byte boundary", () => {
  // Without the 70,000-byte frame, so that every split point stays quick.
  const stream = concatBytes(
    clientFrame(Text, "héllo"),
    clientFrame(Binary, bytes(130)),
    clientFrame(Ping, "p1"),
    clientFrame(Text, "κό", { fin: false }),
    clientFrame(Continuation, "σμε", { fin: true }),
    clientFrame(Close, closeBytes(4000, "é")),
  );
  const expected = feed(stream);
  assert.equal(expected.length, 7);
  for (let cut = 1; cut < stream.length; cut++) {
    assert.deepEqual(feed(stream, [cut]), expected, `cut at ${cut}`);
    for (const second of [cut + 1, cut + 7]) {
      if (second < stream.length) assert.deepEqual(feed(stream, [cut, second]), expected, `cuts ${cut}, ${second}`);
    }
  }
});

Deno.test("ServerProtocol.receive() keeps events apart from the input buffer it later reuses", () => {
  // feed() wipes its buffer after every call: a payload that aliased it would read as zeros.
  const stream = mixedStream();
  assert.deepEqual(feed(stream, [3, 50, 51, 400, 1000, 60_000]), mixedEvents());
});

Deno.test("ServerProtocol.receive() fails with 1002 on an unmasked frame", () => {
  assert.deepEqual(feed(clientFrame(Text, "hi", { mask: false })), [["write", UNMASKED_CLOSE], ["error", 1002]]);
});

Deno.test("ServerProtocol.receive() fails with 1002 when any reserved bit is set", () => {
  for (const rsv of [1, 2, 4, 7]) {
    const events = feed(clientFrame(Text, "hi", { rsv }));
    assert.deepEqual(events.at(-1), ["error", 1002], `rsv ${rsv}`);
    assert.equal(events.length, 2);
  }
});

Deno.test("ServerProtocol.receive() fails with 1002 on reserved opcodes", () => {
  for (const opcode of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
    assert.deepEqual(feed(clientFrame(opcode, "")).at(-1), ["error", 1002], `opcode ${opcode}`);
  }
});

Deno.test("ServerProtocol.receive() fails with 1002 on a 64-bit length with the top bit set", () => {
  const frame = new Uint8Array([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]);
  assert.deepEqual(feed(frame).at(-1), ["error", 1002]);
});

Deno.test("ServerProtocol.receive() checks the first two header bytes before the rest arrives", () => {
  const { protocol, events } = recorder();
  protocol.receive(new Uint8Array([0x81, 0x7e])); // unmasked, 16-bit length still to come
  assert.deepEqual(events.at(-1), ["error", 1002]);
});

Deno.test("ServerProtocol.receive() ignores everything after a protocol failure", () => {
  const stream = concatBytes(clientFrame(3, ""), clientFrame(Text, "late"), clientFrame(Ping, ""));
  const { protocol, events } = recorder();
  protocol.receive(stream);
  protocol.receive(clientFrame(Text, "later"));
  assert.equal(events.length, 2);
  assert.equal(protocol.closed, true);
  assert.equal(protocol.closing, true);
});

// §2 Pings and pongs

Deno.test("ServerProtocol.receive() answers a ping with a pong carrying the same payload", () => {
  for (const payload of [new Uint8Array(0), utf8("hello"), bytes(125)]) {
    const events = feed(clientFrame(Ping, payload));
    assert.deepEqual(events, [["write", [0x8a, payload.length, ...payload]], ["ping", Array.from(payload)]]);
  }
});

Deno.test("ServerProtocol.receive() answers ten pings in one chunk in order", () => {
  const stream = concatBytes(...Array.from({ length: 10 }, (_, i) => clientFrame(Ping, `p${i}`)));
  const writes = feed(stream).filter((event) => event[0] === "write");
  assert.deepEqual(writes, Array.from({ length: 10 }, (_, i) => ["write", [0x8a, 2, 0x70, 0x30 + i]]));
});

Deno.test("ServerProtocol.receive() reports a pong and answers nothing", () => {
  assert.deepEqual(feed(clientFrame(Pong, "unsolicited")), [["pong", Array.from(utf8("unsolicited"))]]);
});

Deno.test("ServerProtocol.receive() fails with 1002 on a control frame over 125 bytes", () => {
  for (const opcode of [Ping, Pong, Close]) {
    assert.deepEqual(feed(clientFrame(opcode, bytes(126))).at(-1), ["error", 1002], `opcode ${opcode}`);
  }
});

Deno.test("ServerProtocol.receive() fails with 1002 on a fragmented control frame", () => {
  for (const opcode of [Ping, Pong, Close]) {
    assert.deepEqual(feed(clientFrame(opcode, "x", { fin: false })).at(-1), ["error", 1002], `opcode ${opcode}`);
  }
});

// §5 Fragmentation

Deno.test("ServerProtocol.receive() reassembles a fragmented text message", () => {
  const stream = concatBytes(
    clientFrame(Text, "frag", { fin: false }),
    clientFrame(Continuation, "ment", { fin: false }),
    clientFrame(Continuation, "", { fin: false }),
    clientFrame(Continuation, "ed"),
  );
  assert.deepEqual(feed(stream), [["text", "fragmented"]]);
  assert.deepEqual(feedBytewise(stream), [["text", "fragmented"]]);
});

Deno.test("ServerProtocol.receive() reassembles a fragmented binary message", () => {
  const stream = concatBytes(
    clientFrame(Binary, bytes(70), { fin: false }),
    clientFrame(Continuation, new Uint8Array(0), { fin: false }),
    clientFrame(Continuation, bytes(200, 3)),
  );
  assert.deepEqual(feed(stream), [["binary", [...bytes(70), ...bytes(200, 3)]]]);
});

Deno.test("ServerProtocol.receive() handles pings interleaved in a fragmented message", () => {
  const stream = concatBytes(
    clientFrame(Text, "a", { fin: false }),
    clientFrame(Ping, "1"),
    clientFrame(Continuation, "b", { fin: false }),
    clientFrame(Pong, ""),
    clientFrame(Ping, "2"),
    clientFrame(Continuation, "c"),
  );
  assert.deepEqual(feed(stream), [
    ["write", [0x8a, 1, 0x31]],
    ["ping", [0x31]],
    ["pong", []],
    ["write", [0x8a, 1, 0x32]],
    ["ping", [0x32]],
    ["text", "abc"],
  ]);
});

Deno.test("ServerProtocol.receive() fails with 1002 on a continuation without a started message", () => {
  assert.deepEqual(feed(clientFrame(Continuation, "x")).at(-1), ["error", 1002]);
  assert.deepEqual(feed(clientFrame(Continuation, "x", { fin: false })).at(-1), ["error", 1002]);
  // Also right after a complete fragmented message.
  const after = concatBytes(
    clientFrame(Text, "a", { fin: false }),
    clientFrame(Continuation, "b"),
    clientFrame(Continuation, "c"),
  );
  assert.deepEqual(feed(after), [["text", "ab"], ["write", [
    0x88,
    32,
    0x03,
    0xea,
    ...utf8("Continuation without a message"),
  ]], [
    "error",
    1002,
  ]]);
});

Deno.test("ServerProtocol.receive() fails with 1002 on a new data frame in the middle of a fragmented message", () => {
  for (const opcode of [Text, Binary]) {
    for (const fin of [true, false]) {
      const stream = concatBytes(clientFrame(Text, "a", { fin: false }), clientFrame(opcode, "b", { fin }));
      assert.deepEqual(feed(stream).at(-1), ["error", 1002], `opcode ${opcode} fin ${fin}`);
    }
  }
});

Deno.test("ServerProtocol.receive() fails with 1002 on a fragmented close inside a fragmented message", () => {
  const stream = concatBytes(
    clientFrame(Text, "a", { fin: false }),
    clientFrame(Close, closeBytes(1000), { fin: false }),
  );
  assert.deepEqual(feed(stream).at(-1), ["error", 1002]);
});

Deno.test("ServerProtocol.receive() accepts a close in the middle of a fragmented message", () => {
  const stream = concatBytes(clientFrame(Text, "a", { fin: false }), clientFrame(Close, closeBytes(1001)));
  assert.deepEqual(feed(stream), [["write", [0x88, 2, 0x03, 0xe9]], ["close", 1001, ""]]);
});

// §6 UTF-8

const VALID_UTF8 = [
  "κόσμε",
  "\u0000\u007f\u0080\u07ff\u0800\uffff\u{10000}\u{10ffff}",
  "\ufeffBOM is kept",
  "\ud7ff\ue000\ufffd",
  "𝄞 music",
];

const INVALID_UTF8: [string, number[]][] = [
  ["lone continuation byte", [0x80]],
  ["overlong 2-byte NUL", [0xc0, 0x80]],
  ["overlong 2-byte /", [0xc1, 0xbf]],
  ["overlong 3-byte", [0xe0, 0x80, 0xaf]],
  ["overlong 4-byte", [0xf0, 0x80, 0x80, 0xaf]],
  ["high surrogate U+D800", [0xed, 0xa0, 0x80]],
  ["low surrogate U+DFFF", [0xed, 0xbf, 0xbf]],
  ["surrogate pair encoded", [0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80]],
  ["beyond U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
  ["5-byte sequence", [0xf8, 0x88, 0x80, 0x80, 0x80]],
  ["byte FE", [0xfe]],
  ["byte FF", [0xff]],
  ["truncated 2-byte", [0xce]],
  ["truncated 3-byte", [0xe2, 0x82]],
  ["truncated 4-byte", [0xf0, 0x9d, 0x84]],
  ["missing continuation mid-text", [0x61, 0xe2, 0x28, 0xa1, 0x62]],
];

Deno.test("ServerProtocol.receive() accepts valid multi-byte UTF-8 text", () => {
  for (const text of VALID_UTF8) assert.deepEqual(feed(clientFrame(Text, text)), [["text", text]], text);
});

Deno.test("ServerProtocol.receive() fails with 1007 on invalid UTF-8 text", () => {
  for (const [name, sequence] of INVALID_UTF8) {
    const events = feed(clientFrame(Text, concatBytes(utf8("ok "), new Uint8Array(sequence))));
    assert.deepEqual(events.at(-1), ["error", 1007], name);
    assert.deepEqual(events[0][1], [0x88, 2 + 29, 0x03, 0xef, ...utf8("Invalid UTF-8 in text message")], name);
  }
});

Deno.test("ServerProtocol.receive() accepts valid UTF-8 split across fragments at every byte", () => {
  for (const text of VALID_UTF8) {
    const encoded = utf8(text);
    for (let cut = 0; cut <= encoded.length; cut++) {
      const stream = concatBytes(
        clientFrame(Text, encoded.subarray(0, cut), { fin: false }),
        clientFrame(Continuation, encoded.subarray(cut)),
      );
      assert.deepEqual(feed(stream), [["text", text]], `${text} cut at ${cut}`);
    }
  }
});

Deno.test("ServerProtocol.receive() fails with 1007 on invalid UTF-8 split across fragments", () => {
  for (const [name, sequence] of INVALID_UTF8) {
    const encoded = concatBytes(utf8("κ"), new Uint8Array(sequence));
    for (let cut = 0; cut <= encoded.length; cut++) {
      const stream = concatBytes(
        clientFrame(Text, encoded.subarray(0, cut), { fin: false }),
        clientFrame(Continuation, encoded.subarray(cut)),
      );
      assert.deepEqual(feed(stream).at(-1), ["error", 1007], `${name} cut at ${cut}`);
    }
  }
});

Deno.test("ServerProtocol.receive() fails with 1007 as soon as a fragment is invalid, before the message ends", () => {
  const { protocol, events } = recorder();
  protocol.receive(clientFrame(Text, "ok", { fin: false }));
  protocol.receive(clientFrame(Continuation, new Uint8Array([0xce, 0xba, 0xf4, 0x90]), { fin: false }));
  assert.deepEqual(events.at(-1), ["error", 1007]);
});

Deno.test("ServerProtocol.receive() fails with 1007 on a code point left incomplete by the final fragment", () => {
  const stream = concatBytes(
    clientFrame(Text, "ok", { fin: false }),
    clientFrame(Continuation, new Uint8Array([0xf0, 0x9d]), { fin: false }),
    clientFrame(Continuation, new Uint8Array([0x84])),
  );
  assert.deepEqual(feed(stream).at(-1), ["error", 1007]);
});

Deno.test("ServerProtocol.receive() starts each fragmented text message with a fresh decoder", () => {
  const stream = concatBytes(
    clientFrame(Text, "é", { fin: false }),
    clientFrame(Continuation, "1"),
    clientFrame(Text, "\ufeffx", { fin: false }),
    clientFrame(Continuation, "2"),
  );
  assert.deepEqual(feed(stream), [["text", "é1"], ["text", "\ufeffx2"]]);
});

// §9 Limits

Deno.test("ServerProtocol.receive() accepts a message of exactly maxMessageBytes", () => {
  assert.deepEqual(feed(clientFrame(Binary, bytes(1000)), [], { maxMessageBytes: 1000 }).length, 1);
  const fragmented = concatBytes(
    clientFrame(Text, "x".repeat(600), { fin: false }),
    clientFrame(Continuation, "y".repeat(400)),
  );
  assert.deepEqual(feed(fragmented, [], { maxMessageBytes: 1000 }), [["text", "x".repeat(600) + "y".repeat(400)]]);
});

Deno.test("ServerProtocol.receive() fails with 1009 on the header of a too-big frame, before its payload", () => {
  const { protocol, events } = recorder({ maxMessageBytes: 1000 });
  const frame = clientFrame(Binary, bytes(1001));
  protocol.receive(frame.subarray(0, 8)); // 2 + 2 length + 4 mask: the header only
  assert.deepEqual(events, [["write", [0x88, 17, 0x03, 0xf1, ...utf8("message too big")]], ["error", 1009]]);
  assert.equal(protocol.closed, true);
});

Deno.test("ServerProtocol.receive() fails with 1009 when a fragment would take the message past the limit", () => {
  const { protocol, events } = recorder({ maxMessageBytes: 1000 });
  protocol.receive(clientFrame(Binary, bytes(600), { fin: false }));
  assert.deepEqual(events, []);
  protocol.receive(clientFrame(Continuation, bytes(401)).subarray(0, 8));
  assert.deepEqual(events.at(-1), ["error", 1009]);
});

Deno.test("ServerProtocol.receive() applies the default limit of 1 MiB", () => {
  const header = (length: number) => clientFrame(Binary, new Uint8Array(0), { declaredLength: length, lengthBits: 64 });
  assert.deepEqual(feed(header(1_048_577)).at(-1), ["error", 1009]);
  const { protocol, events } = recorder();
  protocol.receive(header(1_048_576));
  assert.deepEqual(events, []);
});

Deno.test("ServerProtocol.receive() fails with 1009 on a huge 64-bit length without allocating", () => {
  const frame = clientFrame(Binary, new Uint8Array(0), { declaredLength: 2 ** 53 - 1, lengthBits: 64 });
  assert.deepEqual(feed(frame).at(-1), ["error", 1009]);
});

Deno.test("ServerProtocol.receive() does not count control frames toward the message limit", () => {
  const stream = concatBytes(
    clientFrame(Text, "x".repeat(10), { fin: false }),
    clientFrame(Ping, bytes(125)),
    clientFrame(Continuation, "y".repeat(10)),
  );
  assert.deepEqual(feed(stream, [], { maxMessageBytes: 20 }).at(-1), ["text", "x".repeat(10) + "y".repeat(10)]);
});

Deno.test("new ServerProtocol() rejects an invalid maxMessageBytes", () => {
  for (const maxMessageBytes of [-1, 1.5, NaN, Infinity]) {
    assert.throws(() => new ServerProtocol({ maxMessageBytes }), RangeError, String(maxMessageBytes));
  }
});

// §7 Closing

const VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999];
const INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535];

Deno.test("ServerProtocol.receive() echoes each valid close code exactly, with its reason", () => {
  for (const code of VALID_CODES) {
    assert.deepEqual(
      feed(clientFrame(Close, closeBytes(code, "bye"))),
      [["write", [0x88, 5, code >>> 8, code & 0xff, ...utf8("bye")]], ["close", code, "bye"]],
      `code ${code}`,
    );
  }
});

Deno.test("ServerProtocol.receive() answers an empty close with an empty close and reports 1005", () => {
  assert.deepEqual(feed(clientFrame(Close, "")), [["write", [0x88, 0]], ["close", 1005, ""]]);
});

Deno.test("ServerProtocol.receive() fails with 1002 on invalid close codes", () => {
  for (const code of INVALID_CODES) {
    const events = feed(clientFrame(Close, closeBytes(code)));
    assert.deepEqual(events.at(-1), ["error", 1002], `code ${code}`);
    assert.deepEqual((events[0][1] as number[]).slice(0, 4), [0x88, 2 + 18, 0x03, 0xea], `code ${code}`);
  }
});

Deno.test("ServerProtocol.receive() fails with 1002 on a close payload of one byte", () => {
  assert.deepEqual(feed(clientFrame(Close, new Uint8Array([0x03]))).at(-1), ["error", 1002]);
});

Deno.test("ServerProtocol.receive() fails with 1007 on a close reason that is not UTF-8", () => {
  const payload = concatBytes(closeBytes(1000), new Uint8Array([0xce, 0xba, 0xed, 0xa0, 0x80]));
  assert.deepEqual(feed(clientFrame(Close, payload)).at(-1), ["error", 1007]);
});

Deno.test("ServerProtocol.receive() accepts a close reason of 123 bytes", () => {
  const reason = "r".repeat(123);
  assert.deepEqual(feed(clientFrame(Close, closeBytes(1000, reason))).at(-1), ["close", 1000, reason]);
});

Deno.test("ServerProtocol.receive() ignores frames after the peer's close", () => {
  const stream = concatBytes(clientFrame(Close, closeBytes(1000)), clientFrame(Text, "late"), clientFrame(Ping, ""));
  const { protocol, events } = recorder();
  protocol.receive(stream);
  protocol.receive(clientFrame(Text, "later"));
  assert.deepEqual(events, [["write", [0x88, 2, 0x03, 0xe8]], ["close", 1000, ""]]);
  assert.equal(protocol.closed, true);
});

Deno.test("ServerProtocol.close() sends a close frame once and does not echo the peer's answer", () => {
  const { protocol, events } = recorder();
  protocol.close(1001, "going away");
  protocol.close(1000);
  assert.equal(protocol.closing, true);
  assert.equal(protocol.closed, false);
  protocol.receive(clientFrame(Text, "in flight"));
  protocol.receive(clientFrame(Ping, "no pong while closing"));
  protocol.receive(clientFrame(Close, closeBytes(1001)));
  assert.deepEqual(events, [
    ["write", [0x88, 12, 0x03, 0xe9, ...utf8("going away")]],
    ["text", "in flight"],
    ["ping", Array.from(utf8("no pong while closing"))],
    ["close", 1001, ""],
  ]);
  assert.equal(protocol.closed, true);
});

Deno.test("ServerProtocol.close() rejects a code that may not be sent", () => {
  const { protocol, events } = recorder();
  assert.throws(() => protocol.close(1005), RangeError);
  assert.deepEqual(events, []);
  assert.equal(protocol.closing, false);
});

Deno.test("ServerProtocol.receive() sends no second close frame when failing after close()", () => {
  const { protocol, events } = recorder();
  protocol.close(1000);
  protocol.receive(clientFrame(Text, "x", { mask: false }));
  assert.deepEqual(events, [["write", [0x88, 2, 0x03, 0xe8]], ["error", 1002]]);
});

// §8 The client role: unmasked frames in, masked frames out (RFC 6455 §5.1, §5.3)

const CLIENT = { role: "client" } as const;

Deno.test("ServerProtocol client role: gives the same events for unmasked server frames, whole or byte by byte", () => {
  // recorder() unmasks what the client writes after checking the mask bit: pongs and the close answer are masked.
  const stream = mixedStream(serverFrame);
  assert.deepEqual(feed(stream, [], CLIENT), mixedEvents());
  assert.deepEqual(feedBytewise(stream, CLIENT), mixedEvents());
});

Deno.test("ServerProtocol client role: gives the same events for a stream split at every byte boundary", () => {
  const stream = concatBytes(
    serverFrame(Text, "héllo"),
    serverFrame(Binary, bytes(300)),
    serverFrame(Ping, "p1"),
    serverFrame(Text, "κό", { fin: false }),
    serverFrame(Continuation, "σμε", { fin: true }),
    serverFrame(Close, closeBytes(1001, "é")),
  );
  const expected = feed(stream, [], CLIENT);
  assert.deepEqual(expected.map((event) => event[0]), ["text", "binary", "write", "ping", "text", "write", "close"]);
  for (let cut = 1; cut < stream.length; cut++) {
    assert.deepEqual(feed(stream, [cut], CLIENT), expected, `cut at ${cut}`);
  }
});

Deno.test("ServerProtocol client role: fails with 1002 on a masked server frame, its close frame masked", () => {
  const closeFrame = [0x88, 2 + 12, 0x03, 0xea, ...utf8("Frame masked")];
  assert.deepEqual(feed(clientFrame(Text, "hi"), [], CLIENT), [["write", closeFrame], ["error", 1002]]);
  // Checked on the second header byte alone, before any key or payload arrives.
  const { protocol, events } = recorder(CLIENT);
  protocol.receive(new Uint8Array([0x82, 0xfe]));
  assert.deepEqual(events, [["write", closeFrame], ["error", 1002]]);
});

Deno.test("ServerProtocol client role: masks pongs and close frames with a fresh key each", () => {
  const written: Uint8Array[] = [];
  const protocol = new ServerProtocol({ role: "client", write: (bytes) => written.push(bytes) });
  protocol.receive(concatBytes(...Array.from({ length: 8 }, () => serverFrame(Ping, "same payload"))));
  protocol.close(4000, "bye");
  assert.equal(written.length, 9);
  for (const frame of written.slice(0, 8)) assert.deepEqual(unmaskWritten(frame), [0x8a, 12, ...utf8("same payload")]);
  assert.deepEqual(unmaskWritten(written[8]), [0x88, 5, 0x0f, 0xa0, ...utf8("bye")]);
  const keys = new Set(written.map((frame) => Array.from(frame.subarray(2, 6)).join(",")));
  assert.ok(keys.size >= 8, `keys repeat: ${[...keys].join(" ")}`);
});

Deno.test("ServerProtocol client role: answers an empty close with an empty masked close and reports 1005", () => {
  assert.deepEqual(feed(serverFrame(Close, ""), [], CLIENT), [["write", [0x88, 0]], ["close", 1005, ""]]);
});

Deno.test("ServerProtocol client role: enforces maxMessageBytes on the header", () => {
  const events = feed(serverFrame(Binary, bytes(101)), [], { ...CLIENT, maxMessageBytes: 100 });
  assert.deepEqual(events.at(-1), ["error", 1009]);
  assert.deepEqual(feed(serverFrame(Binary, bytes(100)), [], { ...CLIENT, maxMessageBytes: 100 }).length, 1);
});

Deno.test("ServerProtocol client and server roles talk to each other through lib/frame.ts", () => {
  const toServer: Uint8Array[] = [];
  const toClient: Uint8Array[] = [];
  const events: string[] = [];
  const big = bytes(70_000);
  const describe = (data: string | ArrayBuffer) => {
    if (typeof data === "string") return data;
    const received = new Uint8Array(data);
    return received.length === big.length && received.every((byte, i) => byte === big[i])
      ? "the 70,000 bytes"
      : received.join(".");
  };
  const server = new ServerProtocol({
    write: (bytes) => toClient.push(bytes),
    onMessage: (data) => events.push(`server got ${describe(data)}`),
    onPong: (payload) => events.push(`server got pong ${new TextDecoder().decode(payload)}`),
    onClose: (code, reason) => events.push(`server got close ${code} ${reason}`),
  });
  const client = new ServerProtocol({
    role: "client",
    write: (bytes) => toServer.push(bytes),
    onMessage: (data) => events.push(`client got ${describe(data)}`),
    onPong: (payload) => events.push(`client got pong ${new TextDecoder().decode(payload)}`),
    onClose: (code, reason) => events.push(`client got close ${code} ${reason}`),
  });
  const deliver = () => {
    while (toServer.length > 0 || toClient.length > 0) {
      for (const bytes of toServer.splice(0)) server.receive(bytes);
      for (const bytes of toClient.splice(0)) client.receive(bytes);
    }
  };
  const masked = { mask: true } as const;
  server.receive(encodeText("hello from the client", masked));
  server.receive(encodeBinary(new Uint8Array([1, 2, 3]), masked));
  server.receive(encodeBinary(big, masked));
  server.receive(encodePing(utf8("c"), masked));
  client.receive(encodeText("hello from the server"));
  client.receive(encodePing(utf8("s")));
  client.receive(encodeBinary(big));
  deliver();
  client.close(1000, "done");
  deliver();
  assert.deepEqual(events, [
    "server got hello from the client",
    "server got 1.2.3",
    "server got the 70,000 bytes",
    "client got hello from the server",
    "client got the 70,000 bytes",
    "server got pong s",
    "client got pong c",
    "server got close 1000 done",
    "client got close 1000 done",
  ]);
  assert.equal(server.closed, true);
  assert.equal(client.closed, true);
  // And a masked close straight from lib/frame.ts is a close the server accepts.
  const { protocol, events: serverEvents } = recorder();
  protocol.receive(encodeClose(4001, "x", masked));
  assert.deepEqual(serverEvents.at(-1), ["close", 4001, "x"]);
});

Deno.test("new ServerProtocol() rejects an unknown role", () => {
  assert.throws(() => new ServerProtocol({ role: "peer" as "client" }), TypeError);
});

Deno.test("ServerProtocol.receive() reassembles a large frame that arrives in many small reads, exactly", () => {
  // 300 KiB crosses the first 64 KiB payload buffer and several doublings.
  const payload = bytes(300 * 1024, 7);
  const stream = clientFrame(OPCODE.Binary, payload);
  const cuts = Array.from({ length: Math.floor(stream.length / 1000) }, (_, i) => (i + 1) * 1000);
  const events = feed(stream, cuts, { maxMessageBytes: 1024 * 1024 });
  assert.equal(events.length, 1);
  assert.equal(events[0][0], "binary");
  assert.deepEqual(events[0][1], Array.from(payload));
});

Deno.test("ServerProtocol.receive() does not size a split payload's buffer from the header alone", () => {
  // A header announcing 1 MiB and one byte of payload: what is allocated must follow the bytes at hand.
  const allocations: number[] = [];
  const Original = globalThis.Uint8Array;
  const frame = clientFrame(OPCODE.Binary, bytes(1024 * 1024));
  const protocol = new ServerProtocol({ maxMessageBytes: 2 * 1024 * 1024 });
  const header = frame.subarray(0, 15); // 2 + 8 length bytes + 4 mask bytes + 1 payload byte
  globalThis.Uint8Array = new Proxy(Original, {
    construct(target, args) {
      if (typeof args[0] === "number") allocations.push(args[0]);
      return Reflect.construct(target, args);
    },
  });
  try {
    protocol.receive(header.slice());
  } finally {
    globalThis.Uint8Array = Original;
  }
  assert.ok(allocations.length > 0, "a payload buffer was allocated");
  assert.ok(Math.max(...allocations) <= 64 * 1024, `allocated ${Math.max(...allocations)} bytes for 1 byte at hand`);
});

Deno.test("ServerProtocol.receive() reassembles 100,000 one-byte fragments into one exact message", () => {
  const count = 100_000;
  const binary = concatBytes(
    clientFrame(Binary, new Uint8Array([0]), { fin: false }),
    ...Array.from(
      { length: count - 2 },
      (_, i) => clientFrame(Continuation, new Uint8Array([(i + 1) & 0xff]), { fin: false }),
    ),
    clientFrame(Continuation, new Uint8Array([(count - 1) & 0xff])),
  );
  const [[kind, bytes]] = feed(binary, [], { maxMessageBytes: count });
  assert.equal(kind, "binary");
  assert.deepEqual(bytes, Array.from({ length: count }, (_, i) => i & 0xff));
  // Text whose code points are split across fragments: "é" is two bytes, "𝄞" four, one byte per frame.
  const text = "é𝄞x".repeat(10_000);
  const utf8Bytes = utf8(text);
  const fragments = Array.from(
    utf8Bytes,
    (byte, i) =>
      clientFrame(i === 0 ? Text : Continuation, new Uint8Array([byte]), { fin: i === utf8Bytes.length - 1 }),
  );
  assert.deepEqual(feed(concatBytes(...fragments), [], { maxMessageBytes: utf8Bytes.length }), [["text", text]]);
});

/** Every text message `chunks` carry, with the bytes onMessage was given for it (copied during the call). */
function textWithBytes(chunks: Uint8Array[]): [string, number[] | undefined][] {
  const seen: [string, number[] | undefined][] = [];
  const protocol = new ServerProtocol({
    onMessage(data, bytes, start, end) {
      seen.push([
        typeof data === "string" ? data : `binary ${data.byteLength}`,
        bytes === undefined ? undefined : Array.from(bytes.subarray(start, end)),
      ]);
    },
  });
  for (const chunk of chunks) protocol.receive(chunk);
  return seen;
}

Deno.test("ServerProtocol.receive() hands onMessage the UTF-8 bytes of each text message, however it arrived", () => {
  const texts = ["", "Hi", "héllo wörld 👋", "\ufeffkept", "a".repeat(48), "a".repeat(49), "é".repeat(40_000)];
  for (const text of texts) {
    const bytes = Array.from(utf8(text));
    // receive() unmasks in place: every case gets frames of its own.
    assert.deepEqual(textWithBytes([clientFrame(Text, utf8(text))]), [[text, bytes]], "one frame");
    // Split across reads, so the payload lands in the protocol's own buffer.
    const whole = clientFrame(Text, utf8(text));
    const pieces: Uint8Array[] = [whole.slice(0, 3)];
    for (let at = 3; at < whole.length; at += 7919) pieces.push(whole.slice(at, at + 7919));
    assert.deepEqual(textWithBytes(pieces), [[text, bytes]], "split across reads");
    // Fragmented into two frames.
    const half = Math.floor(utf8(text).length / 2);
    const fragments = concatBytes(
      clientFrame(Text, utf8(text).subarray(0, half), { fin: false }),
      clientFrame(Continuation, utf8(text).subarray(half)),
    );
    assert.deepEqual(textWithBytes([fragments]), [[text, bytes]], "fragmented");
  }
});

Deno.test("ServerProtocol.receive() hands onMessage no bytes for binary messages", () => {
  assert.deepEqual(textWithBytes([clientFrame(Binary, new Uint8Array([1, 2, 3]))]), [["binary 3", undefined]]);
});
