import assert from "node:assert/strict";
import {
  encodeBinary,
  encodeClose,
  encodeFrame,
  encodeFrameHeader,
  encodePing,
  encodePong,
  encodeText,
  FrameLog,
  OPCODE,
} from "../lib/ws/frame.ts";

function filled(length: number, byte = 0x61): Uint8Array {
  return new Uint8Array(length).fill(byte);
}

/** Checks header bytes and that the payload follows unchanged. */
function assertFrame(frame: Uint8Array, header: number[], payload: Uint8Array): void {
  assert.deepEqual(Array.from(frame.subarray(0, header.length)), header);
  assert.equal(frame.length, header.length + payload.length);
  assert.deepEqual(frame.subarray(header.length), payload);
}

Deno.test("OPCODE matches RFC 6455 §5.2", () => {
  assert.deepEqual(OPCODE, { Continuation: 0, Text: 1, Binary: 2, Close: 8, Ping: 9, Pong: 10 });
});

Deno.test("encodeFrame() uses a 7-bit length up to 125 bytes", () => {
  assertFrame(encodeFrame(OPCODE.Binary, new Uint8Array(0)), [0x82, 0], new Uint8Array(0));
  assertFrame(encodeFrame(OPCODE.Binary, filled(1)), [0x82, 1], filled(1));
  assertFrame(encodeFrame(OPCODE.Text, filled(125)), [0x81, 125], filled(125));
});

Deno.test("encodeFrame() uses a 16-bit length from 126 to 65535 bytes", () => {
  assertFrame(encodeFrame(OPCODE.Binary, filled(126)), [0x82, 126, 0x00, 0x7e], filled(126));
  assertFrame(encodeFrame(OPCODE.Binary, filled(65535)), [0x82, 126, 0xff, 0xff], filled(65535));
});

Deno.test("encodeFrame() uses a 64-bit length from 65536 bytes", () => {
  assertFrame(encodeFrame(OPCODE.Binary, filled(65536)), [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0], filled(65536));
});

Deno.test("encodeFrame() clears FIN for a non-final fragment", () => {
  assert.deepEqual(encodeFrame(OPCODE.Text, filled(1), { fin: false }), new Uint8Array([0x01, 1, 0x61]));
  assert.deepEqual(encodeFrame(OPCODE.Continuation, filled(1)), new Uint8Array([0x80, 1, 0x61]));
});

Deno.test("encodeFrame() refuses invalid control frames and undefined opcodes", () => {
  assert.throws(() => encodeFrame(OPCODE.Ping, filled(126)), RangeError);
  assert.throws(() => encodeFrame(OPCODE.Ping, filled(1), { fin: false }), RangeError);
  assert.throws(() => encodeFrame(3 as never, filled(1)), RangeError);
  assert.deepEqual(encodeFrame(OPCODE.Pong, filled(125)).length, 127);
});

Deno.test("encodeFrameHeader() writes each length class exactly", () => {
  assert.deepEqual(encodeFrameHeader(OPCODE.Binary, 125), new Uint8Array([0x82, 125]));
  assert.deepEqual(encodeFrameHeader(OPCODE.Binary, 126), new Uint8Array([0x82, 126, 0, 126]));
  assert.deepEqual(encodeFrameHeader(OPCODE.Text, 65535), new Uint8Array([0x81, 126, 0xff, 0xff]));
  assert.deepEqual(encodeFrameHeader(OPCODE.Text, 65536), new Uint8Array([0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]));
  assert.deepEqual(
    encodeFrameHeader(OPCODE.Binary, 2 ** 32 + 5, { fin: false }),
    new Uint8Array([0x02, 127, 0, 0, 0, 1, 0, 0, 0, 5]),
  );
  assert.throws(() => encodeFrameHeader(OPCODE.Binary, -1), RangeError);
  assert.throws(() => encodeFrameHeader(OPCODE.Binary, 1.5), RangeError);
});

Deno.test("encodeText() matches encodeFrame() of the UTF-8 bytes at every length class", () => {
  const encoder = new TextEncoder();
  const texts = [
    "",
    "hello",
    "a".repeat(64),
    "a".repeat(65),
    "a".repeat(125),
    "a".repeat(126),
    "a".repeat(65535),
    "a".repeat(65536),
    "€".repeat(41), // 123 bytes from 41 units
    "€".repeat(42), // 126 bytes: crosses to a 16-bit length though short in units
    "€".repeat(21845), // 65535 bytes
    "€".repeat(21846), // 65538 bytes: 64-bit length
    "κόσμε 𝄞 \u{10ffff}",
    "x".repeat(8192) + "é",
  ];
  for (const text of texts) {
    assert.deepEqual(encodeText(text), encodeFrame(OPCODE.Text, encoder.encode(text)), `length ${text.length}`);
  }
});

Deno.test("encodeText() writes a lone surrogate as U+FFFD", () => {
  assert.deepEqual(encodeText("\ud800"), new Uint8Array([0x81, 3, 0xef, 0xbf, 0xbd]));
});

Deno.test("encodeText() returns a buffer of its own each time", () => {
  const first = encodeText("é one");
  const second = encodeText("é two");
  assert.notEqual(first.buffer, second.buffer);
  assert.equal(first.byteLength, first.buffer.byteLength);
  assert.deepEqual(new TextDecoder().decode(first.subarray(2)), "é one");
});

Deno.test("encodeBinary() frames an ArrayBuffer or just the bytes of a Uint8Array view", () => {
  assert.deepEqual(encodeBinary(new Uint8Array([1, 2, 3]).buffer), new Uint8Array([0x82, 3, 1, 2, 3]));
  const view = new Uint8Array([9, 1, 2, 9]).subarray(1, 3);
  assert.deepEqual(encodeBinary(view), new Uint8Array([0x82, 2, 1, 2]));
});

Deno.test("encodeClose() writes the code big-endian with the reason", () => {
  assert.deepEqual(encodeClose(1000), new Uint8Array([0x88, 2, 0x03, 0xe8]));
  assert.deepEqual(encodeClose(4999, "é"), new Uint8Array([0x88, 4, 0x13, 0x87, 0xc3, 0xa9]));
  assert.deepEqual(encodeClose(), new Uint8Array([0x88, 0]));
});

Deno.test("encodeClose() truncates the reason to 123 bytes", () => {
  const frame = encodeClose(1001, "a".repeat(200));
  assert.equal(frame.length, 127);
  assert.equal(frame[1], 125);
  assert.deepEqual(frame.subarray(4), filled(123));
  assert.equal(encodeClose(1001, "a".repeat(123)).length, 127);
});

Deno.test("encodeClose() never splits a code point when truncating", () => {
  // 1 + 41 × 3 = 124 bytes: the last "€" does not fit whole and is dropped.
  const three = encodeClose(1000, "a" + "€".repeat(41));
  assert.equal(three[1], 2 + 121);
  assert.equal(new TextDecoder("utf-8", { fatal: true }).decode(three.subarray(4)), "a" + "€".repeat(40));
  // 3 + 30 × 4 = 123 fits exactly; one more byte of prefix pushes the last emoji out.
  assert.equal(encodeClose(1000, "aaa" + "😀".repeat(30))[1], 125);
  const four = encodeClose(1000, "aaaa" + "😀".repeat(30));
  assert.equal(four[1], 2 + 4 + 29 * 4);
  assert.equal(new TextDecoder("utf-8", { fatal: true }).decode(four.subarray(4)), "aaaa" + "😀".repeat(29));
});

Deno.test("encodeClose() refuses codes that may not be sent", () => {
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 2999, 5000]) {
    assert.throws(() => encodeClose(code), RangeError, `code ${code}`);
  }
  assert.throws(() => encodeClose(undefined, "reason"), TypeError);
});

Deno.test("encodePing() and encodePong() carry the payload", () => {
  assert.deepEqual(encodePing(), new Uint8Array([0x89, 0]));
  assert.deepEqual(encodePong(new Uint8Array([1, 2])), new Uint8Array([0x8a, 2, 1, 2]));
  assert.equal(encodePong(filled(125)).length, 127);
  assert.throws(() => encodePong(filled(126)), RangeError);
  assert.throws(() => encodePing(filled(126)), RangeError);
});

// Masking, for the client role (RFC 6455 §5.3)

/**
 * Parses one masked frame byte by byte, independently of lib/frame.ts: checks the mask bit and returns the frame as
 * it would be unmasked (mask bit cleared, key removed, payload unmasked) and the key.
 */
function unmaskFrame(frame: Uint8Array): { unmasked: Uint8Array; key: number[] } {
  assert.equal(frame[1] & 0x80, 0x80, "the mask bit is set");
  const code = frame[1] & 0x7f;
  const lengthBytes = code < 126 ? 0 : code === 126 ? 2 : 8;
  let length = code;
  if (lengthBytes > 0) {
    length = 0;
    for (let i = 0; i < lengthBytes; i++) length = length * 256 + frame[2 + i];
  }
  const keyAt = 2 + lengthBytes;
  const key = Array.from(frame.subarray(keyAt, keyAt + 4));
  assert.equal(frame.length, keyAt + 4 + length, "the length matches");
  const unmasked = new Uint8Array(keyAt + length);
  unmasked.set(frame.subarray(0, keyAt));
  unmasked[1] &= 0x7f;
  for (let i = 0; i < length; i++) unmasked[keyAt + i] = frame[keyAt + 4 + i] ^ key[i & 3];
  return { unmasked, key };
}

Deno.test("encodeFrame() masks with a given key at every length class", () => {
  const key = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);
  assert.deepEqual(
    encodeFrame(OPCODE.Text, new TextEncoder().encode("Hello"), { mask: key }),
    // RFC 6455 §5.7: a single-frame masked text message "Hello".
    new Uint8Array([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]),
  );
  for (const length of [0, 1, 125, 126, 65535, 65536, 70_001]) {
    const payload = Uint8Array.from({ length }, (_, i) => (i * 31 + 7) & 0xff);
    const frame = encodeFrame(OPCODE.Binary, payload, { mask: key, fin: false });
    const { unmasked, key: written } = unmaskFrame(frame);
    assert.deepEqual(written, Array.from(key), `length ${length}`);
    assert.deepEqual(unmasked, encodeFrame(OPCODE.Binary, payload, { fin: false }), `length ${length}`);
  }
});

Deno.test("encodeFrame() with mask: true draws a fresh random key for every frame", () => {
  const payload = new TextEncoder().encode("same payload");
  const keys = new Set<string>();
  for (let i = 0; i < 16; i++) {
    const { unmasked, key } = unmaskFrame(encodeFrame(OPCODE.Text, payload, { mask: true }));
    assert.deepEqual(unmasked, encodeFrame(OPCODE.Text, payload));
    keys.add(key.join(","));
  }
  // 16 draws of 32 random bits: a repeat is a one-in-30-million event, a constant key is a bug.
  assert.ok(keys.size >= 15, `keys repeat: ${[...keys].join(" ")}`);
});

Deno.test("encodeFrame() refuses a mask key that is not 4 bytes; mask: false does not mask", () => {
  assert.throws(() => encodeFrame(OPCODE.Text, new Uint8Array(1), { mask: new Uint8Array(3) }), RangeError);
  assert.deepEqual(encodeFrame(OPCODE.Ping, new Uint8Array([1]), { mask: false }), new Uint8Array([0x89, 1, 1]));
});

Deno.test("encodeText(), encodeBinary(), encodeClose(), encodePing() and encodePong() mask on request", () => {
  const mask = { mask: true } as const;
  const cases: [Uint8Array, Uint8Array][] = [
    [encodeText("", mask), encodeText("")],
    [encodeText("hello", mask), encodeText("hello")],
    [encodeText("κόσμε 𝄞".repeat(3000), mask), encodeText("κόσμε 𝄞".repeat(3000))],
    [encodeText("\ud800", mask), encodeText("\ud800")],
    [encodeBinary(new Uint8Array([1, 2, 3]).buffer, mask), encodeBinary(new Uint8Array([1, 2, 3]))],
    [encodeBinary(new Uint8Array([9, 1, 2, 9]).subarray(1, 3), mask), new Uint8Array([0x82, 2, 1, 2])],
    [encodeClose(undefined, "", mask), encodeClose()],
    [encodeClose(1000, "", mask), encodeClose(1000)],
    [encodeClose(4001, "a".repeat(200), mask), encodeClose(4001, "a".repeat(200))],
    [encodePing(undefined, mask), encodePing()],
    [encodePing(filled(125), mask), encodePing(filled(125))],
    [encodePong(new Uint8Array([1, 2]), mask), encodePong(new Uint8Array([1, 2]))],
  ];
  for (const [masked, plain] of cases) assert.deepEqual(unmaskFrame(masked).unmasked, plain);
  assert.throws(() => encodeClose(1005, "", mask), RangeError);
  assert.throws(() => encodePing(filled(126), mask), RangeError);
});

/** The frame `log` appended last, as a copy. */
function lastFrame(log: FrameLog): Uint8Array {
  return log.bytes.slice(log.start, log.end);
}

const TEXTS = [
  "",
  "a",
  "Hello World!",
  "é",
  "héllo wörld",
  "👋",
  "\ud800", // a lone surrogate: U+FFFD, as encodeText writes it
  "x\udc00y",
  "\ufeffbom",
  "a".repeat(125),
  "a".repeat(124) + "é", // ASCII loop bails out at the last unit; 126 bytes: a 16-bit length
  "é".repeat(62), // 124 bytes in 62 units
  "é".repeat(63), // 126 bytes: a 16-bit length though the units fit a short frame
  "€".repeat(125), // 375 bytes
  "a".repeat(126),
  "a".repeat(5000),
  "é".repeat(3000),
  "a".repeat(70_000), // its own buffer, 64-bit length
];

Deno.test("FrameLog.appendText() writes exactly what encodeText() writes, at every length class", () => {
  const log = new FrameLog({ segmentBytes: 4096 });
  for (const text of TEXTS) {
    log.appendText(text);
    assert.deepEqual(lastFrame(log), encodeText(text), JSON.stringify(text.slice(0, 20)) + ` (${text.length} units)`);
  }
});

Deno.test("FrameLog.appendFrame() frames a copy of the given bytes as encodeFrame() does", () => {
  const log = new FrameLog({ segmentBytes: 4096 });
  for (const length of [0, 1, 125, 126, 1000, 1023, 1025, 65535, 65536, 70_000]) {
    const source = new Uint8Array(length + 20).map((_, i) => (i * 131 + length) & 0xff);
    const expected = encodeFrame(OPCODE.Binary, source.subarray(7, 7 + length));
    log.appendFrame(OPCODE.Binary, source, 7, 7 + length);
    source.fill(0); // the log holds a copy
    assert.deepEqual(lastFrame(log), expected, `${length} bytes`);
  }
  log.appendFrame(OPCODE.Text, new TextEncoder().encode("héllo"));
  assert.deepEqual(lastFrame(log), encodeText("héllo"));
});

Deno.test("FrameLog puts frames back to back in one segment until it is full, and never rewrites a frame", () => {
  const log = new FrameLog({ segmentBytes: 256 });
  const frames: { bytes: Uint8Array; start: number; end: number; copy: Uint8Array; units: number }[] = [];
  for (let i = 0; i < 200; i++) {
    // Short enough to stay in the segment (text over a quarter of it, counted 3 bytes a unit, gets its own buffer).
    const text = i % 3 === 0 ? `m${i} ${"é".repeat(i % 7)}` : `message ${i} ${"x".repeat(i % 23)}`;
    log.appendText(text);
    frames.push({ bytes: log.bytes, start: log.start, end: log.end, copy: lastFrame(log), units: text.length });
  }
  let segments = 1;
  for (let i = 1; i < frames.length; i++) {
    const [before, frame] = [frames[i - 1], frames[i]];
    if (frame.bytes === before.bytes) assert.equal(frame.start, before.end, `frame ${i} follows frame ${i - 1}`);
    else {
      segments++;
      assert.equal(frame.start, 0, `frame ${i} starts a new segment`);
      // Text is given room for its longest encoding (3 bytes a unit after a 4-byte header) before it is encoded.
      assert.ok(before.end + 4 + 3 * frame.units > 256, `frame ${i} would have fit the segment`);
    }
  }
  assert.ok(segments > 10, `${segments} segments`);
  // Every frame still holds its bytes: appending later frames wrote nothing over them.
  for (const [i, frame] of frames.entries()) {
    assert.deepEqual(frame.bytes.subarray(frame.start, frame.end), frame.copy, `frame ${i}`);
  }
});

Deno.test("FrameLog gives a frame over a quarter of a segment a buffer of its own", () => {
  const log = new FrameLog({ segmentBytes: 1024 });
  log.appendText("small");
  const segment = log.bytes;
  log.appendText("a".repeat(300));
  assert.notEqual(log.bytes, segment);
  assert.equal(log.start, 0);
  assert.equal(log.end, log.bytes.length);
  log.appendFrame(OPCODE.Binary, new Uint8Array(300));
  assert.equal(log.bytes.length, 304);
  log.appendText("small again");
  assert.equal(log.bytes, segment, "small frames go on in the segment");
});

Deno.test("FrameLog refuses a segment size below 64 bytes", () => {
  assert.throws(() => new FrameLog({ segmentBytes: 63 }), RangeError);
  assert.throws(() => new FrameLog({ segmentBytes: 100.5 }), RangeError);
});
