import assert from "node:assert/strict";
import {
  CommandWriter,
  encodeCommand,
  encodeCommands,
  RESP_DEFAULTS,
  RespError,
  RespParser,
  type RespParserOptions,
  RespProtocolError,
  RespPush,
  respText,
  type RespValue,
} from "../lib/broker/resp.ts";
import { concatBytes } from "../lib/bytes.ts";

const encoder = new TextEncoder();
const bytes = (text: string) => encoder.encode(text);

/** Serializes a reply the way a server would (the parser's test oracle, written independently of the parser). */
function encodeReply(value: RespValue): Uint8Array {
  if (value === null) return bytes("$-1\r\n");
  if (typeof value === "string") return bytes(`+${value}\r\n`);
  if (typeof value === "number" || typeof value === "bigint") return bytes(`:${value}\r\n`);
  if (value instanceof RespError) return bytes(`-${value.message}\r\n`);
  if (value instanceof Uint8Array) return concatBytes(bytes(`$${value.length}\r\n`), value, bytes("\r\n"));
  const [mark, items] = value instanceof RespPush ? [">", value.items] : ["*", value];
  return concatBytes(bytes(`${mark}${items.length}\r\n`), ...items.map(encodeReply));
}

/** Parses `input` fed in pieces cut at `cuts` (sorted offsets), with a fresh parser. */
function parseCut(input: Uint8Array, cuts: number[], options?: RespParserOptions): RespValue[] {
  const parser = new RespParser(options);
  const out: RespValue[] = [];
  let at = 0;
  for (const cut of [...cuts, input.length]) {
    // A copy per piece, overwritten after use: the parser must not keep views of the caller's buffer.
    const piece = input.slice(at, cut);
    out.push(...parser.push(piece));
    piece.fill(0x21);
    at = cut;
  }
  assert.equal(parser.partial, false, "parser still holds a partial reply at the end of the input");
  return out;
}

/** Parses `input` whole, split in two at every byte boundary, and byte by byte; every way must give `expected`. */
function assertParsesEverySplit(input: Uint8Array, expected: RespValue[]): void {
  assert.deepEqual(parseCut(input, []), expected);
  for (let cut = 1; cut < input.length; cut++) assert.deepEqual(parseCut(input, [cut]), expected, `split at ${cut}`);
  assert.deepEqual(parseCut(input, Array.from({ length: input.length }, (_, i) => i)), expected, "byte by byte");
}

function assertProtocolError(input: Uint8Array | string, pattern: RegExp, options?: RespParserOptions): void {
  const data = typeof input === "string" ? bytes(input) : input;
  assert.throws(() => new RespParser(options).push(data), (error: unknown) => {
    assert.ok(error instanceof RespProtocolError, `expected a RespProtocolError, got ${error}`);
    assert.match(error.message, pattern);
    return true;
  });
  // Byte by byte too: the refusal must not depend on how the input arrives.
  const parser = new RespParser(options);
  assert.throws(() => {
    for (const byte of data) parser.push(new Uint8Array([byte]));
  }, pattern);
}

Deno.test("RespParser reads every RESP2 reply type, split at every byte", () => {
  const cases: [string, RespValue][] = [
    ["+OK\r\n", "OK"],
    ["+\r\n", ""],
    ["+héllo wörld\r\n", "héllo wörld"],
    ["-ERR unknown command 'FOO'\r\n", new RespError("ERR unknown command 'FOO'")],
    [":0\r\n", 0],
    [":-42\r\n", -42],
    [":9007199254740991\r\n", 9007199254740991],
    [":-9007199254740991\r\n", -9007199254740991],
    [":9007199254740992\r\n", 9007199254740992n],
    [":9223372036854775807\r\n", 9223372036854775807n],
    [":-9223372036854775808\r\n", -9223372036854775808n],
    ["$0\r\n\r\n", new Uint8Array(0)],
    ["$6\r\nfoobar\r\n", bytes("foobar")],
    ["$4\r\n\r\n\r\n\r\n", bytes("\r\n\r\n")],
    ["$-1\r\n", null],
    ["*-1\r\n", null],
    ["*0\r\n", []],
    ["*3\r\n:1\r\n+two\r\n$5\r\nthree\r\n", [1, "two", bytes("three")]],
    ["*2\r\n*2\r\n:1\r\n*0\r\n*1\r\n$-1\r\n", [[1, []], [null]]],
    ["*2\r\n-ERR a\r\n*1\r\n-WRONGTYPE b\r\n", [new RespError("ERR a"), [new RespError("WRONGTYPE b")]]],
    [">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n", new RespPush([bytes("message"), bytes("ch"), bytes("x")])],
    [">0\r\n", new RespPush([])],
    ["_\r\n", null],
  ];
  for (const [text, expected] of cases) assertParsesEverySplit(bytes(text), [expected]);
});

Deno.test("RespParser reads all 256 byte values in a bulk string and returns a copy the caller owns", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const input = encodeReply(all);
  assertParsesEverySplit(input, [all]);
  const parser = new RespParser();
  const [value] = parser.push(input);
  input.fill(0);
  assert.deepEqual(value, all);
  assert.notEqual((value as Uint8Array).buffer, input.buffer);
});

Deno.test("RespParser returns several replies from one chunk, in order", () => {
  const replies: RespValue[] = ["OK", 1, bytes("x"), null, [2, [3, [4]]], new RespError("ERR e"), "PONG"];
  assertParsesEverySplit(concatBytes(...replies.map(encodeReply)), replies);
});

Deno.test("RespParser nests arrays up to maxDepth and refuses one level more", () => {
  const nested = (depth: number): RespValue => depth === 0 ? 7 : [nested(depth - 1)];
  const input = encodeReply(nested(RESP_DEFAULTS.maxDepth));
  assert.deepEqual(new RespParser().push(input), [nested(RESP_DEFAULTS.maxDepth)]);
  assertProtocolError(encodeReply(nested(RESP_DEFAULTS.maxDepth + 1)), /nested deeper than the limit of 16/);
  assertProtocolError(encodeReply(nested(3)), /nested deeper than the limit of 2/, { maxDepth: 2 });
});

Deno.test("RespParser refuses a huge bulk string or array from its header, before allocating", () => {
  // 1 TiB: had the parser tried to allocate it, the error would be a RangeError from the allocation.
  assertProtocolError("$1099511627776\r\n", /Bulk string of 1099511627776 bytes is over the limit of 536870912/);
  assertProtocolError(`$${RESP_DEFAULTS.maxBulkBytes + 1}\r\n`, /over the limit/);
  assertProtocolError("*4294967296\r\n", /Array of 4294967296 elements is over the limit of 1048576/);
  assertProtocolError(">2000000\r\n", /Array of 2000000 elements/);
  assertProtocolError("$11\r\n", /Bulk string of 11 bytes is over the limit of 10; raise maxBulkBytes/, {
    maxBulkBytes: 10,
  });
  assert.deepEqual(new RespParser({ maxBulkBytes: 10 }).push(bytes("$10\r\n0123456789\r\n")), [bytes("0123456789")]);
  assertProtocolError("*4\r\n", /Array of 4 elements is over the limit of 3/, { maxArrayLength: 3 });
  assert.deepEqual(new RespParser({ maxArrayLength: 3 }).push(bytes("*3\r\n:1\r\n:2\r\n:3\r\n")), [[1, 2, 3]]);
});

Deno.test("RespParser refuses a line longer than maxLineBytes even without its CRLF", () => {
  assert.deepEqual(new RespParser({ maxLineBytes: 8 }).push(bytes("+12345678\r\n")), ["12345678"]);
  assertProtocolError("+123456789", /RESP line longer than the limit of 8 bytes/, { maxLineBytes: 8 });
  assertProtocolError(`-${"x".repeat(RESP_DEFAULTS.maxLineBytes + 1)}`, /longer than the limit of 65536/);
});

Deno.test("RespParser names what is wrong with a malformed stream", () => {
  assertProtocolError("!5\r\nhello\r\n", /Unknown RESP type byte: 0x21 \("!"\)/);
  assertProtocolError("\r\n", /Unknown RESP type byte: 0x0d/);
  assertProtocolError("+OK\rX", /CR without LF: 0x58/);
  assertProtocolError(":12a\r\n", /Invalid RESP integer: "12a"/);
  assertProtocolError(":\r\n", /Invalid RESP integer: ""/);
  assertProtocolError(":-\r\n", /Invalid RESP integer: "-"/);
  assertProtocolError(":+1\r\n", /Invalid RESP integer/);
  assertProtocolError(":12345678901234567890\r\n", /Invalid RESP integer/);
  assertProtocolError(":9223372036854775808\r\n", /out of the 64-bit range/);
  assertProtocolError("$-2\r\n", /Invalid RESP length: -2/);
  assertProtocolError(">-1\r\n", /Invalid RESP length: -1/);
  assertProtocolError("$x\r\n", /Invalid RESP integer: "x"/);
  assertProtocolError("$2\r\nabc\r\n", /Bulk string longer than its header said: 0x63/);
  assertProtocolError("$2\r\nab\rc", /Bulk string ends in CR without LF: 0x63/);
  assertProtocolError("_1\r\n", /RESP3 null carries no data/);
  assertProtocolError("*1\r\n:1\n", /RESP line holds a bare LF/);
});

Deno.test("RespParser keeps failing after a protocol error", () => {
  const parser = new RespParser();
  assert.deepEqual(parser.push(bytes("+OK\r\n")), ["OK"]);
  assert.throws(() => parser.push(bytes("?")), RespProtocolError);
  assert.throws(() => parser.push(bytes("+OK\r\n")), /Unknown RESP type byte/);
});

Deno.test("RespParser refuses limits that are not positive integers", () => {
  assert.throws(() => new RespParser({ maxBulkBytes: 0 }), /maxBulkBytes must be a positive integer: 0/);
  assert.throws(() => new RespParser({ maxDepth: 1.5 }), RangeError);
  assert.throws(() => new RespParser({ maxArrayLength: Infinity }), RangeError);
});

Deno.test("RespParser takes linear time on 1-byte chunks", () => {
  // A long bulk string and a long line fed byte by byte; four times the input must cost about four times the time,
  // not sixteen (quadratic). Best of three runs each, compared as a ratio.
  const feed = (size: number): number => {
    const input = concatBytes(
      bytes(`$${size}\r\n`),
      new Uint8Array(size).fill(0x61),
      bytes(`\r\n+${"b".repeat(size)}`),
    );
    let best = Infinity;
    for (let run = 0; run < 3; run++) {
      const parser = new RespParser({ maxLineBytes: 4 * size });
      const one = new Uint8Array(1);
      const start = performance.now();
      for (const byte of input) {
        one[0] = byte;
        parser.push(one);
      }
      assert.deepEqual(parser.push(bytes("\r\n")), ["b".repeat(size)]);
      best = Math.min(best, performance.now() - start);
    }
    return best;
  };
  feed(16 * 1024); // warm up the JIT
  const small = feed(64 * 1024);
  const large = feed(256 * 1024);
  assert.ok(large / small < 8, `4× the input took ${(large / small).toFixed(1)}× the time`);
});

Deno.test("encodeCommand() writes a RESP array of bulk strings", () => {
  assert.equal(new TextDecoder().decode(encodeCommand(["SET", "k", "v"])), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
  assert.equal(
    new TextDecoder().decode(encodeCommand(["INCRBY", "n", -12.5])),
    "*3\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n$5\r\n-12.5\r\n",
  );
  assert.deepEqual(
    encodeCommand(["é"]),
    concatBytes(bytes("*1\r\n$2\r\n"), new Uint8Array([0xc3, 0xa9]), bytes("\r\n")),
  );
  assert.deepEqual(
    encodeCommand([new Uint8Array([0, 13, 10, 255])]),
    new Uint8Array([...bytes("*1\r\n$4\r\n"), 0, 13, 10, 255, 13, 10]),
  );
});

Deno.test("encodeCommand() round-trips strings of every length class through the parser", () => {
  // Lengths around each power of ten, where the header's digit count changes, in ASCII, 2-, 3- and 4-byte UTF-8.
  const lengths = [0, 1, 3, 4, 9, 10, 32, 33, 34, 99, 100, 333, 334, 999, 1000, 3333, 3334, 10_000, 100_000];
  for (const unit of ["a", "é", "€", "😀"]) {
    for (const length of lengths) {
      const text = unit.repeat(Math.ceil(length / unit.length));
      const [value] = new RespParser().push(encodeCommand(["SET", text, 17, bytes(text)]));
      assert.deepEqual(value, [bytes("SET"), bytes(text), bytes("17"), bytes(text)], `${unit} × ${length}`);
    }
  }
});

Deno.test("encodeCommands() packs commands into one buffer, byte for byte the same as one by one", () => {
  const commands = [["PING"], ["PUBLISH", "room", new Uint8Array([1, 2])], ["INCR", "n"], [
    "SET",
    "k",
    "x".repeat(5000),
  ]];
  assert.deepEqual(encodeCommands(commands), concatBytes(...commands.map((command) => encodeCommand(command))));
  assert.deepEqual(
    new RespParser().push(encodeCommands(commands)),
    commands.map((c) => c.map((a) => typeof a === "string" ? bytes(a) : a)),
  );
});

Deno.test("CommandWriter takes back commands with truncate() and refuses bad arguments whole", () => {
  const writer = new CommandWriter(8);
  writer.write(["PING"]);
  const mark = writer.length;
  writer.write(["SET", "k", "v".repeat(100)]);
  writer.truncate(mark);
  assert.throws(() => writer.write(["SET", "k", NaN]), /must be finite: NaN/);
  assert.throws(() => writer.write(["SET", "k", {} as never]), TypeError);
  assert.throws(() => writer.write([]), /at least one argument/);
  assert.throws(() => writer.truncate(mark + 1), RangeError);
  assert.deepEqual(writer.take(), encodeCommand(["PING"]));
  assert.equal(writer.length, 0);
  assert.deepEqual(writer.take(), new Uint8Array(0));
});

Deno.test("CommandWriter.recycle() reuses a written batch's memory for the next one, but not a huge one", () => {
  const writer = new CommandWriter();
  writer.write(["PING"]);
  const first = writer.take();
  writer.recycle(first);
  writer.write(["ECHO", "again"]);
  const second = writer.take();
  assert.equal(second.buffer, first.buffer);
  assert.deepEqual(second, encodeCommand(["ECHO", "again"]));

  writer.write(["SET", "k", new Uint8Array(300 * 1024)]);
  const huge = writer.take();
  writer.recycle(huge);
  writer.write(["PING"]);
  assert.notEqual(writer.take().buffer, huge.buffer);
});

Deno.test("respText() reads simple and bulk strings and names anything else", () => {
  assert.equal(respText("OK"), "OK");
  assert.equal(respText(bytes("héllo")), "héllo");
  assert.throws(() => respText(null), /Expected a string reply: null/);
  assert.throws(() => respText(new RespError("ERR x")), /error ERR x/);
});

// --- Randomized: valid streams parse back exactly, mutated ones never hang or throw anything else. ---

/** mulberry32: a tiny seeded PRNG, so a failure can be replayed from its seed. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomValue(random: () => number, depth: number): RespValue {
  const int = (n: number) => Math.floor(random() * n);
  const line = () => Array.from({ length: int(12) }, () => String.fromCharCode(0x20 + int(0x5f))).join("");
  switch (int(depth > 0 ? 8 : 6)) {
    case 0:
      return line();
    case 1:
      return new RespError(`ERR ${line()}`);
    case 2:
      return random() < 0.1 ? BigInt(2 ** 53) * BigInt(1 + int(1000)) : int(2 ** 31) - 2 ** 30;
    case 3:
      return Uint8Array.from({ length: int(40) }, () => random() < 0.2 ? [13, 10][int(2)] : int(256));
    case 4:
    case 5:
      return random() < 0.2 ? null : bytes(line());
    case 6:
      return random() < 0.1 ? null : Array.from({ length: int(5) }, () => randomValue(random, depth - 1));
    default:
      return new RespPush(Array.from({ length: int(5) }, () => randomValue(random, depth - 1)));
  }
}

function randomCuts(random: () => number, length: number): number[] {
  const cuts = new Set<number>();
  const count = Math.floor(random() * Math.min(length, 12));
  for (let i = 0; i < count; i++) cuts.add(1 + Math.floor(random() * (length - 1)));
  return [...cuts].sort((a, b) => a - b);
}

function mutate(random: () => number, input: Uint8Array): Uint8Array {
  const out = Array.from(input);
  const mutations = 1 + Math.floor(random() * 3);
  const interesting = [13, 10, 0x24, 0x2a, 0x3e, 0x3a, 0x2d, 0x2b, 0x5f, 0x30, 0x39, 0x2d];
  for (let m = 0; m < mutations && out.length > 0; m++) {
    const at = Math.floor(random() * out.length);
    const byte = random() < 0.5 ? interesting[Math.floor(random() * interesting.length)] : Math.floor(random() * 256);
    switch (Math.floor(random() * 4)) {
      case 0:
        out[at] = byte;
        break;
      case 1:
        out.splice(at, 1);
        break;
      case 2:
        out.splice(at, 0, byte);
        break;
      default:
        out.length = at;
    }
  }
  return Uint8Array.from(out);
}

Deno.test("RespParser survives seeded random streams, mutations and splits", () => {
  const seed = 20261202;
  const random = prng(seed);
  const tight: RespParserOptions = { maxBulkBytes: 32, maxArrayLength: 4, maxDepth: 3, maxLineBytes: 16 };
  let refused = 0;
  for (let round = 0; round < 2000; round++) {
    const values = Array.from({ length: 1 + Math.floor(random() * 4) }, () => randomValue(random, 4));
    const input = concatBytes(...values.map(encodeReply));
    assert.deepEqual(parseCut(input, randomCuts(random, input.length)), values, `seed ${seed} round ${round}`);

    const mutated = mutate(random, input);
    const parser = new RespParser(random() < 0.5 ? tight : undefined);
    let at = 0;
    for (const cut of [...randomCuts(random, mutated.length), mutated.length]) {
      try {
        parser.push(mutated.subarray(at, cut));
      } catch (error) {
        assert.ok(error instanceof RespProtocolError, `seed ${seed} round ${round}: ${error}`);
        refused++;
        break;
      }
      at = cut;
    }
  }
  // Most mutations break the framing; if none were refused the parser is not checking anything.
  assert.ok(refused > 500, `only ${refused} of 2000 mutated streams were refused`);
});
